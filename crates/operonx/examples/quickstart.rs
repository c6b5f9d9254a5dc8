//! Author a workflow in Rust, with `#[op]` functions and the graph builder, and run it.
//!
//! ```sh
//! cargo run -p operonx --example quickstart
//! ```

use operonx::graph::builder::{Graph, OpSpec, out, parent};
use operonx::{Engine, json, op};

/// Split a sentence into words (a generator: one item per word).
#[op(generator, output = "word")]
fn words(text: String) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// Length of one word.
#[op(output = "len")]
fn word_len(word: String) -> usize {
    word.chars().count()
}

/// Sum of all lengths.
#[op(output = "total")]
fn total(lens: Vec<usize>) -> usize {
    lens.iter().sum()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let doc = Graph::new("main")
        .input("text")
        .op(OpSpec::code("split", "words").generator().input("text", parent("text")))
        .op(OpSpec::code("measure", "word_len").input("word", out("split", "word")).output_to_parent("len", "lengths"))
        .op(OpSpec::code("sum", "total")
            .input("lens", out("measure", "len").collect())
            .output_to_parent("total", "total"))
        .build()?;

    let mut engine = Engine::new();
    engine.registry_mut().add(words_op).add(word_len_op).add(total_op);
    let workflow = engine.compile(&doc)?;
    let outcome = workflow.run(json!({"text": "dataflow runs each op the moment its inputs are ready"})).await?;
    println!("{}", serde_json::to_string_pretty(&outcome.to_json())?);
    assert_eq!(outcome.outputs["total"], json!(44));
    Ok(())
}
