//! `--profile`: the sizing defaults each profile picks, and flags given explicitly winning
//! over them. (Here rather than beside `profile.rs`, which `config.rs` uses.)

use clap::Parser as _;

use std::time::Duration;

use trellis_host::config::{HostArgs, HostConfig};
use trellis_host::profile::{flag_help, profile_help, Field, Profile};

fn config(args: &[&str]) -> HostConfig {
    let mut argv = vec!["trellis-host", "--ephemeral"];
    argv.extend_from_slice(args);
    HostConfig::from_args(HostArgs::try_parse_from(argv).expect("flags parse"))
        .expect("config resolves")
}

#[test]
fn default_profile_keeps_the_former_defaults() {
    let c = config(&[]);
    let new = HostConfig::new("nats://127.0.0.1:4222", "default");
    assert_eq!(c.profile, Profile::Default);
    assert_eq!(c.pool_instances, new.pool_instances);
    assert_eq!(c.pool_instances, 1000);
    assert_eq!(c.memory_ceiling, 1 << 30);
    assert_eq!(c.max_memory, 64 << 20);
    assert_eq!(c.pool_keep_resident, 128 << 10);
    assert_eq!(c.heartbeat_interval, Duration::from_secs(5));
    assert_eq!(c.provider_health_interval, Duration::from_secs(5));
    assert_eq!(c.memory_ceiling, new.memory_ceiling);
    assert_eq!(c.max_memory, new.max_memory);
    assert_eq!(c.pool_keep_resident, new.pool_keep_resident);
    assert_eq!(c.heartbeat_interval, new.heartbeat_interval);
    assert_eq!(c.provider_health_interval, new.provider_health_interval);
}

#[test]
fn edge_profile_picks_small_defaults() {
    let c = config(&["--profile", "edge"]);
    assert_eq!(c.profile, Profile::Edge);
    assert_eq!(c.pool_instances, 16);
    assert_eq!(c.memory_ceiling, 64 << 20);
    assert_eq!(c.max_memory, 16 << 20);
    assert_eq!(c.pool_keep_resident, 64 << 10);
    assert_eq!(c.heartbeat_interval, Duration::from_secs(15));
    assert_eq!(c.provider_health_interval, Duration::from_secs(15));
}

#[test]
fn explicit_flags_win_over_the_profile() {
    let c = config(&[
        "--profile",
        "edge",
        "--pool-instances",
        "100",
        "--memory-ceiling",
        "256MiB",
        "--max-memory",
        "32MiB",
        "--pool-keep-resident",
        "128KiB",
        "--heartbeat-interval",
        "2s",
        "--provider-health-interval",
        "3s",
    ]);
    assert_eq!(c.pool_instances, 100);
    assert_eq!(c.memory_ceiling, 256 << 20);
    assert_eq!(c.max_memory, 32 << 20);
    assert_eq!(c.pool_keep_resident, 128 << 10);
    assert_eq!(c.heartbeat_interval, Duration::from_secs(2));
    assert_eq!(c.provider_health_interval, Duration::from_secs(3));
    // One flag given; the others still come from the profile.
    let c = config(&["--profile", "edge", "--pool-instances", "0"]);
    assert_eq!(c.pool_instances, 0);
    assert_eq!(c.memory_ceiling, 64 << 20);
    assert_eq!(c.heartbeat_interval, Duration::from_secs(15));
}

#[test]
fn a_smaller_ceiling_caps_the_profiles_max_memory_but_not_an_explicit_one() {
    let c = config(&["--profile", "edge", "--memory-ceiling", "8MiB"]);
    assert_eq!(c.max_memory, 8 << 20);
    let argv = [
        "trellis-host",
        "--ephemeral",
        "--memory-ceiling",
        "8MiB",
        "--max-memory",
        "16MiB",
    ];
    let err = HostConfig::from_args(HostArgs::try_parse_from(argv).unwrap()).unwrap_err();
    assert!(err.to_string().contains("--max-memory"), "{err}");
}

#[test]
fn help_lists_every_profile_value() {
    let help = profile_help();
    assert!(
        help.contains("--pool-instances: default 1000, edge 16"),
        "{help}"
    );
    assert!(
        help.contains("--memory-ceiling: default 1GiB, edge 64MiB"),
        "{help}"
    );
    assert!(
        help.contains("--heartbeat-interval: default 5s, edge 15s"),
        "{help}"
    );
    assert_eq!(
        flag_help("Instances", Field::PoolInstances),
        "Instances [default by --profile: default 1000, edge 16]"
    );
    let rendered = HostArgs::try_parse_from(["trellis-host", "--help"])
        .unwrap_err()
        .to_string();
    assert!(rendered.contains("--profile"), "{rendered}");
    assert!(rendered.contains("edge 64MiB"), "{rendered}");
}
