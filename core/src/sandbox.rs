//! What a job asks of its sandbox: whether it may use the network, and the memory and CPU it
//! may take. The factory agent enforces it (bubblewrap and cgroups on Linux); here are the
//! spec, its bounds and the cgroup figures it turns into, as plain functions.

use serde::{Deserialize, Serialize};

/// Smallest memory limit: below it a shell cannot start, and the job would fail for no reason
/// a reader could see.
pub const MEMORY_MIB_MIN: u32 = 16;
/// Largest memory limit (1 TiB).
pub const MEMORY_MIB_MAX: u32 = 1 << 20;
/// CPU limits, in thousandths of a CPU: a tenth of one up to 256.
pub const CPU_MILLIS_MIN: u32 = 100;
pub const CPU_MILLIS_MAX: u32 = 256_000;
/// The cgroup CPU period the quota is a share of (the kernel's default), in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;

/// A job's sandbox. The default (network on, no limits) is what a job had before sandboxes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxSpec {
    /// Whether the job may reach the network (`false`: a network namespace of its own with
    /// only loopback).
    #[serde(default = "default_network")]
    pub network: bool,
    /// Memory the job's processes may hold together, in MiB; past it the kernel ends them.
    #[serde(default)]
    pub memory_mib: Option<u32>,
    /// CPU time the job may use, in thousandths of a CPU (`1500`: one and a half CPUs).
    #[serde(default)]
    pub cpu_millis: Option<u32>,
}

fn default_network() -> bool {
    true
}

impl Default for SandboxSpec {
    fn default() -> Self {
        SandboxSpec {
            network: true,
            memory_mib: None,
            cpu_millis: None,
        }
    }
}

impl SandboxSpec {
    /// Whether the job needs a cgroup (any limit set).
    pub fn has_limits(&self) -> bool {
        self.memory_mib.is_some() || self.cpu_millis.is_some()
    }

    /// Every problem with the spec, as `(field, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(m) = self.memory_mib
            && !(MEMORY_MIB_MIN..=MEMORY_MIB_MAX).contains(&m)
        {
            out.push((
                "memory_mib",
                format!("must be {MEMORY_MIB_MIN}..={MEMORY_MIB_MAX} MiB, got {m}"),
            ));
        }
        if let Some(c) = self.cpu_millis
            && !(CPU_MILLIS_MIN..=CPU_MILLIS_MAX).contains(&c)
        {
            out.push((
                "cpu_millis",
                format!(
                    "must be {CPU_MILLIS_MIN}..={CPU_MILLIS_MAX} thousandths of a CPU, got {c}"
                ),
            ));
        }
        out
    }

    /// The memory limit in bytes.
    pub fn memory_bytes(&self) -> Option<u64> {
        self.memory_mib.map(|m| u64::from(m) << 20)
    }

    /// The CPU quota per [`CPU_PERIOD_US`], in microseconds.
    pub fn cpu_quota_us(&self) -> Option<u64> {
        self.cpu_millis
            .map(|c| u64::from(c) * CPU_PERIOD_US / 1_000)
    }
}

/// One line: `network off · 64 MiB · 0.5 CPU` (what the CLI and the job page show).
impl std::fmt::Display for SandboxSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.network {
            "network on"
        } else {
            "network off"
        })?;
        match self.memory_mib {
            Some(m) => write!(f, " · {m} MiB")?,
            None => f.write_str(" · no memory limit")?,
        }
        match self.cpu_millis {
            Some(c) => write!(f, " · {} CPU", f64::from(c) / 1_000.0),
            None => f.write_str(" · no CPU limit"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_default_keeps_the_network_and_sets_no_limit() {
        let s: SandboxSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(s, SandboxSpec::default());
        assert!(s.network && !s.has_limits() && s.problems().is_empty());
    }

    #[test]
    fn limits_out_of_bounds_are_named_and_unknown_fields_refused() {
        let s = SandboxSpec {
            network: false,
            memory_mib: Some(1),
            cpu_millis: Some(10),
        };
        let fields: Vec<&str> = s.problems().iter().map(|p| p.0).collect();
        assert_eq!(fields, ["memory_mib", "cpu_millis"]);
        assert!(serde_json::from_str::<SandboxSpec>(r#"{"memory": 5}"#).is_err());
    }

    #[test]
    fn a_spec_reads_as_one_line() {
        let s = SandboxSpec {
            network: false,
            memory_mib: Some(64),
            cpu_millis: Some(500),
        };
        assert_eq!(s.to_string(), "network off · 64 MiB · 0.5 CPU");
        assert_eq!(
            SandboxSpec::default().to_string(),
            "network on · no memory limit · no CPU limit"
        );
    }

    proptest! {
        /// The quota is the share of the period the millis say, never rounded up.
        #[test]
        fn the_cpu_quota_is_the_asked_share_of_the_period(c in CPU_MILLIS_MIN..=CPU_MILLIS_MAX) {
            let s = SandboxSpec { cpu_millis: Some(c), ..SandboxSpec::default() };
            let q = s.cpu_quota_us().unwrap();
            prop_assert!(q * 1_000 <= u64::from(c) * CPU_PERIOD_US);
            prop_assert!((q + 1) * 1_000 > u64::from(c) * CPU_PERIOD_US);
        }
    }
}
