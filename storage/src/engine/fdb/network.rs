//! The process's FoundationDB client: its network thread, started once and stopped at exit, and
//! one `Database` per cluster file, shared by every store opened on it.

use std::collections::BTreeMap;
use std::ffi::c_int;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use foundationdb::Database;
use foundationdb::api::{FdbApiBuilder, NetworkAutoStop};

use crate::error::{Error, Result};

/// The process's FoundationDB client network, or why it could not start.
///
/// libfdb_c runs one network thread per process, and it can be started only once: after it is
/// stopped, no FoundationDB call in this process can ever work again. So the guard that stops it
/// lives in a static, never dropped with a store; stores come and go without touching it.
/// The C API nevertheless requires the network to be stopped, and its thread to have returned,
/// before the process exits, or behaviour is undefined (in practice libfdb_c's exit-time
/// destructors race the running thread): `stop_network_at_exit`, an `atexit` handler, takes the
/// guard out and drops it, which does both. A failed start is kept too, since the API version
/// can be selected only once: every later `open` reports it.
static NETWORK: OnceLock<std::result::Result<Mutex<Option<NetworkAutoStop>>, String>> =
    OnceLock::new();

/// The open `Database` of each cluster file. FoundationDB's client keeps one set of connections
/// and one watch budget per `Database` and asks for one per cluster per process; a store holds
/// it strongly, this map weakly, so the connections close when the last store drops.
static DATABASES: Mutex<BTreeMap<String, Weak<Database>>> = Mutex::new(BTreeMap::new());

unsafe extern "C" {
    /// C's `atexit`. Handlers run last-registered first, so this one, registered after
    /// libfdb_c was loaded, runs before its exit-time destructors.
    fn atexit(callback: extern "C" fn()) -> c_int;
}

/// Starts the network on first use. This engine owns it: another library of the same process
/// that starts FoundationDB's network itself makes this panic (libfdb_c allows one start).
fn network() -> Result<()> {
    let started = NETWORK.get_or_init(|| {
        let builder = FdbApiBuilder::default()
            .build()
            .map_err(|e| format!("cannot select the FoundationDB API version: {e}"))?;
        // SAFETY: `boot` requires the returned guard to be dropped before the process exits;
        // `stop_network_at_exit` does it.
        let guard = unsafe { builder.boot() }
            .map_err(|e| format!("cannot start the FoundationDB network: {e}"))?;
        // SAFETY: registers a plain function that captures nothing.
        if unsafe { atexit(stop_network_at_exit) } != 0 {
            tracing::warn!("cannot register the FoundationDB network stop at exit");
        }
        Ok(Mutex::new(Some(guard)))
    });
    started
        .as_ref()
        .map(|_| ())
        .map_err(|e| Error::Config(e.clone()))
}

/// Stops the network and joins its thread (dropping the guard does both).
extern "C" fn stop_network_at_exit() {
    if let Some(Ok(network)) = NETWORK.get() {
        let guard = network
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(guard);
    }
}

/// The process's `Database` for `cluster_file` (empty: FoundationDB's default), opened on
/// first use. Starts the network if needed. Two spellings of one file path share a `Database`;
/// the empty name and an explicit path to the default file do not.
pub(super) fn database(cluster_file: &str) -> Result<Arc<Database>> {
    if cluster_file.contains('\0') {
        return Err(Error::Config(format!(
            "FoundationDB cluster file path {cluster_file:?} contains a NUL byte"
        )));
    }
    network()?;
    let name = match std::fs::canonicalize(cluster_file) {
        Ok(path) if !cluster_file.is_empty() => path.to_string_lossy().into_owned(),
        _ => cluster_file.to_string(),
    };
    let mut open = DATABASES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(db) = open.get(&name).and_then(Weak::upgrade) {
        return Ok(db);
    }
    let db = Database::from_path(cluster_file).map_err(|e| {
        Error::Config(format!(
            "cannot open FoundationDB cluster file {cluster_file:?}: {e}"
        ))
    })?;
    let db = Arc::new(db);
    open.retain(|_, held| held.strong_count() > 0);
    open.insert(name, Arc::downgrade(&db));
    Ok(db)
}
