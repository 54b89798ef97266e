//! What a provider's handlers see: the provider's context, shared by every call, and each
//! call's own context (who calls, over which link, in which trace, with which config).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt as _;
use tracing::Instrument as _;
use trellis_lattice::link::Config;
use trellis_lattice::rpc::{IncomingCall, RemoteErrorKind};
use trellis_lattice::trace::TraceContext;
use trellis_lattice::Subjects;
use wrpc_transport_nats::NatsContext;

use crate::links::{LinkError, LinkInfo, Links};

/// The provider's side of the lattice, shared by all its calls; cheap to clone.
#[derive(Clone)]
pub struct ProviderContext {
    inner: Arc<Inner>,
}

struct Inner {
    nats: async_nats::Client,
    subjects: Subjects,
    provider_id: String,
    host_id: String,
    links: Links,
}

/// One call, as a handler sees it.
#[derive(Clone, Debug)]
pub struct Call {
    /// What the call's headers say (source, link name, trace, where to report errors).
    pub incoming: IncomingCall,
    /// The link the call follows, with its merged target config.
    pub link: LinkInfo,
    /// The span handling this call (a child of the caller's).
    pub trace: TraceContext,
    /// The function called, as `instance.function` (e.g. `wasi:keyvalue/store@0.2.0-draft.open`).
    pub function: String,
}

impl Call {
    /// The calling component.
    pub fn source(&self) -> &str {
        &self.link.link.source_id
    }

    /// The name of the link the call follows.
    pub fn link_name(&self) -> &str {
        &self.link.link.name
    }

    /// The link's merged target config.
    pub fn target_config(&self) -> &Config {
        &self.link.target_config
    }

    /// One value of the link's target config.
    pub fn config(&self, key: &str) -> Option<&str> {
        self.link.config(key)
    }

    /// A short description of the link for messages: `link default from counter (wasi:keyvalue)`.
    pub fn describe_link(&self) -> String {
        format!(
            "link `{}` from `{}` ({})",
            self.link.link.name,
            self.link.link.source_id,
            self.link.link.package()
        )
    }
}

/// The function a wRPC subject names: what follows `wrpc.0.0.1.`.
fn function_of(subject: &str) -> String {
    trellis_lattice::subject::rpc::function_of(subject).to_string()
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}

impl ProviderContext {
    pub fn new(
        nats: async_nats::Client,
        subjects: Subjects,
        provider_id: String,
        host_id: String,
        links: Links,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                nats,
                subjects,
                provider_id,
                host_id,
                links,
            }),
        }
    }

    pub fn nats(&self) -> &async_nats::Client {
        &self.inner.nats
    }

    pub fn subjects(&self) -> &Subjects {
        &self.inner.subjects
    }

    pub fn lattice(&self) -> &str {
        self.inner.subjects.lattice()
    }

    pub fn provider_id(&self) -> &str {
        &self.inner.provider_id
    }

    pub fn host_id(&self) -> &str {
        &self.inner.host_id
    }

    /// The lattice's links and config: the store, or while it is unreachable the saved copy.
    pub fn lattice_state(&self) -> &trellis_lattice::kv::LatticeState {
        self.inner.links.lattice_state()
    }

    pub fn links(&self) -> &Links {
        &self.inner.links
    }

    /// The provider's own merged config.
    pub fn config(&self) -> Config {
        self.inner.links.provider_config()
    }

    /// Resolves an incoming call to its link, without reporting anything.
    pub async fn resolve(
        &self,
        cx: &NatsContext,
        wit_namespace: &str,
        wit_package: &str,
    ) -> Result<Call, (IncomingCall, LinkError)> {
        let incoming = IncomingCall::from_headers(cx.headers.as_ref());
        let trace = incoming
            .trace
            .map(|t| t.child())
            .unwrap_or_else(TraceContext::new_root);
        match self
            .inner
            .links
            .for_call(&incoming, wit_namespace, wit_package)
            .await
        {
            Ok(link) => Ok(Call {
                incoming,
                link,
                trace,
                function: function_of(cx.subject.as_str()),
            }),
            Err(err) => Err((incoming, err)),
        }
    }

    /// Tells the caller of `incoming` why its call failed (see
    /// [`IncomingCall::report`]). Must happen before the call's results close, which
    /// [`ProviderContext::handle`] takes care of.
    pub async fn report(&self, incoming: &IncomingCall, kind: RemoteErrorKind, message: &str) {
        incoming
            .report(
                &self.inner.nats,
                &self.inner.provider_id,
                &self.inner.host_id,
                kind,
                message,
            )
            .await;
    }

    /// The exported span of one call (disabled when nothing is exported).
    fn call_span(&self, incoming: &IncomingCall, function: &str) -> tracing::Span {
        // Off, or not sampled (the caller's decision, or this new trace's).
        if !trellis_telemetry::sampling::decide(incoming.trace.as_ref()) {
            return tracing::Span::none();
        }
        let (interface, func) = function.rsplit_once('.').unwrap_or((function, ""));
        trellis_telemetry::spans::provider_call(
            self.provider_id(),
            interface,
            func,
            incoming.source.as_deref().unwrap_or(""),
        )
    }

    /// Runs one call of a function of `wit_namespace:wit_package`: resolves its link, runs
    /// `f` with the [`Call`] in a span carrying the caller's trace, and turns every failure
    /// (no link, missing config, an `Err` or a panic in `f`) into an error report to the
    /// caller, sent before the generated code closes the call's results. Use it as the
    /// body of every generated `Handler` method:
    ///
    /// ```ignore
    /// async fn open(&self, cx: NatsContext, id: String) -> anyhow::Result<Result<..>> {
    ///     self.ctx.handle(cx, "wasi", "keyvalue", |call| self.open(call, id)).await
    /// }
    /// ```
    ///
    /// Errors the interface can express (a WIT `error` value) belong in `f`'s `Ok` value;
    /// `Err` is for failures the interface has no words for.
    pub async fn handle<T, F, Fut>(
        &self,
        cx: NatsContext,
        wit_namespace: &str,
        wit_package: &str,
        f: F,
    ) -> anyhow::Result<T>
    where
        F: FnOnce(Call) -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        let call = match self.resolve(&cx, wit_namespace, wit_package).await {
            Ok(mut call) => {
                let exported = self.call_span(&call.incoming, &call.function);
                call.trace =
                    trellis_telemetry::context::continue_remote(&exported, call.incoming.trace);
                (call, exported)
            }
            Err((incoming, err)) => {
                let message = err.to_string();
                let exported = self.call_span(&incoming, &function_of(cx.subject.as_str()));
                let _ = trellis_telemetry::context::continue_remote(&exported, incoming.trace);
                trellis_telemetry::spans::fail(&exported, "link", &message);
                tracing::warn!(
                    provider_id = self.provider_id(),
                    source_id = incoming.source.as_deref().unwrap_or(""),
                    link_name = incoming.link.as_deref().unwrap_or(""),
                    function = function_of(cx.subject.as_str()),
                    %message,
                    "refused a call"
                );
                self.report(&incoming, RemoteErrorKind::Internal, &message)
                    .await;
                return Err(anyhow::Error::new(err));
            }
        };
        let (call, exported) = call;
        let span = if exported.is_disabled() {
            tracing::info_span!(
                "call",
                provider_id = self.provider_id(),
                source_id = call.source(),
                link_name = call.link_name(),
                function = call.function,
                trace_id = call.trace.trace_id_hex(),
            )
        } else {
            exported
        };
        let incoming = call.incoming.clone();
        let outcome = AssertUnwindSafe(f(call).instrument(span.clone()))
            .catch_unwind()
            .await;
        let err = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => err,
            Err(panic) => anyhow::anyhow!("the provider panicked: {}", panic_message(&*panic)),
        };
        let message = format!("{err:#}");
        trellis_telemetry::spans::fail(&span, RemoteErrorKind::Internal.as_str(), &message);
        span.in_scope(|| tracing::warn!(%message, "call failed"));
        self.report(&incoming, RemoteErrorKind::Internal, &message)
            .await;
        Err(err)
    }
}
