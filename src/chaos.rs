//! `gigafactory chaos`: runs the chaos suite (`gigafactory-chaos`) on loopback — a three-member
//! etcd cluster, coordinator nodes and factory agents as real processes under a seeded fault
//! schedule — or, with `--check`, re-runs only the checker on a saved history. Exits non-zero
//! when the checker finds a violation, keeping the run's directory.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

#[derive(clap::Args)]
pub struct ChaosArgs {
    /// Seed of the fault schedule (default: from the clock; printed either way).
    #[arg(long)]
    seed: Option<u64>,
    /// How long the workload runs, in seconds.
    #[arg(long, default_value_t = 90)]
    duration_secs: u64,
    /// How many faults to inject over the run (they run one at a time).
    #[arg(long, default_value_t = 10)]
    faults: usize,
    /// Coordinator nodes (at least 3: two stay up while one is faulted).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Factory agents.
    #[arg(long, default_value_t = 3)]
    factories: usize,
    /// Jobs submitted per second.
    #[arg(long, default_value_t = 3.0)]
    jobs_per_sec: f64,
    /// Where the history, report and logs go (default: a new directory under the temp dir).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run each node in a network namespace of its own and add network partitions and flapping
    /// links to the schedule (needs root and iproute2).
    #[arg(long)]
    netns: bool,
    /// Re-run only the checker on a saved history.json.
    #[arg(long, value_name = "HISTORY", conflicts_with_all = ["seed", "out"])]
    check: Option<PathBuf>,
}

pub fn run(args: ChaosArgs) -> Result<()> {
    if let Some(path) = args.check {
        let report = gigafactory_chaos::check_file(&path)?;
        println!("{report}");
        if report.violation_count > 0 {
            bail!("{} invariant violations", report.violation_count);
        }
        return Ok(());
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let config = gigafactory_chaos::Config {
        seed,
        duration_secs: args.duration_secs,
        faults: args.faults,
        nodes: args.nodes,
        factories: args.factories,
        jobs_per_sec: args.jobs_per_sec,
        out: args.out,
        exe: std::env::current_exe().context("locate the gigafactory binary")?,
        netns: args.netns,
    };
    let outcome = gigafactory_chaos::run(&config)?;
    println!("{}", outcome.report);
    println!("history and report in {}", outcome.dir.display());
    if outcome.report.violation_count > 0 {
        bail!(
            "{} invariant violations; re-check with: gigafactory chaos --check {}",
            outcome.report.violation_count,
            outcome.dir.join("history.json").display()
        );
    }
    // A clean run without --out leaves nothing behind.
    if config.out.is_none() {
        let _ = std::fs::remove_dir_all(&outcome.dir);
    }
    Ok(())
}
