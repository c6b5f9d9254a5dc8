//! operonx tracing.

pub mod export;
