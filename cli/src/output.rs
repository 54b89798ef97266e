//! Tables for people, JSON for scripts.

use std::time::Duration;

use comfy_table::{presets, ContentArrangement, Table};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// A borderless table in the style of kubectl.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| h.to_uppercase()));
    t
}

pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `2h 5m`, `3m 12s`, `45s`: rounded for reading.
pub fn age(seconds: u64) -> String {
    let rounded = match seconds {
        s if s >= 86_400 => s - s % 3600,
        s if s >= 3600 => s - s % 60,
        s => s,
    };
    humantime::format_duration(Duration::from_secs(rounded)).to_string()
}

/// `k=v,k2=v2`, leaving out the built-in `trellis.` labels unless `all`.
pub fn labels(labels: &std::collections::BTreeMap<String, String>, all: bool) -> String {
    labels
        .iter()
        .filter(|(k, _)| all || !trellis_lattice::labels::is_builtin(k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A spinner on stderr for anything that waits; hidden when stderr is not a terminal.
pub fn spinner(message: impl Into<std::borrow::Cow<'static, str>>) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    pb.enable_steady_tick(Duration::from_millis(100));
    pb.set_message(message);
    pb
}
