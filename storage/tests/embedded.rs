//! The conformance suite on the embedded engine.

mod suite;

use gigafactory_storage::EmbeddedStore;

fn open() -> (EmbeddedStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path()).expect("open store");
    (store, dir)
}

conformance_suite!(open());
