//! Dependency graphs: cycle detection and a deterministic topological order.
//!
//! An edge `(a, b)` means "`a` depends on `b`", so `b` comes first. Guarantees:
//! - both functions are iterative, so a 10,000-deep chain cannot overflow the stack;
//! - they run in O((V + E) log V);
//! - they are deterministic: the answer depends on the set of nodes and edges, never on the
//!   order they were passed in. Ties are broken by key order, and a reported cycle starts at
//!   its smallest key.
//!
//! A node named only by an edge is a node too; duplicate nodes and edges count once.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

/// Returns a dependency cycle as a path whose first and last elements are equal
/// (`[a, b, c, a]`: `a` depends on `b`, `b` on `c`, `c` on `a`), or `None` if the graph is
/// acyclic. A self-dependency is the cycle `[a, a]`.
pub fn find_cycle<K: Ord + Clone>(nodes: &[K], edges: &[(K, K)]) -> Option<Vec<K>> {
    let graph = Graph::new(nodes, edges);
    graph.cycle().map(|cycle| graph.keys_of(&cycle))
}

/// Orders the nodes so that every node comes after everything it depends on. Among nodes
/// that are ready at the same time the smallest key comes first. On a cycle, returns it as
/// [`find_cycle`] would.
pub fn topo_order<K: Ord + Clone>(nodes: &[K], edges: &[(K, K)]) -> Result<Vec<K>, Vec<K>> {
    let graph = Graph::new(nodes, edges);
    let n = graph.keys.len();
    let mut waiting_on: Vec<usize> = graph.deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (node, deps) in graph.deps.iter().enumerate() {
        for &dep in deps {
            dependents[dep].push(node);
        }
    }
    // Indices follow key order, so a min-heap of indices breaks ties by key.
    let mut ready: BinaryHeap<Reverse<usize>> = (0..n)
        .filter(|&node| waiting_on[node] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(node)) = ready.pop() {
        order.push(node);
        for &dependent in &dependents[node] {
            waiting_on[dependent] -= 1;
            if waiting_on[dependent] == 0 {
                ready.push(Reverse(dependent));
            }
        }
    }
    if order.len() < n {
        // Kahn's algorithm stalls only when every remaining node waits on a cycle.
        let cycle = graph
            .cycle()
            .expect("a stalled topological sort implies a cycle");
        return Err(graph.keys_of(&cycle));
    }
    debug_assert!(graph.respects_every_edge(&order));
    Ok(graph.keys_of(&order))
}

/// The graph over dense indices: `keys` sorted and deduplicated, `deps[i]` sorted and
/// deduplicated indices of what `keys[i]` depends on.
struct Graph<K> {
    keys: Vec<K>,
    deps: Vec<Vec<usize>>,
}

impl<K: Ord + Clone> Graph<K> {
    fn new(nodes: &[K], edges: &[(K, K)]) -> Self {
        let mut all: BTreeSet<&K> = nodes.iter().collect();
        for (from, to) in edges {
            all.insert(from);
            all.insert(to);
        }
        let keys: Vec<K> = all.into_iter().cloned().collect();
        let index = |key: &K| {
            keys.binary_search(key)
                .expect("every edge endpoint was added to the key set")
        };
        let mut deps = vec![Vec::new(); keys.len()];
        for (from, to) in edges {
            deps[index(from)].push(index(to));
        }
        for list in &mut deps {
            list.sort_unstable();
            list.dedup();
        }
        Graph { keys, deps }
    }

    fn keys_of(&self, indices: &[usize]) -> Vec<K> {
        indices.iter().map(|&i| self.keys[i].clone()).collect()
    }

    /// Depth-first search with an explicit stack; returns the first cycle met, rotated to
    /// start at its smallest index so the answer is canonical.
    fn cycle(&self) -> Option<Vec<usize>> {
        const UNSEEN: u8 = 0;
        const ON_PATH: u8 = 1;
        const DONE: u8 = 2;
        let n = self.keys.len();
        let mut color = vec![UNSEEN; n];
        // Where each node sits on the current path, valid while it is ON_PATH.
        let mut path_pos = vec![0usize; n];
        // (node, index of the next dependency to visit)
        let mut path: Vec<(usize, usize)> = Vec::new();
        for start in 0..n {
            if color[start] != UNSEEN {
                continue;
            }
            color[start] = ON_PATH;
            path_pos[start] = 0;
            path.push((start, 0));
            while let Some(top) = path.last_mut() {
                let (node, next) = *top;
                let Some(&dep) = self.deps[node].get(next) else {
                    color[node] = DONE;
                    path.pop();
                    continue;
                };
                top.1 += 1;
                match color[dep] {
                    UNSEEN => {
                        color[dep] = ON_PATH;
                        path_pos[dep] = path.len();
                        path.push((dep, 0));
                    }
                    ON_PATH => {
                        let ring: Vec<usize> =
                            path[path_pos[dep]..].iter().map(|&(n, _)| n).collect();
                        return Some(close_ring(ring));
                    }
                    _ => {}
                }
            }
        }
        None
    }

    fn respects_every_edge(&self, order: &[usize]) -> bool {
        let mut position = vec![0usize; order.len()];
        for (pos, &node) in order.iter().enumerate() {
            position[node] = pos;
        }
        self.deps
            .iter()
            .enumerate()
            .all(|(node, deps)| deps.iter().all(|&dep| position[dep] < position[node]))
    }
}

/// Rotates a ring of nodes to start at its smallest element and repeats that element at the
/// end, turning `[c, a, b]` into `[a, b, c, a]`.
fn close_ring(mut ring: Vec<usize>) -> Vec<usize> {
    let smallest = (0..ring.len())
        .min_by_key(|&i| ring[i])
        .expect("a cycle has at least one node");
    ring.rotate_left(smallest);
    ring.push(ring[0]);
    ring
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_no_cycle_in_a_dag() {
        let edges = [("a", "b"), ("b", "c"), ("a", "c")];
        assert_eq!(find_cycle(&["a", "b", "c"], &edges), None);
    }

    #[test]
    fn names_a_cycle_in_dependency_order_from_its_smallest_key() {
        let edges = [("c", "a"), ("a", "b"), ("b", "c"), ("d", "a")];
        assert_eq!(
            find_cycle(&["d", "c", "b", "a"], &edges),
            Some(vec!["a", "b", "c", "a"])
        );
    }

    #[test]
    fn reports_a_self_dependency_as_a_two_element_cycle() {
        assert_eq!(find_cycle(&["a"], &[("a", "a")]), Some(vec!["a", "a"]));
        assert_eq!(topo_order(&["a"], &[("a", "a")]), Err(vec!["a", "a"]));
    }

    #[test]
    fn puts_dependencies_first() {
        let order = topo_order(&["app", "lib", "core"], &[("app", "lib"), ("lib", "core")]);
        assert_eq!(order, Ok(vec!["core", "lib", "app"]));
    }

    #[test]
    fn breaks_ties_by_key_order_whatever_the_input_order() {
        let edges = [("z", "m"), ("b", "m")];
        let forward = topo_order(&["a", "b", "m", "z"], &edges);
        let backward = topo_order(&["z", "m", "b", "a"], &edges);
        assert_eq!(forward, Ok(vec!["a", "m", "b", "z"]));
        assert_eq!(forward, backward);
    }

    #[test]
    fn counts_nodes_named_only_by_edges_and_duplicates_once() {
        let order = topo_order(&["a", "a"], &[("a", "b"), ("a", "b")]);
        assert_eq!(order, Ok(vec!["b", "a"]));
    }

    #[test]
    fn handles_an_empty_graph() {
        assert_eq!(topo_order::<u32>(&[], &[]), Ok(vec![]));
        assert_eq!(find_cycle::<u32>(&[], &[]), None);
    }

    #[test]
    fn survives_a_chain_far_deeper_than_the_stack_allows_recursion() {
        let n: u32 = 200_000;
        let nodes: Vec<u32> = (0..n).collect();
        // Each node depends on the next, so the DFS path is n deep.
        let mut edges: Vec<(u32, u32)> = (0..n - 1).map(|i| (i, i + 1)).collect();
        let order = topo_order(&nodes, &edges).expect("a chain is acyclic");
        assert_eq!(order.first(), Some(&(n - 1)));
        assert_eq!(order.last(), Some(&0));

        edges.push((n - 1, 0));
        let cycle = find_cycle(&nodes, &edges).expect("closing the chain makes a cycle");
        assert_eq!(cycle.len(), n as usize + 1);
        assert_eq!(cycle.first(), Some(&0));
        assert_eq!(cycle.last(), Some(&0));
    }

    /// Transitive closure by Floyd–Warshall: a graph has a cycle iff a node reaches itself.
    fn has_cycle_brute_force(n: usize, edges: &[(u8, u8)]) -> bool {
        let mut reach = vec![vec![false; n]; n];
        for &(a, b) in edges {
            reach[a as usize][b as usize] = true;
        }
        for k in 0..n {
            for i in 0..n {
                for j in 0..n {
                    reach[i][j] = reach[i][j] || (reach[i][k] && reach[k][j]);
                }
            }
        }
        (0..n).any(|i| reach[i][i])
    }

    fn small_graph() -> impl Strategy<Value = (Vec<u8>, Vec<(u8, u8)>)> {
        (1u8..=8).prop_flat_map(|n| {
            let nodes: Vec<u8> = (0..n).collect();
            let edges = prop::collection::vec((0..n, 0..n), 0..=20);
            (Just(nodes).prop_shuffle(), edges)
        })
    }

    proptest! {
        #[test]
        fn cycle_detection_agrees_with_a_brute_force_closure((nodes, edges) in small_graph()) {
            let cycle = find_cycle(&nodes, &edges);
            prop_assert_eq!(cycle.is_some(), has_cycle_brute_force(nodes.len(), &edges));
            if let Some(cycle) = cycle {
                prop_assert!(cycle.len() >= 2);
                prop_assert_eq!(cycle.first(), cycle.last());
                for pair in cycle.windows(2) {
                    prop_assert!(edges.contains(&(pair[0], pair[1])), "{:?} is not an edge", pair);
                }
                let inner: BTreeSet<u8> = cycle[..cycle.len() - 1].iter().copied().collect();
                prop_assert_eq!(inner.len(), cycle.len() - 1, "a cycle visits each node once");
            }
        }

        #[test]
        fn topo_order_respects_every_edge((nodes, edges) in small_graph()) {
            match topo_order(&nodes, &edges) {
                Ok(order) => {
                    prop_assert!(!has_cycle_brute_force(nodes.len(), &edges));
                    let mut sorted = order.clone();
                    sorted.sort_unstable();
                    prop_assert_eq!(sorted, nodes.iter().copied().collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>());
                    let position = |k: u8| order.iter().position(|&x| x == k).unwrap();
                    for &(a, b) in &edges {
                        prop_assert!(position(b) < position(a), "{} must come before {}", b, a);
                    }
                }
                Err(cycle) => {
                    prop_assert!(has_cycle_brute_force(nodes.len(), &edges));
                    prop_assert_eq!(Some(cycle), find_cycle(&nodes, &edges));
                }
            }
        }

        #[test]
        fn answers_do_not_depend_on_input_order(
            (nodes, mut edges) in small_graph(),
            seed in any::<u64>(),
        ) {
            let first = (topo_order(&nodes, &edges), find_cycle(&nodes, &edges));
            // A cheap deterministic reshuffle of the edges.
            edges.sort_by_key(|&(a, b)| (u64::from(a) * 31 + u64::from(b)) ^ seed);
            let mut reversed = nodes.clone();
            reversed.reverse();
            let second = (topo_order(&reversed, &edges), find_cycle(&reversed, &edges));
            prop_assert_eq!(first, second);
        }
    }
}
