//! The conformance suite on the embedded engine.

mod suite;

use gigafactory_storage::EmbeddedStore;

fn open() -> (EmbeddedStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path()).expect("open store");
    (store, dir)
}

conformance_suite!(open());

/// The same suite with a memtable flushed every few KiB, so reads merge memtables, frozen
/// memtables and the base file, and flushes run under the tests' load.
mod small_memtable {
    use super::*;
    use gigafactory_storage::EmbeddedOptions;

    fn open() -> (EmbeddedStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let opts = EmbeddedOptions {
            flush_bytes: 4 * 1024,
            ..EmbeddedOptions::default()
        };
        let store = EmbeddedStore::open_with(dir.path(), opts).expect("open store");
        (store, dir)
    }

    conformance_suite!(open());
}
