//! Store benchmark: commits/s and commit latency (p50/p99) of small transactions — read one key,
//! write two, about 300 bytes — with 1, 8 and 64 concurrent writers, beside the rate of a loop
//! of raw fsyncs on the same disk measured in the same run. Group commit should put 64 writers
//! far above the raw fsync rate (the target is 10×).
//!
//! `cargo bench -p gigafactory-benches --bench store` (embedded engine);
//! `cargo bench -p gigafactory-benches --features etcd --bench store -- --engine etcd` starts a
//! local three-member etcd cluster and measures it too. `--seconds N` sets each phase's length.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gigafactory_benches::{Percentiles, load_average};
use gigafactory_storage::{EmbeddedStore, Error, Store, transact};

const WRITER_COUNTS: [usize; 3] = [1, 8, 64];
const VALUE_BYTES: usize = 140;

struct Phase {
    writers: usize,
    commits: u64,
    elapsed: Duration,
    latency: Percentiles,
}

async fn run_phase<S: Store>(store: &S, writers: usize, length: Duration) -> Phase {
    let deadline = Instant::now() + length;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let counter = format!("bench/{writers}/{w}/counter");
            let value = vec![b'v'; VALUE_BYTES];
            let mut latencies = Vec::new();
            let mut seq = 0u64;
            while Instant::now() < deadline {
                let data = format!("bench/{writers}/{w}/data/{seq:012}");
                let t = Instant::now();
                transact!(store, |tx| {
                    let n = tx.get(counter.as_bytes()).await?.map_or(0, |v| v.len());
                    tx.set(counter.as_bytes(), &value[..VALUE_BYTES.min(n + 8)])?;
                    tx.set(data.as_bytes(), &value)?;
                    Ok::<_, Error>(())
                })
                .expect("commit");
                latencies.push(t.elapsed());
                seq += 1;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    Phase {
        writers,
        commits: all.len() as u64,
        elapsed: started.elapsed(),
        latency: Percentiles::of(&mut all),
    }
}

/// Rate of `write 300 bytes + fdatasync` on a file in `dir`.
fn raw_fsync_rate(dir: &std::path::Path, length: Duration) -> f64 {
    let mut f = std::fs::File::create(dir.join("fsync-probe")).unwrap();
    let buf = [7u8; 300];
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < length {
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

async fn bench_engine<S: Store>(name: &str, store: S, length: Duration, fsync_rate: f64) {
    println!(
        "\n{name}: {} s per phase, load average before: {}",
        length.as_secs(),
        load_average()
    );
    println!(
        "{:>8} {:>10} {:>12} {:>10} {:>10} {:>12}",
        "writers", "commits", "commits/s", "p50", "p99", "x raw fsync"
    );
    for writers in WRITER_COUNTS {
        let p = run_phase(&store, writers, length).await;
        let rate = p.commits as f64 / p.elapsed.as_secs_f64();
        println!(
            "{:>8} {:>10} {:>12.0} {:>10.2?} {:>10.2?} {:>12.1}",
            p.writers,
            p.commits,
            rate,
            p.latency.p50,
            p.latency.p99,
            rate / fsync_rate
        );
    }
    println!("load average after: {}", load_average());
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let length = Duration::from_secs(arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(5));
    let engine = arg("--engine").unwrap_or_else(|| "embedded".into());

    let dir = tempfile::tempdir_in(std::env::current_dir().unwrap()).unwrap();
    let fsync_rate = raw_fsync_rate(dir.path(), Duration::from_secs(2));
    println!("raw fsync loop (300 B write + fdatasync): {fsync_rate:.0}/s");

    let store = EmbeddedStore::open(dir.path().join("store")).unwrap();
    bench_engine("embedded", store, length, fsync_rate).await;

    if engine == "etcd" {
        etcd(length, fsync_rate).await;
    }
    let after = raw_fsync_rate(dir.path(), Duration::from_secs(2));
    println!("\nraw fsync loop again at the end: {after:.0}/s (disk speed drift check)");
}

#[cfg(feature = "etcd")]
async fn etcd(length: Duration, fsync_rate: f64) {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(|| gigafactory_storage::LocalEtcdCluster::start(3).unwrap())
            .await
            .unwrap(),
    );
    let store = gigafactory_storage::EtcdStore::new(&cluster.endpoints(), b"bench/").unwrap();
    bench_engine("etcd (3 members, loopback)", store, length, fsync_rate).await;
}

#[cfg(not(feature = "etcd"))]
async fn etcd(_: Duration, _: f64) {
    let _ = Arc::new(());
    eprintln!("built without the etcd feature: add --features etcd");
    std::process::exit(2);
}
