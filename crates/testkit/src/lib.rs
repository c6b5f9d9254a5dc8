//! Test support for operonx: the conformance op pool (`TEST_OPS.md`), the benchmark op
//! pool, and the conformance runner behind the `operonx-conformance` binary.

pub mod conformance;
pub mod mock_llm;
mod pool;

pub use pool::{bench_ops, test_ops};

/// An engine with the built-in op types and the conformance pool registered.
pub fn conformance_engine() -> operonx::Engine {
    let mut engine = operonx::Engine::new();
    engine.registry_mut().merge(&test_ops());
    engine
}
