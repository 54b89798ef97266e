//! wrk runs of a server, their CPU cost, and medians over the runs without errors.
#![allow(dead_code)] // shared by the http and observability benches, each using a part

use std::process::Command;
use std::time::Duration;

/// One wrk run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Run {
    pub rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    pub cpu_us_per_req: f64,
    pub errors: u64,
}

/// Seconds per wrk run: `TRELLIS_BENCH_SECONDS`, 10 by default.
pub fn seconds() -> u64 {
    std::env::var("TRELLIS_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

/// User + system CPU time of a process (and its threads), from /proc.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name.
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

pub fn ms(value: &str) -> f64 {
    let (num, unit) = value.split_at(
        value
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(value.len()),
    );
    let n: f64 = num.parse().unwrap_or(0.0);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => n,
    }
}

pub fn wrk(url: &str, connections: u32, seconds: u64, server_pid: u32) -> Run {
    let cpu_before = cpu_time(server_pid);
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .expect("running wrk (apt-get install wrk)");
    let cpu = cpu_time(server_pid).saturating_sub(cpu_before);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut run = Run::default();
    let mut requests = 0u64;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => run.rps = v.parse().unwrap_or(0.0),
            ["50%", v] => run.p50_ms = ms(v),
            ["99%", v] => run.p99_ms = ms(v),
            [n, "requests", "in", ..] => requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                run.errors += n.parse::<u64>().unwrap_or(0)
            }
            ["Socket", "errors:", rest @ ..] => {
                run.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_matches(',').parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    if requests > 0 {
        run.cpu_us_per_req = cpu.as_secs_f64() * 1e6 / requests as f64;
    }
    run
}

/// Medians over the runs without errors; a run with any error (a non-2xx response, a socket
/// error) is reported as failed and left out.
pub fn report(name: &str, runs: &[Run]) -> Run {
    let good: Vec<&Run> = runs.iter().filter(|r| r.errors == 0).collect();
    let failed = runs.len() - good.len();
    let m = Run {
        rps: median(good.iter().map(|r| r.rps).collect()),
        p50_ms: median(good.iter().map(|r| r.p50_ms).collect()),
        p99_ms: median(good.iter().map(|r| r.p99_ms).collect()),
        cpu_us_per_req: median(good.iter().map(|r| r.cpu_us_per_req).collect()),
        errors: runs.iter().map(|r| r.errors).sum(),
    };
    let rps: Vec<f64> = good.iter().map(|r| r.rps).collect();
    let (min, max) = (
        rps.iter().copied().fold(f64::INFINITY, f64::min),
        rps.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "{name:<46} {:>7.0} req/s (min {:.0}, max {:.0})  p50 {:>5.2} ms  p99 {:>6.2} ms  {:>5.1} µs CPU/req  median of {} runs{}",
        m.rps,
        if rps.is_empty() { 0.0 } else { min },
        max,
        m.p50_ms,
        m.p99_ms,
        m.cpu_us_per_req,
        good.len(),
        if failed > 0 {
            format!("; {failed} run(s) FAILED with {} errors", m.errors)
        } else {
            String::new()
        }
    );
    m
}

/// One server under load.
pub struct Target {
    pub name: &'static str,
    pub url: String,
    pub pid: u32,
}

/// `rounds` wrk runs of every target, interleaved, after a short warm-up of each.
pub fn interleaved(
    targets: &[Target],
    connections: u32,
    seconds: u64,
    rounds: usize,
) -> Vec<Vec<Run>> {
    for t in targets {
        wrk(&t.url, connections, 2, t.pid);
    }
    let mut runs = vec![Vec::new(); targets.len()];
    for _ in 0..rounds {
        for (i, t) in targets.iter().enumerate() {
            runs[i].push(wrk(&t.url, connections, seconds, t.pid));
        }
    }
    runs
}

/// Waits until `url` answers 200 (a server just started).
pub fn wait_for_http(url: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let ok = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", url])
            .output()
            .map(|o| o.stdout == b"200")
            .unwrap_or(false);
        if ok {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{url} did not answer 200 within 30s");
}
