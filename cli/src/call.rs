//! `trellis call ID FUNCTION [JSON_ARGS...]`.

use anyhow::Context as _;

use crate::global::Global;

#[derive(clap::Args)]
pub struct CallArgs {
    /// Component id.
    pub id: String,
    /// Function name (`greet`), or `interface#name` when ambiguous.
    pub function: String,
    /// Arguments, one JSON value each (`'"Ada"'`, `42`, `'{"k": 1}'`).
    pub args: Vec<String>,
}

pub async fn run(g: &Global, args: CallArgs) -> anyhow::Result<()> {
    let values = args
        .args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            serde_json::from_str(a).with_context(|| {
                format!(
                    "argument {} is not JSON: {a} (strings need quotes: '\"text\"')",
                    i + 1
                )
            })
        })
        .collect::<anyhow::Result<Vec<serde_json::Value>>>()?;
    let client = g.client().await?;
    let result = client.call(&args.id, &args.function, &values).await?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}
