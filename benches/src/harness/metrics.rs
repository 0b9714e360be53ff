//! What the bench reads from the coordinators' (and etcd's) `GET /metrics`: Prometheus text,
//! fetched without failing the run (a figure that cannot be had is missing, never guessed),
//! and the samples in it.

use std::time::Duration;

/// Longest wait for one metrics page: a busy node answers late, and a figure is not worth
/// holding up the run for.
const METRICS_TIMEOUT_SECS: u64 = 2;
/// The coordinator's gauge of jobs in its scheduler's index.
const QUEUED_JOBS: &str = "gigafactory_queued_jobs";

/// One Prometheus sample: `name{labels} value`.
pub(crate) struct Sample<'a> {
    pub name: &'a str,
    pub labels: &'a str,
    pub value: f64,
}

/// The samples of a Prometheus text exposition; comments and lines that do not parse are
/// skipped.
pub(crate) fn samples(text: &str) -> impl Iterator<Item = Sample<'_>> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (head, value) = l.trim().rsplit_once(' ')?;
            let value = value.parse().ok()?;
            let (name, labels) = match head.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}')?),
                None => (head, ""),
            };
            Some(Sample {
                name,
                labels,
                value,
            })
        })
}

/// The sum of every sample named `name` whose labels contain `label` (all of them when it is
/// empty); `None` when there is none.
pub(crate) fn sum_of(text: &str, name: &str, label: &str) -> Option<f64> {
    samples(text)
        .filter(|s| s.name == name && s.labels.contains(label))
        .map(|s| s.value)
        .reduce(|a, b| a + b)
}

/// A page's text, or empty when it cannot be had.
pub(crate) async fn get_text(http: &reqwest::Client, url: &str) -> String {
    async {
        http.get(url)
            .timeout(Duration::from_secs(METRICS_TIMEOUT_SECS))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()
    }
    .await
    .unwrap_or_default()
}

/// How many jobs the scheduler index of the node at `base` holds now, if it says.
pub(crate) async fn queued_jobs(http: &reqwest::Client, base: &str) -> Option<f64> {
    sum_of(
        &get_text(http, &format!("{base}/metrics")).await,
        QUEUED_JOBS,
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP grpc_server_handled_total Total number of RPCs completed on the server.
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Txn\"} 7
grpc_server_handled_total{grpc_code=\"Aborted\",grpc_method=\"Txn\"} 2
grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\"} 5
gigafactory_queued_jobs 12
not a sample
";

    #[test]
    fn sums_samples_by_name_and_label() {
        let txn = "grpc_method=\"Txn\"";
        assert_eq!(sum_of(TEXT, "grpc_server_handled_total", txn), Some(9.0));
        assert_eq!(sum_of(TEXT, "grpc_server_handled_total", ""), Some(14.0));
        assert_eq!(sum_of(TEXT, QUEUED_JOBS, ""), Some(12.0));
        assert_eq!(sum_of(TEXT, "no_such_metric", ""), None);
    }
}
