//! Stream analysis: which ops run once per item of a generator (or of a streaming
//! nested graph), the ready counts inside item contexts, and the scope of each
//! collect edge.

use serde_json::Value;

use crate::error::Diagnostic;
use crate::plan::{Edge, EdgePolicy, Node, NodeId, NodeKind, StreamPlan};
use crate::wire::OpConfig;

pub(crate) fn analyse_streams<O>(
    g: &OpConfig,
    nodes: &mut [Node<O>],
    edges: &mut [Edge],
    configs: &[OpConfig],
    diags: &mut Vec<Diagnostic>,
) -> Vec<StreamPlan> {
    let n = nodes.len();
    // The streaming nodes, and what runs once per item of each (through data edges).
    let sources: Vec<usize> = (0..n)
        .filter(|&s| match &nodes[s].kind {
            NodeKind::Graph(p) => p.streaming,
            _ => configs[s].is_generator,
        })
        .collect();
    let mut members: Vec<Vec<bool>> = sources.iter().map(|&s| reachable(s, nodes, edges)).collect();

    // Scope of each collect edge: the innermost stream that holds its source but not its
    // destination. A generator running once per item of an outer one is collected per
    // run of it, as in the reference engine.
    let holds = |members: &[Vec<bool>], k: usize, x: usize| sources[k] == x || members[k][x];
    for e in edges.iter_mut().filter(|e| e.policy == EdgePolicy::Collect) {
        let candidates: Vec<usize> =
            (0..sources.len()).filter(|&k| holds(&members, k, e.src as usize) && !members[k][e.dst as usize]).collect();
        e.scope = candidates
            .iter()
            .find(|&&k| !candidates.iter().any(|&o| o != k && members[k][sources[o]]))
            .map(|&k| sources[k] as NodeId);
    }
    // Such a consumer (and what follows it) runs once per item of the enclosing streams.
    loop {
        let mut grew = false;
        for e in edges.iter().filter(|e| e.policy == EdgePolicy::Collect) {
            let Some(scope) = e.scope else { continue };
            for k in 0..sources.len() {
                if sources[k] != scope as usize && members[k][scope as usize] && !members[k][e.dst as usize] {
                    members[k][e.dst as usize] = true;
                    let after = reachable(e.dst as usize, nodes, edges);
                    members[k].iter_mut().zip(after).for_each(|(m, a)| *m |= a);
                    grew = true;
                }
            }
        }
        if !grew {
            break;
        }
    }

    let mut streams = Vec::with_capacity(sources.len());
    for (k, (&s, members)) in sources.iter().zip(members).enumerate() {
        let mut item_ready = vec![0u32; n];
        let mut outside_preds = Vec::new();
        let in_stream = |x: usize| x == s || members[x];
        for x in (0..n).filter(|&x| members[x]) {
            let (mut hard_in, mut soft_in) = (0u32, 0u32);
            let mut outside = Vec::new();
            for e in edges.iter().filter(|e| e.dst as usize == x) {
                if e.policy == EdgePolicy::Collect {
                    // Completes inside this stream's items when it collects a stream nested in it.
                    if e.scope.is_some_and(|sc| sc as usize != s && members[sc as usize]) {
                        hard_in += 1;
                    }
                    continue;
                }
                let inside = in_stream(e.src as usize);
                match (e.soft, inside) {
                    (false, true) => hard_in += 1,
                    (false, false) => outside.push(e.src),
                    (true, true) => soft_in += 1,
                    (true, false) => {}
                }
            }
            item_ready[x] = hard_in + u32::from(soft_in > 0);
            if !outside.is_empty() {
                outside_preds.push((x as NodeId, outside));
            }
        }
        if let Some(Value::Object(given)) = g.stream_initial_ready.as_ref().and_then(|m| m.get(&configs[s].name)) {
            for (op, count) in given {
                let path = format!("{}.stream_initial_ready.{}.{op}", g.full_name, configs[s].name);
                match (configs.iter().position(|c| &c.name == op), count.as_u64()) {
                    (Some(x), Some(c)) => item_ready[x] = c as u32,
                    (None, _) => diags.push(Diagnostic::new(path, format!("op \"{op}\" does not exist"))),
                    (_, None) => {
                        diags.push(Diagnostic::new(path, format!("must be a non-negative integer, got {count}")))
                    }
                }
            }
        }
        nodes[s].streams = true;
        nodes[s].stream = Some(k as u32);
        streams.push(StreamPlan { node: s as NodeId, item_ready, members, outside_preds });
    }
    mark_collects(nodes, edges, &streams);
    streams
}

/// Set each node's [`Node::collect_marks`]. A collect consumer runs in its context plus
/// `"__collect__"`: it inherits its source's marks that stand within its own context and
/// adds one after its context's item indexes (its depth: the streams it runs per item
/// of). What follows a node over other edges inherits its marks; a node after several
/// takes the longest.
fn mark_collects<O>(nodes: &mut [Node<O>], edges: &[Edge], streams: &[StreamPlan]) {
    if !edges.iter().any(|e| e.policy == EdgePolicy::Collect) {
        return;
    }
    let n = nodes.len();
    let depth = |x: usize| streams.iter().filter(|s| s.members[x]).count() as u32;
    // Nodes in an order where every edge goes forward (the graph has no cycle; should
    // one be reported, the nodes it holds are left out and keep no marks).
    let (order, _) = crate::plan::forward_order(nodes, edges);
    let mut marks: Vec<Vec<u32>> = vec![Vec::new(); n];
    for &x in &order {
        for &eid in nodes[x].succ.iter().chain(&nodes[x].collects) {
            let e = &edges[eid as usize];
            let d = e.dst as usize;
            let candidate: Vec<u32> = if e.policy == EdgePolicy::Collect {
                let at = depth(d);
                marks[x].iter().copied().filter(|&m| m <= at).chain([at]).collect()
            } else {
                marks[x].clone()
            };
            if candidate.len() > marks[d].len() {
                marks[d] = candidate;
            }
        }
    }
    for (node, m) in nodes.iter_mut().zip(marks) {
        node.collect_marks = m;
    }
}

fn reachable<O>(start: usize, nodes: &[Node<O>], edges: &[Edge]) -> Vec<bool> {
    let mut seen = vec![false; nodes.len()];
    let mut stack = vec![start];
    while let Some(i) = stack.pop() {
        for &eid in &nodes[i].succ {
            let d = edges[eid as usize].dst as usize;
            if !seen[d] {
                seen[d] = true;
                stack.push(d);
            }
        }
    }
    seen
}
