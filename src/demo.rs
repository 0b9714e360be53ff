//! `gigafactory demo`: a coordinator on the embedded store, two factory processes and a sample
//! manifest, with progress printed until every job is finished. Then the coordinator, its
//! factories and the control plane keep running, with the URL and the sign-in token printed,
//! until Ctrl-C, so a newcomer can look around; `--exit-when-done` stops them at once instead
//! (for scripts and tests). Everything lives in one directory (`--dir`, default
//! `./gigafactory-demo`), removed at the start of each run.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gigafactory_core::wire::{ArtifactView, JobPage};
use serde_json::Value;

use crate::Remote;
use crate::client::Client;
use crate::serve::{ServeArgs, start};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Where the demo keeps its store and factory workspaces.
    #[arg(long, default_value = "./gigafactory-demo")]
    dir: PathBuf,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Stop the coordinator and factories once every job has finished, instead of keeping
    /// them running until Ctrl-C.
    #[arg(long)]
    exit_when_done: bool,
}

/// The sample: a small DAG with stages, a retry, and a review of what a job saved and spent.
const SAMPLE_MANIFEST: &str = r#"
product = "demo"

[profiles.quick]
capabilities = ["linux"]
max_attempts = 3
preemptible = true

[[jobs]]
key = "plan"
title = "Plan the change"
profile = "quick"
command = "gigafactory job stage planning; echo planning the change; sleep 1; echo plan ready"

[[jobs]]
key = "api"
title = "Build the API"
profile = "quick"
deps = ["plan"]
command = "gigafactory job stage coding; for i in 1 2 3; do echo api step $i; sleep 1; done; gigafactory job stage testing; echo tests pass"

[[jobs]]
key = "ui"
title = "Build the UI"
profile = "quick"
deps = ["plan"]
command = "gigafactory job stage coding; for i in 1 2 3 4; do echo ui step $i; sleep 1; done"

[[jobs]]
key = "flaky"
title = "A flaky integration test (fails on its first attempt)"
profile = "quick"
deps = ["plan"]
command = "if [ \"$GF_ATTEMPT\" = 1 ]; then echo first attempt fails; exit 1; fi; echo passed on attempt $GF_ATTEMPT"

[[jobs]]
key = "release"
title = "Release notes (needs review)"
profile = "quick"
deps = ["api", "ui", "flaky"]
review = true
artifacts = ["*.patch"]
command = """
echo writing release notes
printf '# Release notes\\n\\n- the API is built\\n- the UI is built\\n' > RELEASE_NOTES.md
gigafactory job artifact RELEASE_NOTES.md
gigafactory job artifact --url https://example.com/acme/app/pull/42 --name pull-request
printf -- '--- a/VERSION\\n+++ b/VERSION\\n@@ -1 +1 @@\\n-1.0.0\\n+1.1.0\\n' > version.patch
gigafactory job usage --model demo-model --input-tokens 1200 --output-tokens 300 --cost-usd 0.0125
sleep 1
echo done
"""
"#;

pub async fn run(args: DemoArgs) -> Result<()> {
    let dir = std::path::absolute(&args.dir)?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let serve = ServeArgs {
        store: Some(format!("embedded:{}", dir.join("store").display())),
        listen: Some("127.0.0.1:0".parse()?),
        lease_ttl_ms: Some(6_000),
        ..ServeArgs::default()
    };
    let mut settings = serve.resolve()?;
    settings.config.backoff = gigafactory_core::backoff::Backoff {
        base_ms: 500,
        cap_ms: 5_000,
    };
    let node = start(settings).await?;
    let admin = node
        .admin_token
        .clone()
        .context("a fresh demo store has an admin token")?;
    let url = format!("http://{}", node.addr);
    println!("coordinator: {url}  (admin token: {admin})");
    let client = Client::new(&Remote {
        coordinator: url.clone(),
        token: Some(admin.clone()),
        tls: Default::default(),
    })?;

    // The factories run jobs that call `gigafactory job stage`: put this binary on their PATH.
    let exe = std::env::current_exe()?;
    let path = format!(
        "{}:{}",
        exe.parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut factories = Vec::new();
    for (i, slots) in [(1, 2), (2, 1)] {
        let token: Value = client.post("/v1/enrollment-tokens", None).await?;
        let child = tokio::process::Command::new(&exe)
            .args([
                "factory",
                "--coordinator",
                &url,
                "--slots",
                &slots.to_string(),
                "--capabilities",
                "linux,rust",
            ])
            .arg("--name")
            .arg(format!("demo-factory-{i}"))
            .arg("--workdir")
            .arg(dir.join(format!("factory-{i}")))
            .arg("--enroll-token")
            .arg(token["token"].as_str().unwrap_or_default())
            .env("PATH", &path)
            .env("GIGAFACTORY_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting a factory")?;
        factories.push(child);
    }

    let made: gigafactory_core::wire::ManifestResponse = client
        .post_raw("/v1/manifests", "application/toml", SAMPLE_MANIFEST.into())
        .await?;
    println!("submitted {} jobs\n", made.jobs.len());
    let started = Instant::now();
    let mut shipped = false;
    let outcome = loop {
        let page: JobPage = client.get("/v1/jobs?product=demo&limit=100").await?;
        let line: Vec<String> = page
            .jobs
            .iter()
            .map(|j| {
                format!(
                    "{}={}{}",
                    j.key,
                    j.state,
                    j.stage
                        .as_deref()
                        .map(|s| format!("({s})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        println!(
            "[{:>4.1}s] {}",
            started.elapsed().as_secs_f64(),
            line.join("  ")
        );
        if let Some(review) = page.jobs.iter().find(|j| j.state == "review")
            && !shipped
        {
            let saved: Vec<ArtifactView> = client
                .get(&format!("/v1/jobs/{}/artifacts", review.id))
                .await?;
            let names: Vec<&str> = saved.iter().map(|a| a.name.as_str()).collect();
            println!(
                "         release notes are in review with {}: shipping them as an operator would",
                names.join(", ")
            );
            client
                .post::<Value>(&format!("/v1/jobs/{}/actions/ship", review.id), None)
                .await?;
            shipped = true;
        }
        let done = page.jobs.iter().all(|j| {
            matches!(
                j.state.as_str(),
                "succeeded" | "shipped" | "rejected" | "dead" | "cancelled"
            )
        });
        if done && !page.jobs.is_empty() {
            break Ok(page);
        }
        if started.elapsed() > Duration::from_secs(args.timeout_secs) {
            break Err(anyhow::anyhow!(
                "the demo did not finish in {} s",
                args.timeout_secs
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let finished = outcome.map(|page| {
        println!("\nall {} jobs finished:", page.jobs.len());
        for j in &page.jobs {
            println!(
                "  {:<8} {:<9} attempts {}  {:>8}  {}",
                j.key,
                j.state,
                j.attempts,
                gigafactory_core::budget::format_usd(j.cost.total_micros),
                j.title
            );
        }
    });
    if finished.is_ok() && !args.exit_when_done {
        let exe = exe.display();
        println!(
            "\nthe coordinator, its two factories and the control plane keep running until Ctrl-C:\n\
             \n  open {url}/ and sign in with {admin}\n\
             \n  export GIGAFACTORY_COORDINATOR={url} GIGAFACTORY_TOKEN={admin}\
             \n  {exe} jobs ls\
             \n  {exe} jobs show ID\
             \n  {exe} factories ls"
        );
        crate::serve::shutdown_signal().await;
        println!("stopping");
    }
    for mut f in factories {
        let _ = f.start_kill();
        let _ = f.wait().await;
    }
    node.stop();
    finished
}
