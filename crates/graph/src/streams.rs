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
    let mut streams = Vec::new();
    for s in 0..n {
        let streaming = match &nodes[s].kind {
            NodeKind::Graph(p) => p.streaming,
            _ => configs[s].is_generator,
        };
        if !streaming {
            continue;
        }
        let members = reachable(s, nodes, edges);
        let mut item_ready = vec![0u32; n];
        let mut outside_preds = Vec::new();
        let in_stream = |x: usize| x == s || members[x];
        for x in (0..n).filter(|&x| members[x]) {
            let (mut hard_in, mut soft_in, mut soft_any) = (0u32, 0u32, false);
            let mut outside = Vec::new();
            for e in edges.iter().filter(|e| e.dst as usize == x && e.policy != EdgePolicy::Collect) {
                let inside = in_stream(e.src as usize);
                match (e.soft, inside) {
                    (false, true) => hard_in += 1,
                    (false, false) => outside.push(e.src),
                    (true, true) => soft_in += 1,
                    (true, false) => soft_any = true,
                }
            }
            let _ = soft_any;
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
        nodes[s].stream = Some(streams.len() as u32);
        streams.push(StreamPlan { node: s as NodeId, item_ready, members, outside_preds });
    }

    // Scope of each collect edge: the outermost stream that holds its source but not its destination.
    for e in edges.iter_mut().filter(|e| e.policy == EdgePolicy::Collect) {
        let candidates: Vec<&StreamPlan> = streams
            .iter()
            .filter(|sp| (sp.node == e.src || sp.members[e.src as usize]) && !sp.members[e.dst as usize])
            .collect();
        e.scope = candidates
            .iter()
            .find(|c| !candidates.iter().any(|o| o.node != c.node && o.members[c.node as usize]))
            .map(|c| c.node);
    }
    streams
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
