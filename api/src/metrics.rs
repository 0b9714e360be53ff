//! What `GET /metrics` answers, in Prometheus' text format: the process recorder's event
//! series (counters and histograms, recorded where things happen), then the node's state
//! gauges, computed for this scrape by the coordinator (`Coordinator::gauges`) and written
//! here with the exporter's own formatting, so both halves escape and spell alike.

use gigafactory_actors::GaugeFamily;
use metrics_exporter_prometheus::formatting::{
    sanitize_label_value, write_help_line, write_metric_line, write_type_line,
};

use crate::AppState;

/// The page: without a recorder (a node built without one), only the state gauges. When the
/// state cannot be read (the store is down), the event series still go out, and the state
/// gauges are missing from this scrape, as Prometheus expects of a value nobody knows.
pub(crate) async fn render(s: &AppState) -> String {
    let mut text = s
        .opts
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    match s.coord.gauges().await {
        Ok(families) => write_gauges(&mut text, &families),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the node's state is left out of this scrape")
        }
    }
    text
}

fn write_gauges(out: &mut String, families: &[GaugeFamily]) {
    for family in families {
        write_help_line(out, family.name, family.help);
        write_type_line(out, family.name, "gauge");
        for sample in &family.samples {
            let labels: Vec<String> = sample
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", sanitize_label_value(v)))
                .collect();
            write_metric_line::<&str, f64>(
                out,
                family.name,
                None,
                &labels,
                None,
                sample.value,
                None,
            );
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use gigafactory_actors::GaugeSample;

    use super::*;

    #[test]
    fn gauges_are_written_with_help_type_and_escaped_labels() {
        let family = GaugeFamily {
            name: "gigafactory_jobs",
            help: "Jobs by state.",
            samples: vec![
                GaugeSample {
                    labels: vec![("state", "queued".into()), ("product", "a\"b\\c".into())],
                    value: 2.0,
                },
                GaugeSample {
                    labels: Vec::new(),
                    value: 0.5,
                },
            ],
        };
        let mut out = String::new();
        write_gauges(&mut out, &[family]);
        assert_eq!(
            out,
            "# HELP gigafactory_jobs Jobs by state.\n\
             # TYPE gigafactory_jobs gauge\n\
             gigafactory_jobs{state=\"queued\",product=\"a\\\"b\\\\c\"} 2\n\
             gigafactory_jobs 0.5\n\n"
        );
    }
}
