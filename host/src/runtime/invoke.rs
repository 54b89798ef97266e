//! One invocation: a fresh store, the instance, the call, the limits, and a clear account of
//! what went wrong when it fails.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use trellis_lattice::inventory::ComponentLimits;
use trellis_lattice::rpc::RemoteErrorKind;
use wasmtime::component::InstancePre;
use wasmtime::UpdateDeadline;

use super::store::{LimitExceeded, OutputCapture, StoreState};
use super::{ImportClient, Runtime, ServedFunction};

/// Slack on top of the time limit for the outer watchdog, which only matters while the guest
/// waits in a host call (the epoch check covers guest code).
const WATCHDOG_SLACK: Duration = Duration::from_millis(50);

/// A failed invocation, classified.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: RemoteErrorKind,
    pub message: String,
}

/// Everything one invocation needs.
pub struct Invocation<'a> {
    pub runtime: &'a Runtime,
    pub pre: &'a InstancePre<StoreState>,
    pub function: &'a ServedFunction,
    pub limits: ComponentLimits,
    pub client: ImportClient,
    pub config: super::ComponentConfig,
}

impl Invocation<'_> {
    /// Reads the parameters from `rx`, calls the function in a new instance and writes the
    /// results to `tx`. Returns what the guest printed.
    pub async fn run<I, O>(self, rx: I, tx: O) -> (Result<(), Failure>, String)
    where
        I: AsyncRead + wrpc_transport::Index<I> + Send + Sync + Unpin + 'static,
        O: AsyncWrite + wrpc_transport::Index<O> + Send + Sync + Unpin + 'static,
    {
        let _ticking = self.runtime.ticker().enter();
        let output = OutputCapture::default();
        let mut store = self
            .runtime
            .new_store(&self.limits, self.client, &output, self.config);
        let limit = Duration::from_millis(self.limits.timeout_ms);
        arm_deadline(&mut store, limit);
        let pre = self.pre;
        let function = self.function;
        let call = async move {
            let instance = pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| classify(&e, "failed to instantiate"))?;
            let func = instance
                .get_func(&mut store, function.index)
                .ok_or_else(|| Failure {
                    kind: RemoteErrorKind::Internal,
                    message: format!(
                        "export `{}` disappeared",
                        function.export.signature.qualified_name()
                    ),
                })?;
            let params: Vec<_> = function.export.ty.params().map(|(_, t)| t).collect();
            let results: Vec<_> = function.export.ty.results().collect();
            wrpc_runtime_wasmtime::call(
                &mut store,
                rx,
                tx,
                &[],
                &Default::default(),
                &[],
                params.iter(),
                &results,
                func,
            )
            .await
            .map_err(|e| classify_call(&e))
        };
        let result = match tokio::time::timeout(limit + WATCHDOG_SLACK, call).await {
            Ok(r) => r,
            Err(_) => Err(Failure {
                kind: RemoteErrorKind::TimeLimit,
                message: LimitExceeded::Time { limit }.to_string(),
            }),
        };
        (result, output.take())
    }
}

/// Enforces `limit` of wall-clock time on the store's guest code, checked every epoch tick;
/// each tick also yields, so a busy guest shares its thread with other work.
pub fn arm_deadline(store: &mut wasmtime::Store<StoreState>, limit: Duration) {
    let deadline = Instant::now() + limit;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Err(wasmtime::Error::new(LimitExceeded::Time { limit }))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
}

/// Slack on top of the time limit for the watchdog that covers time spent in host calls.
pub fn watchdog(limit: Duration) -> Duration {
    limit + WATCHDOG_SLACK
}

fn classify_call(err: &wrpc_runtime_wasmtime::CallError) -> Failure {
    use wrpc_runtime_wasmtime::CallError as E;
    match err {
        E::Decode(e) => Failure {
            kind: RemoteErrorKind::BadRequest,
            message: format!("parameters do not match the function's types: {e:#}"),
        },
        E::Call(e) => classify(e, "call failed"),
        E::Guest(e) => Failure {
            kind: RemoteErrorKind::Internal,
            message: format!("{e}"),
        },
        other => Failure {
            kind: RemoteErrorKind::Internal,
            message: format!("{other:#}"),
        },
    }
}

/// Names the limit or trap behind a wasmtime error.
pub fn classify(err: &wasmtime::Error, what: &str) -> Failure {
    let limit = err
        .chain()
        .find_map(|e| e.downcast_ref::<LimitExceeded>().copied());
    if let Some(limit) = limit {
        let kind = match limit {
            LimitExceeded::Time { .. } => RemoteErrorKind::TimeLimit,
            LimitExceeded::Memory { .. } | LimitExceeded::Table { .. } => {
                RemoteErrorKind::MemoryLimit
            }
        };
        return Failure {
            kind,
            message: format!("stopped: {limit}"),
        };
    }
    if let Some(trap) = err.chain().find_map(|e| e.downcast_ref::<wasmtime::Trap>()) {
        return Failure {
            kind: RemoteErrorKind::Trap,
            message: format!("trapped: {trap}"),
        };
    }
    Failure {
        kind: RemoteErrorKind::Internal,
        message: format!("{what}: {err:#}"),
    }
}
