//! The OpenTelemetry resource of a Trellis process.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

use crate::switch::Service;

/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` are read by the SDK's detectors; the
/// service name given by the process applies unless `OTEL_SERVICE_NAME` is set.
pub(crate) fn build(service: &Service) -> Resource {
    let mut attributes = vec![
        KeyValue::new("service.version", service.version),
        KeyValue::new("service.instance.id", service.instance_id.clone()),
        KeyValue::new("host.arch", arch()),
    ];
    if let Some(name) = hostname() {
        attributes.push(KeyValue::new("host.name", name));
    }
    attributes.extend(service.attributes.iter().cloned());
    let builder = Resource::builder().with_attributes(attributes);
    let named = std::env::var("OTEL_SERVICE_NAME")
        .map(|v| !v.trim().is_empty())
        .unwrap_or(false);
    if named {
        builder.build()
    } else {
        builder.with_service_name(service.name.clone()).build()
    }
}

/// `host.arch` as the semantic conventions spell it.
fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm32",
        "powerpc64" => "ppc64",
        "x86" => "x86",
        other => other,
    }
}

fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty() && name.len() <= 255).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_carries_identity() {
        let service = Service {
            name: "trellis-host".into(),
            version: "0.1.0",
            instance_id: "NABC".into(),
            attributes: vec![KeyValue::new("tier", "edge")],
        };
        let resource = build(&service);
        let get = |k: &'static str| resource.get(&opentelemetry::Key::from_static_str(k));
        assert_eq!(
            get("service.instance.id").map(|v| v.to_string()),
            Some("NABC".into())
        );
        assert_eq!(get("tier").map(|v| v.to_string()), Some("edge".into()));
        assert!(get("host.arch").is_some());
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            assert_eq!(
                get("service.name").map(|v| v.to_string()),
                Some("trellis-host".into())
            );
        }
    }
}
