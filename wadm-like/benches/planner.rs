//! How the deployment manager's planner grows with the lattice: `scaler::plan` (the pure
//! core every reconcile pass runs) over synthetic inventories of 100, 1,000 and 10,000 hosts
//! carrying one app of 100 components × 1,000 replicas (100,000 replicas), spread by tier
//! labels. For each size, in the same run:
//!
//! - floor: one walk over every host's components summing replicas (what any planner that
//!   reads the whole inventory pays at least);
//! - deploy: the plan from an empty lattice to every replica placed;
//! - steady: the pass over a lattice that already matches (the pass every heartbeat, event or
//!   status change triggers; it must plan nothing);
//! - heal: the pass after 10 % of the hosts vanished (re-placing what they ran).
//!
//! Time is the median of RUNS plans (the spread's shown); memory is what the model of the
//! lattice holds, and the peak the planner allocates above it during one plan (a counting
//! allocator in this binary).
//!
//! Run: `cargo bench -p trellis-deploy --bench planner` (`TRELLIS_BENCH_RUNS`, default 5).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use trellis_deploy::model::{Observed, ObservedHost};
use trellis_deploy::scaler::{plan, Command};
use trellis_deploy::Manifest;

/// Counts the bytes held now and the most held since the last [`reset_peak`].
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = HELD.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters move.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            HELD.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn held() -> usize {
    HELD.load(Ordering::Relaxed)
}

fn reset_peak() {
    PEAK.store(held(), Ordering::Relaxed);
}

fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

const COMPONENTS: usize = 100;
const REPLICAS: u32 = 1_000;
const SIZES: [usize; 3] = [100, 1_000, 10_000];

/// 100 components of 1,000 replicas: half spread 80/20 over cloud and gateway hosts, half
/// over every host.
fn manifest() -> Manifest {
    let mut yaml = String::from(
        "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata: { name: fleet, annotations: { version: v1 } }\nspec:\n  components:\n",
    );
    for i in 0..COMPONENTS {
        yaml.push_str(&format!(
            "    - name: c{i}\n      type: component\n      properties: {{ image: file:///c{i}.wasm }}\n      traits:\n        - type: spreadscaler\n          properties:\n            instances: {REPLICAS}\n"
        ));
        if i % 2 == 0 {
            yaml.push_str(
                "            spread:\n              - { name: cloud, requirements: { tier: cloud }, weight: 80 }\n              - { name: gateway, requirements: { tier: gateway }, weight: 20 }\n",
            );
        }
    }
    match trellis_deploy::validate::parse("fleet.yaml", &yaml) {
        Ok(m) => m,
        Err(e) => panic!("the bench's manifest is invalid:\n{e}"),
    }
}

/// A host id shaped like a real one (an nkey: `N` and 55 base-32 characters), made from `i`
/// so runs repeat: ids that differ only at their end would make every id comparison slower
/// than the lattice's.
fn host_id(i: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut state = (i as u64).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut id = String::from("N");
    for _ in 0..55 {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let v = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        id.push(ALPHABET[(v >> 59) as usize] as char);
    }
    id
}

/// `n` hosts: 60 % cloud, 30 % gateway, 10 % edge, in three zones.
fn lattice(n: usize) -> Observed {
    let mut observed = Observed::default();
    for i in 0..n {
        let tier = match i % 10 {
            0..=5 => "cloud",
            6..=8 => "gateway",
            _ => "edge",
        };
        let labels = [
            ("tier".to_string(), tier.to_string()),
            ("zone".to_string(), format!("z{}", i % 3)),
        ]
        .into_iter()
        .collect();
        observed.add_host(ObservedHost::new(&host_id(i), labels));
    }
    observed
}

fn replicas(observed: &Observed) -> u64 {
    observed
        .hosts
        .values()
        .flat_map(|h| h.components.values())
        .map(|c| u64::from(c.replicas))
        .sum()
}

fn apply(observed: &mut Observed, commands: &[Command]) {
    for c in commands {
        observed.apply_for("fleet", c);
    }
}

/// Plans and applies until a pass plans nothing.
fn converge(manifest: &Manifest, observed: &mut Observed) -> usize {
    for pass in 0..10 {
        let p = plan(manifest, None, observed);
        if p.commands.is_empty() {
            return pass;
        }
        apply(observed, &p.commands);
    }
    panic!("the planner did not settle in 10 passes");
}

struct Row {
    times: Vec<Duration>,
    peak: usize,
    commands: usize,
}

impl Row {
    fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        t[t.len() / 2]
    }
}

/// Runs `f` `runs` times on a fresh clone of `observed` each (the clone is not timed).
fn measure(runs: usize, observed: &Observed, mut f: impl FnMut(&Observed) -> usize) -> Row {
    let mut row = Row {
        times: Vec::with_capacity(runs),
        peak: 0,
        commands: 0,
    };
    for _ in 0..runs {
        let input = observed.clone();
        let base = held();
        reset_peak();
        let started = Instant::now();
        row.commands = f(&input);
        row.times.push(started.elapsed());
        row.peak = row.peak.max(peak().saturating_sub(base));
        drop(input);
    }
    row
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn print(name: &str, row: &Row, floor: Duration) {
    let min = row.times.iter().min().copied().unwrap_or_default();
    let max = row.times.iter().max().copied().unwrap_or_default();
    let median = row.median();
    println!(
        "  {name:<8} {:>11} (min {}, max {})  {:>7.0}× floor  peak +{}  {} commands",
        ms(median),
        ms(min),
        ms(max),
        median.as_secs_f64() / floor.as_secs_f64().max(1e-9),
        mib(row.peak),
        row.commands
    );
}

fn main() {
    let runs: usize = std::env::var("TRELLIS_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(5);
    let manifest = manifest();
    println!(
        "planner: one app of {COMPONENTS} components × {REPLICAS} replicas; medians of {runs} plans per row"
    );
    for hosts in SIZES {
        let before = held();
        let empty = lattice(hosts);
        let mut placed = empty.clone();
        let passes = converge(&manifest, &mut placed);
        let model = held().saturating_sub(before);
        let total = replicas(&placed);
        println!(
            "\n{hosts} hosts, {total} replicas placed in {passes} pass(es); the model of both lattices holds {}",
            mib(model)
        );
        let floor = measure(runs, &placed, |o| {
            std::hint::black_box(replicas(o));
            0
        });
        let floor_median = floor.median();
        print("floor", &floor, floor_median);
        let deploy = measure(runs, &empty, |o| plan(&manifest, None, o).commands.len());
        print("deploy", &deploy, floor_median);
        let steady = measure(runs, &placed, |o| plan(&manifest, None, o).commands.len());
        print("steady", &steady, floor_median);
        assert_eq!(steady.commands, 0, "a matching lattice must plan nothing");
        let mut shrunk = placed.clone();
        let gone: Vec<String> = shrunk.hosts.keys().step_by(10).cloned().collect();
        for id in &gone {
            shrunk.hosts.remove(id);
        }
        let heal = measure(runs, &shrunk, |o| plan(&manifest, None, o).commands.len());
        print("heal", &heal, floor_median);
    }
}
