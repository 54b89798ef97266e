//! `trellis top`: live per-component figures read from the hosts themselves (`host.stats`),
//! no collector needed. Two samples an interval apart give rates; the hosts' fixed-bucket
//! duration histograms give p50/p99 over the interval.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use serde::Serialize;
use trellis_lattice::stats::{delta, quantile_us, ComponentStats, HostStats};
use trellis_lattice::LatticeClient;

use crate::global::Global;
use crate::output::{table, Format};

#[derive(clap::Args)]
pub struct TopArgs {
    /// Time between refreshes.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Stop after this many refreshes (default: until interrupted; 1 with `-o json`).
    #[arg(long)]
    pub count: Option<u32>,
    /// Only components on this host.
    #[arg(long)]
    pub host: Option<String>,
}

/// One component on one host over one interval.
#[derive(Debug, Serialize, PartialEq)]
pub struct Row {
    pub host_id: String,
    pub host: String,
    pub component_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    pub invocations_per_sec: f64,
    pub errors_per_sec: f64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub active: u32,
    pub max: u32,
    pub memory_peak_bytes: u64,
    /// Mean CPU time per invocation over the sampled invocations of the interval.
    pub cpu_per_invocation_us: Option<f64>,
    pub invocations_total: u64,
    pub errors_total: u64,
}

type Sample = BTreeMap<(String, String), (HostStats, ComponentStats)>;

async fn sample(client: &LatticeClient, only: Option<&str>) -> anyhow::Result<Sample> {
    let hosts = match only {
        Some(id) => vec![id.to_string()],
        None => client.hosts().await?.into_iter().map(|h| h.id).collect(),
    };
    let answers = futures::future::join_all(hosts.iter().map(|h| client.host_stats(h))).await;
    let mut out = Sample::new();
    for answer in answers {
        let stats = match answer {
            Ok(stats) => stats,
            // The one host asked for by name must answer.
            Err(err) if only.is_some() => return Err(err.into()),
            // A host that stopped between the listing and the question is simply gone.
            Err(_) => continue,
        };
        for c in &stats.components {
            let key = (stats.host_id.clone(), c.component_id.clone());
            out.insert(key, (stats.clone(), c.clone()));
        }
    }
    Ok(out)
}

/// The rows of an interval of `secs` seconds between two samples.
pub fn rows(before: &Sample, now: &Sample, secs: f64) -> Vec<Row> {
    let secs = secs.max(1e-3);
    now.iter()
        .map(|((host_id, id), (host, c))| {
            let prev = before.get(&(host_id.clone(), id.clone())).map(|(_, p)| p);
            let counts = delta(&c.durations, prev.map(|p| p.durations.as_slice()));
            let inv = c
                .invocations
                .saturating_sub(prev.map_or(0, |p| p.invocations));
            let err = c.errors.saturating_sub(prev.map_or(0, |p| p.errors));
            let cpu_ns = c.cpu_ns.saturating_sub(prev.map_or(0, |p| p.cpu_ns));
            let sampled = c
                .cpu_sampled
                .saturating_sub(prev.map_or(0, |p| p.cpu_sampled));
            Row {
                host_id: host_id.clone(),
                host: host.friendly_name.clone(),
                component_id: id.clone(),
                app: c.app.clone(),
                invocations_per_sec: inv as f64 / secs,
                errors_per_sec: err as f64 / secs,
                p50_us: quantile_us(&counts, 0.5),
                p99_us: quantile_us(&counts, 0.99),
                active: c.active,
                max: c.max,
                memory_peak_bytes: c.memory_peak_bytes,
                cpu_per_invocation_us: (sampled > 0)
                    .then(|| cpu_ns as f64 / sampled as f64 / 1000.0),
                invocations_total: c.invocations,
                errors_total: c.errors,
            }
        })
        .collect()
}

fn duration(us: Option<u64>) -> String {
    match us {
        None => "-".into(),
        Some(us) if us < 1000 => format!("{us}µs"),
        Some(us) if us < 1_000_000 => format!("{:.1}ms", us as f64 / 1000.0),
        Some(us) => format!("{:.2}s", us as f64 / 1e6),
    }
}

fn render(rows: &[Row], interval: Duration) -> String {
    let mut t = table(&[
        "host",
        "component",
        "app",
        "inv/s",
        "err/s",
        "p50",
        "p99",
        "active/max",
        "mem peak",
        "cpu/inv",
    ]);
    for r in rows {
        t.add_row(vec![
            r.host.clone(),
            r.component_id.clone(),
            r.app.clone().unwrap_or_default(),
            format!("{:.1}", r.invocations_per_sec),
            format!("{:.1}", r.errors_per_sec),
            duration(r.p50_us),
            duration(r.p99_us),
            format!("{}/{}", r.active, r.max),
            trellis_lattice::units::format_bytes(r.memory_peak_bytes),
            r.cpu_per_invocation_us
                .map(|us| format!("{us:.1}µs"))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    format!(
        "{} component(s); figures over the last {}\n{t}",
        rows.len(),
        humantime::format_duration(interval)
    )
}

pub async fn run(global: &Global, args: TopArgs) -> anyhow::Result<()> {
    if let Some(host) = &args.host {
        trellis_lattice::id::validate_host_id(host)?;
    }
    let client = global.client().await?;
    let json = global.output == Format::Json;
    let count = args.count.or(json.then_some(1));
    let interactive = !json && std::io::stdout().is_terminal();
    let mut before = sample(&client, args.host.as_deref()).await?;
    let mut taken = Instant::now();
    let mut shown = 0u32;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let now = sample(&client, args.host.as_deref()).await?;
        let at = Instant::now();
        let rows = rows(&before, &now, at.duration_since(taken).as_secs_f64());
        if json {
            println!("{}", serde_json::to_string(&rows)?);
        } else {
            if interactive {
                // Refresh in place: home the cursor and clear the screen.
                print!("\x1b[H\x1b[2J");
            }
            println!("{}", render(&rows, at.duration_since(taken)));
        }
        shown += 1;
        if count.is_some_and(|c| shown >= c) {
            return Ok(());
        }
        before = now;
        taken = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_lattice::stats::bucket_of;

    fn stats(inv: u64, err: u64, durations: Vec<(u32, u64)>) -> (HostStats, ComponentStats) {
        let c = ComponentStats {
            component_id: "c".into(),
            invocations: inv,
            errors: err,
            active: 1,
            max: 4,
            durations,
            memory_peak_bytes: 1 << 20,
            cpu_ns: inv * 10_000,
            cpu_sampled: inv,
            ..Default::default()
        };
        let h = HostStats {
            host_id: "N1".into(),
            friendly_name: "h".into(),
            uptime_ms: 1,
            components: vec![c.clone()],
        };
        (h, c)
    }

    #[test]
    fn rates_and_quantiles_over_the_interval() {
        let key = ("N1".to_string(), "c".to_string());
        let before: Sample = [(
            key.clone(),
            stats(100, 0, vec![(bucket_of(50) as u32, 100)]),
        )]
        .into();
        let now: Sample = [(
            key,
            stats(
                300,
                10,
                vec![(bucket_of(50) as u32, 100), (bucket_of(2000) as u32, 200)],
            ),
        )]
        .into();
        let r = rows(&before, &now, 2.0);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].invocations_per_sec, 100.0);
        assert_eq!(r[0].errors_per_sec, 5.0);
        assert_eq!(
            r[0].p50_us,
            Some(trellis_lattice::stats::bucket_bounds_us()[bucket_of(2000)])
        );
        assert_eq!(r[0].cpu_per_invocation_us, Some(10.0));
        assert!(render(&r, Duration::from_secs(2)).contains("100.0"));
    }
}
