//! The character-device backend against a real kernel's `gpio-sim`: run inside the VM of
//! `scripts/gpio-kernel-test.sh` (`scripts/gpio-kernel-check.sh` builds this binary
//! statically and runs it there with `--ignored`). Outside that VM there is no simulated
//! chip to talk to, so a plain `cargo test` leaves it out.

use std::path::PathBuf;
use std::time::Duration;

use trellis_gpio::{monotonic_ns, Bias, Chips, Direction, Edge, GpioError, LineSettings};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run me in the gpio-sim VM"))
}

/// Drives simulated input `line` of chip 0 the way the kernel's gpio-sim offers.
fn pull(line: u32, up: bool) {
    let path = PathBuf::from(env("GPIO_SIM_PULL_DIR")).join(format!("sim_gpio{line}/pull"));
    std::fs::write(&path, if up { "pull-up" } else { "pull-down" })
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// What the simulator says a line shows (an output's driven value).
fn shown(line: u32) -> String {
    let path = PathBuf::from(env("GPIO_SIM_PULL_DIR")).join(format!("sim_gpio{line}/value"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_string()
}

fn run(cmd: &str) {
    let status = std::process::Command::new(cmd)
        .status()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(status.success(), "{cmd} failed");
}

#[tokio::test]
#[ignore = "needs a kernel with gpio-sim: scripts/gpio-kernel-check.sh"]
async fn the_character_device_backend_for_real() {
    let chip0 = env("GPIO_SIM_CHIP0");
    let chips = Chips::new("/dev");
    assert!(chips.rescan(), "the simulated chips are found under /dev");
    let names = chips.names();
    assert!(names.borrow().contains(&chip0), "{:?}", names.borrow());

    // Line names and the chip's label, from the kernel.
    let info = chips.list();
    let c0 = info
        .iter()
        .find(|c| c.name == chip0)
        .expect("chip 0 listed");
    assert_eq!(c0.label, "trellis-sim");
    assert!(!c0.simulated, "a real character device");
    assert_eq!(
        (c0.lines[0].name.as_str(), c0.lines[1].name.as_str()),
        ("button", "led")
    );
    println!(
        "ok   chip info: {} ({}), {} lines, names from the chip",
        c0.name,
        c0.label,
        c0.lines.len()
    );

    // Edges with the kernel's monotonic timestamps, and reads.
    let watched = LineSettings {
        edges: true,
        ..LineSettings::input()
    };
    let button = chips
        .claim("button#1", &chip0, 0, &watched)
        .expect("claim line 0");
    let mut events = button.events();
    let before = monotonic_ns();
    pull(0, true);
    let e = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an edge")
        .expect("open");
    let after = monotonic_ns();
    assert_eq!((e.line, e.edge), (0, Edge::Rising));
    assert!(
        before <= e.timestamp_ns && e.timestamp_ns <= after,
        "{before} <= {} <= {after}",
        e.timestamp_ns
    );
    assert!(button.get().unwrap(), "reads active after the rise");
    pull(0, false);
    let e = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an edge")
        .expect("open");
    assert_eq!(e.edge, Edge::Falling);
    assert!(!button.get().unwrap());
    println!("ok   edges rising and falling, stamped by the kernel between write and read");

    // Outputs: what the line drives shows in the simulator.
    let led = chips
        .claim("led#1", &chip0, 1, &LineSettings::output(false))
        .expect("claim line 1");
    led.set(true).unwrap();
    assert_eq!(shown(1), "1");
    assert!(
        chips.get(&chip0, 1).unwrap(),
        "the host reads what it drives"
    );
    led.set(false).unwrap();
    assert_eq!(shown(1), "0");
    let list = chips.list();
    let l1 = &list.iter().find(|c| c.name == chip0).unwrap().lines[1];
    assert_eq!(
        (l1.direction, l1.used_by.as_deref()),
        (Direction::Output, Some("component `led`"))
    );
    println!("ok   output driven and listed as held by its component");

    // Bias sets the simulated pull; active-low inverts the logical value.
    let biased = LineSettings {
        bias: Some(Bias::PullUp),
        ..LineSettings::input()
    };
    let l2 = chips
        .claim("bias#1", &chip0, 2, &biased)
        .expect("claim line 2");
    assert!(l2.get().unwrap(), "pull-up reads high");
    let inverted = LineSettings {
        active_low: true,
        ..biased
    };
    chips
        .claim("bias#1", &chip0, 2, &inverted)
        .expect("reconfigure line 2");
    assert!(!l2.get().unwrap(), "active-low: high is inactive");
    println!("ok   bias and active-low");

    // A line another process holds.
    let mut other = gpiocdev::request::Config::default();
    other
        .on_chip(format!("/dev/{chip0}"))
        .with_line(3)
        .as_input();
    let _held = gpiocdev::Request::from_config(other)
        .with_consumer("other-process")
        .request()
        .expect("request line 3");
    match chips.claim("late#1", &chip0, 3, &LineSettings::input()) {
        Err(GpioError::InUse { by, .. }) => assert_eq!(by, "another process"),
        other => panic!("expected InUse, got {:?}", other.map(|_| ())),
    }
    let listed = chips.list();
    let l3 = &listed.iter().find(|c| c.name == chip0).unwrap().lines[3];
    assert_eq!(l3.used_by.as_deref(), Some("other-process"));
    println!("ok   a line requested elsewhere is in use, and shows its consumer");

    // The chip goes: its lines fail, the chip leaves the list, and comes back renamed.
    let mut changes = chips.names();
    changes.borrow_and_update();
    run("/bin/gpio-sim-remove");
    assert!(button.get().is_err(), "a line of a removed chip fails");
    assert!(chips.rescan(), "the removal is seen");
    assert!(changes.has_changed().unwrap(), "the names changed");
    assert!(!chips.names().borrow().contains(&chip0));
    assert!(matches!(
        chips.claim("button#1", &chip0, 0, &watched),
        Err(GpioError::NoSuchChip(_))
    ));
    run("/bin/gpio-sim-add");
    assert!(chips.rescan(), "the chips are back");
    assert_eq!(chips.names().borrow().len(), 2);
    println!("ok   a chip that disappears and comes back");
}

/// Figures, not checks: how long an edge takes from the write that causes it to the
/// watcher that receives it, on the kernel's gpio-sim (character device, event thread,
/// broadcast) beside a simulated chip in this process, interleaved. Printed by
/// `scripts/gpio-kernel-check.sh`.
#[tokio::test]
#[ignore = "needs a kernel with gpio-sim: scripts/gpio-kernel-check.sh"]
async fn edge_latency_figures() {
    use std::time::Instant;
    let chip0 = env("GPIO_SIM_CHIP0");
    let chips = Chips::new("/dev");
    chips.rescan();
    chips.add_sim("sim0", 8).expect("simulated chip");
    let watched = LineSettings {
        edges: true,
        ..LineSettings::input()
    };
    let real = chips.claim("bench#1", &chip0, 5, &watched).expect("claim");
    let sim = chips.claim("bench#1", "sim0", 5, &watched).expect("claim");
    let (mut real_rx, mut sim_rx) = (real.events(), sim.events());
    let (mut real_t, mut sim_t) = (Vec::new(), Vec::new());
    const N: usize = 200;
    for i in 0..N {
        let high = i % 2 == 0;
        let start = Instant::now();
        pull(5, high);
        tokio::time::timeout(Duration::from_secs(10), real_rx.recv())
            .await
            .expect("edge")
            .expect("open");
        real_t.push(start.elapsed());
        let start = Instant::now();
        chips.set("sim0", 5, high).expect("drive");
        tokio::time::timeout(Duration::from_secs(10), sim_rx.recv())
            .await
            .expect("edge")
            .expect("open");
        sim_t.push(start.elapsed());
    }
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
    };
    println!("edge latency, write -> watcher, {N} edges each, interleaved (qemu TCG, 1 vCPU):");
    println!(
        "  character device (gpio-sim pull write)  p50 {:?}  p99 {:?}",
        pct(&mut real_t, 0.5),
        pct(&mut real_t, 0.99)
    );
    println!(
        "  simulated chip in process (baseline)    p50 {:?}  p99 {:?}",
        pct(&mut sim_t, 0.5),
        pct(&mut sim_t, 0.99)
    );
}
