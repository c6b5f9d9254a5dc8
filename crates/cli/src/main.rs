//! The `operonx` command: run and validate Operon workflows.
//!
//! Exit status: 0 success, 1 an op failed (the result still prints, with `"$errors"`),
//! 2 invalid graph, inputs or usage.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use operonx::{Engine, Map, Scratch, Value};

/// Run Operon workflows (graph.json) with the operonx engine.
#[derive(Parser, Debug)]
#[command(name = "operonx", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a graph and print its result as JSON.
    Run {
        /// The graph.json file.
        graph: PathBuf,
        /// JSON object file with the run's inputs (`-` reads stdin).
        #[arg(long)]
        inputs: Option<PathBuf>,
        /// JSON object file seeding the run's scratch space.
        #[arg(long)]
        scratch: Option<PathBuf>,
        /// Print the result on one line.
        #[arg(long)]
        compact: bool,
    },
    /// Check a graph and print every problem found.
    Validate {
        /// The graph.json file.
        graph: PathBuf,
    },
}

/// A problem with what the user gave us (exit status 2).
#[derive(Debug)]
struct BadInput(String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn engine() -> Engine {
    let mut engine = Engine::new();
    operonx::ops::register_std(engine.registry_mut());
    engine
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { graph } => {
            let engine = engine();
            match engine.load_file(&graph) {
                Ok(wf) => {
                    println!("ok: {} ({} ops)", graph.display(), wf.plan().op_count());
                    Ok(ExitCode::SUCCESS)
                }
                Err(operonx::Error::Graph(g)) => {
                    let diags = g.diagnostics();
                    eprintln!(
                        "{}: {} problem{}",
                        graph.display(),
                        diags.len(),
                        if diags.len() == 1 { "" } else { "s" }
                    );
                    for d in diags {
                        println!("{d}");
                    }
                    Ok(ExitCode::from(2))
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Run { graph, inputs, scratch, compact } => {
            let engine = engine();
            let wf = engine.load_file(&graph).map_err(|e| BadInput(e.to_string()))?;
            let inputs = match inputs {
                Some(p) => read_object(&p, "inputs")?,
                None => Map::new(),
            };
            let scratch = match scratch {
                Some(p) => Scratch::new(read_object(&p, "scratch")?),
                None => Scratch::default(),
            };
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let outcome = rt.block_on(wf.run_with_scratch(Value::Object(inputs), scratch))?;
            let json = outcome.to_json();
            let text = if compact { serde_json::to_string(&json)? } else { serde_json::to_string_pretty(&json)? };
            println!("{text}");
            for f in &outcome.failures {
                eprintln!("error: op {} failed: {}", f.op, f.message);
            }
            Ok(if outcome.is_ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

fn read_object(path: &Path, what: &str) -> anyhow::Result<Map<String, Value>> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading stdin")?;
        s
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {what} file {}", path.display()))?
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => bail!(
            "{what} file {}: expected a JSON object, got {}",
            path.display(),
            operonx::graph::document::kind_of(&other)
        ),
        Err(e) => bail!("{what} file {}: invalid JSON: {e}", path.display()),
    }
}
