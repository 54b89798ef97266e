//! The manager's own metric: how long ago it last heard from each host
//! (`trellis.host.heartbeat.age`), recorded whenever it checks for silent hosts.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::metrics::Gauge;
use opentelemetry::KeyValue;

static AGE: OnceLock<Gauge<f64>> = OnceLock::new();

pub fn heartbeat_ages<'a>(ages: impl Iterator<Item = (&'a str, Duration)>) {
    if !trellis_telemetry::enabled() {
        return;
    }
    let gauge = AGE.get_or_init(|| {
        opentelemetry::global::meter("trellis-deploy")
            .f64_gauge("trellis.host.heartbeat.age")
            .with_unit("s")
            .with_description("Time since the manager last heard from a host")
            .build()
    });
    for (host, age) in ages {
        gauge.record(
            age.as_secs_f64(),
            &[KeyValue::new("trellis.host.id", host.to_string())],
        );
    }
}
