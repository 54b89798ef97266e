//! The host's OpenTelemetry metrics. Instruments are made on first use once export is on;
//! with it off every function here returns after one relaxed load. Attributes are bounded:
//! component id, app, interface, target, error kind — never a path, subject or request id.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use opentelemetry::metrics::{BoundCounter, BoundHistogram, Counter, Histogram};
use opentelemetry::KeyValue;

struct Instruments {
    invocations: Counter<u64>,
    errors: Counter<u64>,
    duration: Histogram<f64>,
    queue_wait: Histogram<f64>,
    memory_peak: Histogram<u64>,
    cpu: Histogram<f64>,
    link_call: Histogram<f64>,
    logs_dropped: Counter<u64>,
}

static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();

fn instruments() -> Option<&'static Instruments> {
    if !trellis_telemetry::enabled() {
        return None;
    }
    Some(INSTRUMENTS.get_or_init(|| {
        let meter = opentelemetry::global::meter("trellis-host");
        Instruments {
            invocations: meter
                .u64_counter("trellis.component.invocations")
                .with_description("Invocations of a component (wRPC calls and HTTP requests)")
                .build(),
            errors: meter
                .u64_counter("trellis.component.invocation.errors")
                .with_description("Failed invocations, by error kind")
                .build(),
            duration: meter
                .f64_histogram("trellis.component.invocation.duration")
                .with_unit("s")
                .with_description("Time from a free instance to the end of the invocation")
                .build(),
            queue_wait: meter
                .f64_histogram("trellis.component.queue.wait.duration")
                .with_unit("s")
                .with_description("Time an invocation waited for a free instance")
                .build(),
            memory_peak: meter
                .u64_histogram("trellis.component.memory.peak")
                .with_unit("By")
                .with_description("Linear memory an invocation's instance reached")
                .build(),
            cpu: meter
                .f64_histogram("trellis.component.cpu.time")
                .with_unit("s")
                .with_description("CPU time of an invocation (measured on one in 16)")
                .build(),
            link_call: meter
                .f64_histogram("trellis.link.call.duration")
                .with_unit("s")
                .with_description(
                    "Calls through a component's linked import, until the callee accepted",
                )
                .build(),
            logs_dropped: meter
                .u64_counter("trellis.component.logs.dropped")
                .with_description(
                    "Log records of components dropped (over the per-invocation limit)",
                )
                .build(),
        }
    }))
}

/// The attributes of a component's measurements.
pub fn component_attributes(component_id: &str, app: Option<&str>) -> Vec<KeyValue> {
    let mut attrs = vec![KeyValue::new(
        "trellis.component.id",
        component_id.to_string(),
    )];
    if let Some(app) = app {
        attrs.push(KeyValue::new("trellis.app", app.to_string()));
    }
    attrs
}

/// One component's instruments, bound to its attributes once: a measurement is then an
/// update of its aggregator, without hashing the attributes to find it on every call.
pub struct ComponentMeters {
    attrs: Vec<KeyValue>,
    invocations: BoundCounter<u64>,
    duration: BoundHistogram<f64>,
    queue_wait: BoundHistogram<f64>,
    memory_peak: BoundHistogram<u64>,
    cpu: BoundHistogram<f64>,
}

impl ComponentMeters {
    /// `None` while nothing is exported.
    pub fn bind(component_id: &str, app: Option<&str>) -> Option<Self> {
        let i = instruments()?;
        let attrs = component_attributes(component_id, app);
        Some(Self {
            invocations: i.invocations.bind(&attrs),
            duration: i.duration.bind(&attrs),
            queue_wait: i.queue_wait.bind(&attrs),
            memory_peak: i.memory_peak.bind(&attrs),
            cpu: i.cpu.bind(&attrs),
            attrs,
        })
    }

    /// One finished invocation.
    pub fn invocation(
        &self,
        duration: Duration,
        memory_peak: u64,
        cpu: Option<Duration>,
        error: Option<&'static str>,
    ) {
        self.invocations.add(1);
        if let Some(cpu) = cpu {
            self.cpu.record(cpu.as_secs_f64());
        }
        self.duration.record(duration.as_secs_f64());
        self.memory_peak.record(memory_peak);
        if let (Some(kind), Some(i)) = (error, instruments()) {
            let mut with_kind = self.attrs.clone();
            with_kind.push(KeyValue::new("error.type", kind));
            i.errors.add(1, &with_kind);
        }
    }

    /// The wait of one invocation for a free instance.
    pub fn queue_wait(&self, waited: Duration) {
        self.queue_wait.record(waited.as_secs_f64());
    }
}

/// Log records of a component dropped over its limit.
pub fn logs_dropped(attrs: &[KeyValue], n: u64) {
    if let Some(i) = instruments() {
        i.logs_dropped.add(n, attrs);
    }
}

/// One call through a linked import (`interface` versioned or not; the version is kept off).
pub fn link_call(interface: &str, target: &str, started: Instant) {
    let Some(i) = instruments() else { return };
    let interface = interface.split('@').next().unwrap_or(interface);
    i.link_call.record(
        started.elapsed().as_secs_f64(),
        &[
            KeyValue::new("rpc.service", interface.to_string()),
            KeyValue::new("trellis.link.target", target.to_string()),
        ],
    );
}

/// What a component printed on stdout and stderr during one invocation: each line becomes a
/// log record in the invocation's span (so it carries the trace), as before in the host log.
pub fn component_output(
    span: &tracing::Span,
    component_id: &str,
    trace: &trellis_lattice::trace::TraceContext,
    output: &str,
) {
    if output.is_empty() {
        return;
    }
    span.in_scope(|| {
        for line in output.lines().filter(|l| !l.trim().is_empty()) {
            tracing::info!(target: "trellis::component", component_id, trace_id = %trace.trace_id_hex(), "{line}");
        }
    });
}

/// One component's instance figures, as the gauges read them.
pub struct InstanceFigures {
    pub component_id: String,
    pub app: Option<String>,
    pub active: u32,
    pub max: u32,
}

/// Registers the observable gauges read at each export: `trellis.component.instances.active`
/// and `.max` per component, `trellis.provider.health` per provider (1 healthy, 0 not).
pub fn register_gauges(
    instances: impl Fn() -> Vec<InstanceFigures> + Send + Sync + 'static,
    providers: impl Fn() -> Vec<(String, bool)> + Send + Sync + 'static,
) {
    if !trellis_telemetry::enabled() {
        return;
    }
    let meter = opentelemetry::global::meter("trellis-host");
    let instances: Instances = std::sync::Arc::new(instances);
    instance_gauge(
        &meter,
        "trellis.component.instances.active",
        "Instances of a component running an invocation now",
        std::sync::Arc::clone(&instances),
        |f| f.active,
    );
    instance_gauge(
        &meter,
        "trellis.component.instances.max",
        "Instances a component may run at once (its replicas)",
        instances,
        |f| f.max,
    );
    meter
        .u64_observable_gauge("trellis.provider.health")
        .with_description("1 while a provider is healthy, 0 otherwise")
        .with_callback(move |obs| {
            for (id, healthy) in providers() {
                obs.observe(
                    u64::from(healthy),
                    &[KeyValue::new("trellis.provider.id", id)],
                );
            }
        })
        .build();
}

type Instances = std::sync::Arc<dyn Fn() -> Vec<InstanceFigures> + Send + Sync>;

/// One per-component gauge over the instance figures.
fn instance_gauge(
    meter: &opentelemetry::metrics::Meter,
    name: &'static str,
    description: &'static str,
    instances: Instances,
    value: fn(&InstanceFigures) -> u32,
) {
    meter
        .u64_observable_gauge(name)
        .with_description(description)
        .with_callback(move |obs| {
            for f in instances() {
                let attrs = component_attributes(&f.component_id, f.app.as_deref());
                obs.observe(u64::from(value(&f)), &attrs);
            }
        })
        .build();
}
