//! Network faults (`gigafactory chaos --netns`). Each coordinator node runs in a network
//! namespace of its own, joined by a veth pair to a bridge on the host; etcd and the factory
//! agents stay on the host and reach the nodes (and the nodes the store) through the bridge.
//! A partition takes a node's link down, so it can reach neither the store nor the factories
//! and they cannot reach it; a flapping link goes down and up every few hundred milliseconds
//! (lost packets, retransmits and timeouts, with no kernel module beyond veth and bridge). The
//! run creates all of it and removes it when dropped. Needs root and iproute2.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::ChaosError;

/// Runs use `10.213.S.0/24`, S picked per run.
const SUBNET_PREFIX: &str = "10.213";
/// First address of node links on the bridge subnet (`10.213.S.10`, `.11`, ...).
const NODE_HOST_BASE: usize = 10;
/// Names tried before giving up on finding ones no other run holds.
const TAG_ATTEMPTS: u32 = 16;

/// The bridge, the namespaces and the links of one run.
pub struct Network {
    /// Short and unique per run: Linux interface names have at most 15 characters.
    tag: String,
    /// Third octet of the run's subnet `10.213.S.0/24`.
    subnet: u8,
    nodes: usize,
}

impl Network {
    /// Whether this machine lets us build the network (root, iproute2, veth and bridge
    /// links): tried on one node, then removed.
    pub fn available() -> Result<(), ChaosError> {
        Network::create(1).map(drop)
    }

    /// Creates the bridge and one namespace per node, each linked to the bridge and up. The
    /// names and subnet come from the process id, moved on past any a concurrent or killed run
    /// still holds.
    pub fn create(nodes: usize) -> Result<Self, ChaosError> {
        let pid = std::process::id();
        for attempt in 0..TAG_ATTEMPTS {
            let n = pid.wrapping_add(attempt * 7919);
            let (tag, subnet) = (format!("gf{:x}", n & 0xfff), (n % 200 + 20) as u8);
            if names_free(&tag, subnet) {
                return Network {
                    tag,
                    subnet,
                    nodes: 0,
                }
                .build(nodes);
            }
        }
        Err(ChaosError::Setup(format!(
            "no free network name found in {TAG_ATTEMPTS} tries; remove stale gf* links and \
             namespaces (ip link, ip netns)"
        )))
    }

    fn build(mut self, nodes: usize) -> Result<Self, ChaosError> {
        let bridge = self.bridge();
        let host_cidr = format!("{}/24", self.host_ip());
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["addr", "add", &host_cidr, "dev", &bridge])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 0..nodes {
            let (ns, host_end, node_end) = (self.netns(i), self.host_end(i), self.node_end(i));
            ip(&["netns", "add", &ns])?;
            // Counted before the links exist, so a failure half way still removes this one.
            self.nodes = i + 1;
            ip(&[
                "link", "add", &host_end, "type", "veth", "peer", "name", &node_end,
            ])?;
            ip(&["link", "set", &node_end, "netns", &ns])?;
            ip(&["link", "set", &host_end, "master", &bridge])?;
            ip(&["link", "set", &host_end, "up"])?;
            let node_cidr = format!("{}/24", self.node_ip(i));
            ip(&["-n", &ns, "addr", "add", &node_cidr, "dev", &node_end])?;
            ip(&["-n", &ns, "link", "set", &node_end, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(self)
    }

    /// The host's address on the bridge: where nodes reach the store.
    pub fn host_ip(&self) -> String {
        format!("{SUBNET_PREFIX}.{}.1", self.subnet)
    }

    /// Node `i`'s address: where factories and the run reach it.
    pub fn node_ip(&self, i: usize) -> String {
        format!("{SUBNET_PREFIX}.{}.{}", self.subnet, NODE_HOST_BASE + i)
    }

    /// The namespace node `i` runs in.
    pub fn netns(&self, i: usize) -> String {
        format!("{}n{i}", self.tag)
    }

    /// Cuts (`true`) or restores node `i`'s link.
    pub fn partition(&self, i: usize, cut: bool) -> Result<(), ChaosError> {
        let state = if cut { "down" } else { "up" };
        ip(&["link", "set", &self.host_end(i), state])
    }

    /// Takes node `i`'s link down and up every `period` until `hold` has passed; leaves it up.
    pub fn flap(&self, i: usize, period: Duration, hold: Duration) -> Result<(), ChaosError> {
        let end = Instant::now() + hold;
        let mut cut = false;
        while Instant::now() < end {
            cut = !cut;
            self.partition(i, cut)?;
            // Pacing the flaps; no state is awaited.
            std::thread::sleep(period.min(end.saturating_duration_since(Instant::now())));
        }
        self.partition(i, false)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    fn host_end(&self, i: usize) -> String {
        format!("{}h{i}", self.tag)
    }

    fn node_end(&self, i: usize) -> String {
        format!("{}c{i}", self.tag)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends inside it and so their host peers; a pair
        // whose end never moved in is deleted from the host side.
        for i in 0..self.nodes {
            let _ = ip(&["netns", "del", &self.netns(i)]);
            let _ = ip(&["link", "del", &self.host_end(i)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

/// Whether no link or namespace of `tag` exists, nor an address on `subnet`: a `Network` is
/// built (and so, when dropped, removes) only names nothing else holds.
fn names_free(tag: &str, subnet: u8) -> bool {
    let listed = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let links = listed(&["-o", "link", "show"]);
    let addresses = listed(&["-o", "addr", "show"]);
    let namespaces = listed(&["netns", "list"]);
    !links.contains(&format!(" {tag}"))
        && !addresses.contains(&format!("inet {SUBNET_PREFIX}.{subnet}."))
        && !namespaces.lines().any(|l| l.starts_with(tag))
}

fn ip(args: &[&str]) -> Result<(), ChaosError> {
    run("ip", args)
}

fn run(program: &str, args: &[&str]) -> Result<(), ChaosError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(ChaosError::io(format!("run {program}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ChaosError::Setup(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_fit_linux_limits() {
        let net = Network {
            tag: format!("gf{:x}", 0xfffu32),
            subnet: 219,
            nodes: 0,
        };
        for name in [net.bridge(), net.host_end(9), net.node_end(9), net.netns(9)] {
            assert!(name.len() <= 15, "{name}");
        }
        assert_eq!(net.node_ip(2), "10.213.219.12");
    }
}
