//! The DAG as a petgraph graph: upstream/downstream lookups, topological order, cycles.

use std::collections::HashMap;
use std::sync::Arc;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::model::{Dag, Task};

/// A validated DAG with its graph built once, shared by the scheduler and workers.
#[derive(Debug, Clone)]
pub struct DagGraph {
    dag: Arc<Dag>,
    graph: DiGraph<usize, ()>,
    nodes: HashMap<String, NodeIndex>,
}

impl DagGraph {
    /// Build the graph. The DAG must be validated (upstream ids exist, no cycle).
    pub fn new(dag: Arc<Dag>) -> Self {
        let mut graph = DiGraph::with_capacity(dag.tasks.len(), dag.tasks.len());
        let mut nodes = HashMap::with_capacity(dag.tasks.len());
        for (i, task) in dag.tasks.iter().enumerate() {
            nodes.insert(task.task_id.clone(), graph.add_node(i));
        }
        for task in &dag.tasks {
            let to = nodes[&task.task_id];
            for up in &task.upstream {
                if let Some(&from) = nodes.get(up) {
                    graph.update_edge(from, to, ());
                }
            }
        }
        DagGraph { dag, graph, nodes }
    }

    pub fn dag(&self) -> &Arc<Dag> {
        &self.dag
    }

    pub fn task(&self, task_id: &str) -> Option<&Task> {
        self.nodes
            .get(task_id)
            .map(|&n| &self.dag.tasks[self.graph[n]])
    }

    /// Direct downstream task ids.
    pub fn downstream(&self, task_id: &str) -> Vec<&str> {
        self.neighbors(task_id, Direction::Outgoing)
    }

    /// Direct upstream task ids.
    pub fn upstream(&self, task_id: &str) -> Vec<&str> {
        self.neighbors(task_id, Direction::Incoming)
    }

    /// Every task reachable downstream of `task_id` (not including it).
    pub fn descendants(&self, task_id: &str) -> Vec<&str> {
        let Some(&start) = self.nodes.get(task_id) else {
            return Vec::new();
        };
        let mut seen = vec![false; self.graph.node_count()];
        let mut stack = vec![start];
        let mut out = Vec::new();
        while let Some(n) = stack.pop() {
            for next in self.graph.neighbors_directed(n, Direction::Outgoing) {
                if !seen[next.index()] {
                    seen[next.index()] = true;
                    out.push(self.dag.tasks[self.graph[next]].task_id.as_str());
                    stack.push(next);
                }
            }
        }
        out
    }

    /// Task ids in a topological order (upstream before downstream).
    pub fn topological_order(&self) -> Vec<&str> {
        match petgraph::algo::toposort(&self.graph, None) {
            Ok(order) => order
                .into_iter()
                .map(|n| self.dag.tasks[self.graph[n]].task_id.as_str())
                .collect(),
            // A validated DAG has no cycle; fall back to file order rather than panic.
            Err(_) => self.dag.tasks.iter().map(|t| t.task_id.as_str()).collect(),
        }
    }

    /// Tasks without downstream: the run's outcome is decided by them.
    pub fn leaves(&self) -> Vec<&str> {
        self.graph
            .node_indices()
            .filter(|&n| {
                self.graph
                    .neighbors_directed(n, Direction::Outgoing)
                    .next()
                    .is_none()
            })
            .map(|n| self.dag.tasks[self.graph[n]].task_id.as_str())
            .collect()
    }

    fn neighbors(&self, task_id: &str, direction: Direction) -> Vec<&str> {
        let Some(&n) = self.nodes.get(task_id) else {
            return Vec::new();
        };
        let mut ids: Vec<&str> = self
            .graph
            .neighbors_directed(n, direction)
            .map(|m| self.dag.tasks[self.graph[m]].task_id.as_str())
            .collect();
        ids.reverse();
        ids
    }
}

/// Find a cycle among `tasks` (by their `upstream` lists) and return it as a path that starts
/// and ends on the same id, e.g. `[a, b, c, a]`.
pub fn find_cycle(tasks: &[Task]) -> Option<Vec<String>> {
    let index: HashMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.task_id.as_str(), i))
        .collect();
    // Iterative DFS with colors: 0 unseen, 1 on the stack, 2 done.
    let mut color = vec![0u8; tasks.len()];
    let mut parent: Vec<Option<usize>> = vec![None; tasks.len()];
    let downstream: Vec<Vec<usize>> = {
        let mut d = vec![Vec::new(); tasks.len()];
        for (i, t) in tasks.iter().enumerate() {
            for up in &t.upstream {
                if let Some(&u) = index.get(up.as_str()) {
                    d[u].push(i);
                }
            }
        }
        d
    };
    for root in 0..tasks.len() {
        if color[root] != 0 {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        color[root] = 1;
        while let Some(top) = stack.last_mut() {
            let node = top.0;
            if top.1 < downstream[node].len() {
                let child = downstream[node][top.1];
                top.1 += 1;
                match color[child] {
                    0 => {
                        color[child] = 1;
                        parent[child] = Some(node);
                        stack.push((child, 0));
                    }
                    1 => {
                        let mut path = vec![tasks[child].task_id.clone()];
                        let mut at = node;
                        while at != child {
                            path.push(tasks[at].task_id.clone());
                            at = parent[at].unwrap_or(child);
                        }
                        path.push(tasks[child].task_id.clone());
                        path.reverse();
                        return Some(path);
                    }
                    _ => {}
                }
            } else {
                color[node] = 2;
                stack.pop();
            }
        }
    }
    None
}
