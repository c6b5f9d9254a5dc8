//! Crash-test harness for durable runs (placeholder while it is written).
#[test]
fn placeholder() {}
