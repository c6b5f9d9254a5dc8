//! Loop graphs: the body runs again while `until` is false, carrying the loop variables
//! (the graph's inputs and outputs) from one iteration to the next. Only the final state
//! is emitted.

use std::sync::Arc;

use operonx_graph::expr::Scope;
use operonx_graph::plan::LoopPlan;
use serde_json::Value;

use super::{GraphRun, Plan};
use crate::record::Held;
use crate::run_event::{OpFailure, OutputFrame, RunEvent};

struct Vars<'a>(&'a [Option<Held>]);

impl Scope for Vars<'_> {
    fn get(&self, slot: u32) -> Option<&Value> {
        self.0.get(slot as usize).and_then(Option::as_deref)
    }
}

pub(super) struct LoopState {
    /// Current value of each loop variable (shared with the iteration's slots).
    vars: Vec<Option<Held>>,
    /// Outputs emitted in the current iteration, grouped (several → list).
    iteration: Vec<Option<(Value, u32)>>,
    /// Outputs produced in any iteration.
    produced: Vec<bool>,
    count: u32,
}

impl LoopState {
    pub fn new(plan: &Plan, lp: &LoopPlan, lookup: &dyn Fn(&str) -> Option<Held>) -> Self {
        let vars = lp
            .vars
            .iter()
            .map(|v| {
                lookup(v).or_else(|| plan.input_seeds.iter().find(|(n, _)| n == v).map(|(_, x)| Held::new(x.clone())))
            })
            .collect();
        Self { vars, iteration: vec![None; plan.outputs.len()], produced: vec![false; plan.outputs.len()], count: 0 }
    }

    /// Iterations completed so far (0 during the first).
    pub fn iteration(&self) -> u32 {
        self.count
    }

    /// The value a graph-input slot named `var` starts an iteration with.
    pub fn initial(&self, plan: &Plan, var: &str) -> Option<Held> {
        let lp = plan.looping.as_ref()?;
        let i = lp.vars.iter().position(|v| &**v == var)?;
        self.vars[i].clone()
    }

    pub fn capture(&mut self, plan: &Plan, frame: OutputFrame) {
        for (name, v) in frame.values {
            let Some(o) = plan.outputs.iter().position(|x| *x == name) else { continue };
            self.iteration[o] = Some(match self.iteration[o].take() {
                None => (v, 1),
                Some((Value::Array(mut a), n)) if n > 1 => {
                    a.push(v);
                    (Value::Array(a), n + 1)
                }
                Some((prev, _)) => (Value::Array(vec![prev, v]), 2),
            });
        }
    }
}

impl GraphRun {
    /// The body went quiet: start the next iteration, or emit the final state.
    /// Returns `true` when another iteration started.
    pub(super) fn next_iteration(&mut self) -> bool {
        let plan: Arc<Plan> = self.plan.clone();
        let (Some(ls), Some(lp)) = (self.looping.as_mut(), plan.looping.as_ref()) else { return false };
        if self.failed && !self.interrupted {
            // The failure was reported (and nothing downstream of the failed op ran). As
            // in the reference engine, the outputs the iteration did produce count and the
            // loop goes on: an op that fails on one iteration's values can succeed on the
            // next.
            self.failed = false;
        }
        for (o, slot) in ls.iteration.iter_mut().enumerate() {
            if let Some((v, _)) = slot.take() {
                ls.vars[lp.output_vars[o] as usize] = Some(Held::new(v));
                ls.produced[o] = true;
            }
        }
        ls.count += 1;
        if self.interrupted {
            return false;
        }
        let stop = match &lp.until {
            None => Ok(false),
            Some(expr) => expr.eval_bool(&Vars(&ls.vars)),
        };
        match stop {
            Err(e) => {
                let message = format!("loop until \"{}\": {e} (after iteration {})", expr_src(lp), ls.count);
                self.failed = true;
                self.events.get_mut().push_back(RunEvent::Failure(OpFailure {
                    op: plan.full_name.clone(),
                    context: "main".into(),
                    message,
                }));
                false
            }
            Ok(false) if ls.count < lp.max_iterations => {
                let seed: Vec<(u32, Held)> = plan
                    .input_slots
                    .iter()
                    .filter_map(|(var, slot)| {
                        let i = lp.vars.iter().position(|v| v == var)?;
                        ls.vars[i].clone().map(|v| (*slot, v))
                    })
                    .collect();
                self.begin(seed);
                true
            }
            Ok(_) => {
                self.emit_final_state();
                false
            }
        }
    }

    /// Emit the loop's final state: each output some completed iteration produced.
    fn emit_final_state(&mut self) {
        let plan: Arc<Plan> = self.plan.clone();
        let (Some(ls), Some(lp)) = (self.looping.as_ref(), plan.looping.as_ref()) else { return };
        let values: Vec<_> = plan
            .outputs
            .iter()
            .enumerate()
            .filter(|(o, _)| ls.produced[*o])
            .filter_map(|(o, name)| ls.vars[lp.output_vars[o] as usize].as_deref().map(|v| (name.clone(), v.clone())))
            .collect();
        if !values.is_empty() {
            self.events.get_mut().push_back(RunEvent::Output(OutputFrame {
                op: plan.full_name.clone(),
                values,
                per_item: false,
            }));
        }
    }
}

fn expr_src(lp: &LoopPlan) -> &str {
    lp.until.as_ref().map(|e| e.source()).unwrap_or("")
}
