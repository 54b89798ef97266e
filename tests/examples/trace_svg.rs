//! Renders a real exported trace as an SVG waterfall (the picture in the README): starts
//! NATS, two hosts exporting to an in-process OTLP receiver, the counter on host A behind
//! the HTTP server, its key-value provider on host B; sends one request; draws the trace
//! that arrived.
//!
//! Run: `cargo build --bins && cargo run -p trellis-tests --example trace_svg -- docs/trace.svg`

use trellis_tests::otlp::{pairs, ReceivedSpan};
use trellis_tests::{
    connected_trace, counter_across_two_hosts, route, start_http_server, HostProcess, NatsServer,
    OtlpReceiver, Protocol,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "trace.svg".into());
    let receiver = OtlpReceiver::start().await;
    let nats = NatsServer::start().await;
    let otel = receiver.env(Protocol::Grpc);
    let a = HostProcess::start_with_env(
        &nats.url(),
        "picture",
        &[("tier", "edge")],
        &[],
        &pairs(&otel),
    )
    .await;
    let b = HostProcess::start_with_env(
        &nats.url(),
        "picture",
        &[("tier", "cloud")],
        &[],
        &pairs(&otel),
    )
    .await;
    let client = nats.client("picture").await;
    counter_across_two_hosts(&client, a.id(), b.id(), "picture").await;
    let base = start_http_server(&client, a.id(), "web", &[]).await;
    route(&client, "web", "counter", "counter", Some("/counter"), None).await;
    // A first request warms the instance pool and the provider's bucket; the second is drawn.
    reqwest::get(format!("{base}/counter/visits")).await?;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before: std::collections::BTreeSet<String> =
        receiver.spans().into_iter().map(|s| s.trace_id).collect();
    reqwest::get(format!("{base}/counter/visits")).await?;
    let trace = receiver
        .wait_for("the request's trace", |r| {
            let spans = r.spans();
            let root = spans.iter().find(|s| {
                s.parent_span_id.is_empty()
                    && s.name == "GET /counter/*"
                    && !before.contains(&s.trace_id)
            })?;
            let t = connected_trace(&spans, &root.trace_id).ok()?;
            t.iter()
                .any(|s| s.attr("trellis.provider.id") == Some("kv-nats"))
                .then_some(t)
        })
        .await;
    let hosts = [
        (a.id().to_string(), "host A (edge)"),
        (b.id().to_string(), "host B (cloud)"),
    ];
    std::fs::write(&out, render(&trace, &hosts))?;
    println!(
        "wrote {out}: {} spans of trace {}",
        trace.len(),
        trace[0].trace_id
    );
    Ok(())
}

/// Spans in tree order (depth first, children by start time) with their depth.
fn ordered(spans: &[ReceivedSpan]) -> Vec<(usize, &ReceivedSpan)> {
    fn walk<'a>(
        spans: &'a [ReceivedSpan],
        parent: &str,
        depth: usize,
        out: &mut Vec<(usize, &'a ReceivedSpan)>,
    ) {
        let mut children: Vec<&ReceivedSpan> = spans
            .iter()
            .filter(|s| s.parent_span_id == parent)
            .collect();
        children.sort_by_key(|s| s.start_ns);
        for c in children {
            out.push((depth, c));
            walk(spans, &c.span_id, depth + 1, out);
        }
    }
    let mut out = Vec::new();
    walk(spans, "", 0, &mut out);
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn render(spans: &[ReceivedSpan], hosts: &[(String, &str)]) -> String {
    let rows = ordered(spans);
    let t0 = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let t1 = spans
        .iter()
        .map(|s| s.end_ns)
        .max()
        .unwrap_or(1)
        .max(t0 + 1);
    let (label_w, bar_w, row_h, top) = (430.0, 520.0, 22.0, 40.0);
    let height = top + row_h * rows.len() as f64 + 30.0;
    let x = |ns: u64| label_w + bar_w * (ns - t0) as f64 / (t1 - t0) as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" font-family=\"monospace\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-weight=\"bold\">trace {id} — {n} spans, {ms:.2} ms (exported by Trellis, received over OTLP)</text>\n",
        w = label_w + bar_w + 20.0,
        id = spans.first().map(|s| s.trace_id.as_str()).unwrap_or(""),
        n = spans.len(),
        ms = (t1 - t0) as f64 / 1e6,
    );
    for (i, (depth, s)) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let instance = s
            .resource
            .get("service.instance.id")
            .map(String::as_str)
            .unwrap_or("");
        let (who, color) = match hosts.iter().position(|(id, _)| id == instance) {
            Some(0) => (hosts[0].1, "#4e79a7"),
            Some(_) => (hosts[1].1, "#f28e2b"),
            None => (s.service.as_str(), "#59a14f"),
        };
        let color = if s.is_error() { "#e15759" } else { color };
        let (x0, x1) = (x(s.start_ns), x(s.end_ns).max(x(s.start_ns) + 1.5));
        // The figure goes right of its bar when there is room, else left of it.
        let label = format!(
            "{:.0} µs · {}",
            (s.end_ns - s.start_ns) as f64 / 1000.0,
            escape(who)
        );
        let (lx, anchor, ink) = if x1 + 190.0 < label_w + bar_w {
            (x1 + 4.0, "start", "#333")
        } else if x1 - x0 > 190.0 {
            (x0 + 4.0, "start", "white")
        } else {
            (x0 - 4.0, "end", "#333")
        };
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\">{}</text>\n<rect x=\"{x0:.1}\" y=\"{}\" width=\"{:.1}\" height=\"14\" fill=\"{color}\"/>\n<text x=\"{lx:.1}\" y=\"{}\" fill=\"{ink}\" text-anchor=\"{anchor}\">{label}</text>\n",
            10 + depth * 14,
            y + 12.0,
            escape(&s.name),
            y + 1.0,
            x1 - x0,
            y + 12.0,
        ));
    }
    svg.push_str(&format!(
        "<text x=\"10\" y=\"{}\" fill=\"#555\">blue: host A (HTTP server, counter) · orange: host B (key-value provider) · bars to scale</text>\n</svg>\n",
        height - 10.0
    ));
    svg
}
