//! Shared by the exporter tests: a recording HTTP mock and a builder of trace events.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

pub mod http;
pub mod run;
