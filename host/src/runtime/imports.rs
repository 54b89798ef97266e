//! Satisfying a component's imports: WASI natively, every other interface by calling whoever
//! its link names over the lattice (wRPC polyfill), chosen per call so links can change while
//! the component runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tracing::Instrument as _;
use trellis_lattice::rpc::{CallContext, CallReader, CallWriter, Invoker};
use trellis_lattice::trace::TraceContext;
use trellis_telemetry::spans;
use wasmtime::component::types::{self, ComponentItem};
use wasmtime::component::{Component, Linker, ResourceType, Type};
use wasmtime::Engine;
use wrpc_runtime_wasmtime::{
    collect_component_resource_imports, link_instance, RemoteResource, WrpcView,
};

/// Interface packages the host implements itself.
const NATIVE_PACKAGES: &[&str] = &[
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/",
    "wasi:filesystem/",
    "wasi:sockets/",
    // wasi:http/types and outgoing-handler; incoming-handler is an export.
    "wasi:http/",
    // Answered from the component's own named configs.
    "wasi:config/",
    // Written to the host log and exported as log records.
    "wasi:logging/",
    // A component's own spans and records, nested under its invocation.
    "wasi:otel/",
    // The pins of this host's chips the component was granted.
    "wasi:gpio/",
];

/// Whether the host implements this import itself.
pub fn is_native(import: &str) -> bool {
    NATIVE_PACKAGES.iter().any(|p| import.starts_with(p))
}

/// Splits `ns:pkg/iface@version` into (`ns:pkg`, `iface`), ignoring the version.
pub fn split_interface(name: &str) -> Option<(&str, &str)> {
    let unversioned = name.split('@').next().unwrap_or(name);
    let (package, iface) = unversioned.split_once('/')?;
    package.contains(':').then_some((package, iface))
}

/// The target of one call through an import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub target_id: String,
    pub link_name: String,
}

/// Decides, per call, which target serves an import of a component (the host's links).
pub trait ImportResolver: Send + Sync {
    /// `source` is the calling component, `instance` the import (`ns:pkg/iface@version`).
    fn resolve(&self, source: &str, instance: &str) -> Result<Target, String>;

    /// Asked when [`Self::resolve`] found nothing: resolve again from the source of truth
    /// (a link put a moment ago may not have reached this host's table yet).
    fn resolve_fresh<'a>(
        &'a self,
        source: &'a str,
        instance: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<Target, String>> {
        Box::pin(async move { self.resolve(source, instance) })
    }
}

/// Why a component's imports cannot be satisfied.
#[derive(Debug, thiserror::Error)]
#[error("cannot satisfy import `{import}`: {reason}")]
pub struct ImportError {
    pub import: String,
    pub reason: String,
}

fn unsatisfiable(import: &str, reason: impl Into<String>) -> ImportError {
    ImportError {
        import: import.to_string(),
        reason: reason.into(),
    }
}

/// For each linked instance, its resources by name: the guest's type and the host's.
type HostResources = HashMap<Box<str>, HashMap<Box<str>, (ResourceType, ResourceType)>>;

/// A linker for `component`: `base` (WASI) plus a lattice polyfill for every other imported
/// interface. Fails for imports that no link could ever satisfy.
pub fn linker_for<T: WrpcView + 'static>(
    engine: &Engine,
    component: &Component,
    base: &Linker<T>,
) -> Result<Linker<T>, ImportError>
where
    T::Invoke: wrpc_transport::Invoke<Context = CallContext>,
{
    let ty = component.component_type();
    let mut linker = base.clone();

    let mut imported_resources = BTreeMap::new();
    collect_component_resource_imports(engine, &ty, &mut imported_resources);
    // Resources of linked interfaces live with the target; the guest holds opaque handles.
    let host_resources: HostResources = imported_resources
        .into_iter()
        .filter(|(instance, _)| !is_native(instance))
        .map(|(instance, resources)| {
            let mapped = resources
                .into_iter()
                .map(|(name, guest)| (name, (guest, ResourceType::host::<RemoteResource>())))
                .collect();
            (instance, mapped)
        })
        .collect();
    let linkable_resources: Vec<ResourceType> = host_resources
        .values()
        .flat_map(|r| r.values().map(|(guest, _)| *guest))
        .collect();
    let host_resources = Arc::new(host_resources);

    for (name, item) in ty.imports(engine) {
        if is_native(name) {
            continue;
        }
        let instance = match item {
            ComponentItem::ComponentInstance(instance) => instance,
            ComponentItem::ComponentFunc(_) => {
                return Err(unsatisfiable(
                    name,
                    "functions imported at the component's root cannot be linked; import them through an interface (namespace:package/interface)",
                ))
            }
            ComponentItem::Resource(_) | ComponentItem::Type(_) => continue,
            ComponentItem::CoreFunc(_) | ComponentItem::Module(_) | ComponentItem::Component(_) => {
                return Err(unsatisfiable(
                    name,
                    "only interfaces can be imported (not core functions, modules or components)",
                ))
            }
        };
        if split_interface(name).is_none() {
            return Err(unsatisfiable(
                name,
                "not a namespace:package/interface name, so no link can name it",
            ));
        }
        check_crossable(engine, name, &instance, &linkable_resources)?;
        let mut inst = linker
            .instance(name)
            .map_err(|e| unsatisfiable(name, e.to_string()))?;
        link_instance(
            engine,
            &mut inst,
            Vec::<ResourceType>::new(),
            Arc::clone(&host_resources),
            instance,
            name,
        )
        .map_err(|e| unsatisfiable(name, format!("{e:#}")))?;
    }
    Ok(linker)
}

/// Checks that every value the interface's functions pass can cross the lattice.
fn check_crossable(
    engine: &Engine,
    import: &str,
    instance: &types::ComponentInstance,
    linkable_resources: &[ResourceType],
) -> Result<(), ImportError> {
    for (fname, item) in instance.exports(engine) {
        let ComponentItem::ComponentFunc(func) = item else {
            continue;
        };
        let types = func.params().map(|(_, t)| t).chain(func.results());
        for t in types {
            if let Some(what) = uncrossable(&t, linkable_resources) {
                return Err(unsatisfiable(
                    import,
                    format!("function `{fname}` passes a {what}, which cannot cross the lattice"),
                ));
            }
        }
    }
    Ok(())
}

fn uncrossable(ty: &Type, linkable: &[ResourceType]) -> Option<String> {
    match ty {
        Type::Future(_) => Some("future".into()),
        Type::Stream(_) => Some("stream".into()),
        Type::ErrorContext => Some("error-context".into()),
        Type::Map(_) => Some("map".into()),
        Type::Own(r) | Type::Borrow(r) if !linkable.contains(r) => {
            Some("resource the host owns (such as a wasi:io stream)".into())
        }
        Type::List(l) => uncrossable(&l.ty(), linkable),
        Type::Option(o) => uncrossable(&o.ty(), linkable),
        Type::Record(r) => r.fields().find_map(|f| uncrossable(&f.ty, linkable)),
        Type::Tuple(t) => t.types().find_map(|t| uncrossable(&t, linkable)),
        Type::Variant(v) => v
            .cases()
            .find_map(|c| c.ty.as_ref().and_then(|t| uncrossable(t, linkable))),
        Type::Result(r) => r
            .ok()
            .and_then(|t| uncrossable(&t, linkable))
            .or_else(|| r.err().and_then(|t| uncrossable(&t, linkable))),
        _ => None,
    }
}

/// The `Invoke` behind a component's polyfilled imports: resolves the link for each call
/// and invokes the target through the host's [`Invoker`].
pub struct ImportClient {
    invoker: Arc<Invoker>,
    resolver: Arc<dyn ImportResolver>,
    source: Arc<str>,
    trace: TraceContext,
    /// The invocation's span: the parent of each import call's span.
    span: tracing::Span,
    /// Calls through links that led to the invocation.
    depth: u32,
    /// When the invocation's time limit ends (none: no limit).
    deadline: Option<tokio::time::Instant>,
}

impl ImportClient {
    pub fn new(
        invoker: Arc<Invoker>,
        resolver: Arc<dyn ImportResolver>,
        source: Arc<str>,
        trace: TraceContext,
        span: tracing::Span,
    ) -> Self {
        Self {
            invoker,
            resolver,
            source,
            trace,
            span,
            depth: 0,
            deadline: None,
        }
    }

    /// Calls made by an invocation `depth` links deep, which must end by `deadline`.
    pub fn within(mut self, depth: u32, deadline: tokio::time::Instant) -> Self {
        self.depth = depth;
        self.deadline = Some(deadline);
        self
    }

    /// Context of a call made now: a new span in the invocation's trace, one link deeper,
    /// with what is left of the invocation's time.
    pub fn call_context(&self) -> CallContext {
        CallContext {
            trace: Some(self.trace.child()),
            source: Some(self.source.to_string()),
            link: None,
            depth: self.depth.saturating_add(1),
            budget: self
                .deadline
                .map(|d| d.saturating_duration_since(tokio::time::Instant::now())),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.invoker.config().timeout
    }
}

impl wrpc_transport::Invoke for ImportClient {
    type Context = CallContext;
    type Outgoing = CallWriter;
    type Incoming = CallReader;

    async fn invoke<P>(
        &self,
        cx: Self::Context,
        instance: &str,
        func: &str,
        params: Bytes,
        _paths: impl AsRef<[P]> + Send,
    ) -> anyhow::Result<(Self::Outgoing, Self::Incoming)>
    where
        P: AsRef<[Option<usize>]> + Send + Sync,
    {
        let target = match self.resolver.resolve(&self.source, instance) {
            Ok(t) => t,
            Err(_) => self
                .resolver
                .resolve_fresh(&self.source, instance)
                .await
                .map_err(anyhow::Error::msg)?,
        };
        let span = spans::import_call(
            &self.span,
            instance,
            func,
            &target.link_name,
            &target.target_id,
        );
        let cx = CallContext {
            trace: trellis_telemetry::context::of(&span).or(cx.trace),

            link: Some(target.link_name),
            ..cx
        };
        let started = std::time::Instant::now();
        let invoked = self
            .invoker
            .invoke(&target.target_id, &cx, instance, func, params)
            .instrument(span.clone())
            .await;
        crate::observe::link_call(instance, &target.target_id, started);
        match invoked {
            Ok((writer, reader)) => Ok((writer, reader.keep_until_done(span))),
            Err(err) => {
                spans::fail(&span, err.kind().as_str(), &err.to_string());
                Err(err.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_native("wasi:io/streams@0.2.9"));
        assert!(!is_native("wasi:keyvalue/store@0.2.0-draft"));
        assert_eq!(
            split_interface("wasi:keyvalue/atomics@0.2.0-draft"),
            Some(("wasi:keyvalue", "atomics"))
        );
        assert_eq!(split_interface("log"), None);
        assert_eq!(split_interface("a/b"), None);
    }
}
