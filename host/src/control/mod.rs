//! The control interface: control requests on the host's subjects (and the lattice-wide link
//! and config requests of the hosts' queue group), one task each so a slow request
//! (compiling a component) never holds up a ping.
//!
//! - `router`: each request to the part that carries it out; `state`: link and config
//!   requests; `parts`: the narrow traits the router sees the host's parts through.

pub mod gpio;
pub mod parts;
pub mod router;
pub mod state;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;
use trellis_telemetry::{context, spans};

use futures::future::BoxFuture;
use futures::{FutureExt as _, StreamExt as _};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use trellis_lattice::server::{self, ControlRequest, Listen};
use trellis_lattice::{ClientConfig, LatticeClient, Subjects};

use parts::{ComponentControl, ImportsLookup};
pub use router::Router;

/// Subscribes the host's control subjects and serves them with `router` until `shutdown`.
pub async fn serve(
    router: Arc<Router>,
    nats: &async_nats::Client,
    subjects: &Subjects,
    host_id: &str,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut listen = vec![
        Listen::subject(subjects.host_control_wildcard(host_id)),
        Listen::subject(subjects.host_ping()),
        Listen::subject(subjects.component_auction()),
    ];
    listen.extend(
        subjects
            .store_requests()
            .into_iter()
            .map(|s| Listen::queue(s, subjects.any_host_group())),
    );
    let requests = server::control_requests(nats, subjects, listen).await?;
    let mut requests = server::until_cancelled(requests, shutdown);
    let subjects = subjects.clone();
    let host_id = host_id.to_string();
    tokio::spawn(async move {
        while let Some(incoming) = requests.next().await {
            let router = Arc::clone(&router);
            let name = ControlRequest::name_of(&subjects, &incoming.subject);
            let exported = if trellis_telemetry::sampling::decide(incoming.parent.as_ref()) {
                spans::control(name.unwrap_or("unknown"), &host_id)
            } else {
                tracing::Span::none()
            };
            let trace = context::continue_remote(&exported, incoming.parent);
            let span = if exported.is_disabled() {
                tracing::info_span!("control", request = name.unwrap_or("unknown"), trace_id = %trace.trace_id_hex())
            } else {
                exported
            };
            tokio::spawn(
                async move {
                    let request = incoming.request.clone();
                    router
                        .serve(request, name, &trace, |answer| async move {
                            if let Err(err) = &answer {
                                spans::fail(
                                    &tracing::Span::current(),
                                    err.kind.as_str(),
                                    &err.message,
                                );
                            }
                            incoming.respond(answer).await;
                        })
                        .await;
                }
                .instrument(span),
            );
        }
    });
    Ok(())
}

/// What a link's source imports: from this host when it runs the component, else from any
/// host that does (asked over the lattice, never cached: a component may have been replaced).
pub struct LatticeImports {
    components: Arc<dyn ComponentControl>,
    client: LatticeClient,
}

impl LatticeImports {
    pub fn new(
        components: Arc<dyn ComponentControl>,
        nats: async_nats::Client,
        lattice: &str,
    ) -> anyhow::Result<Self> {
        let config = ClientConfig {
            request_timeout: Duration::from_secs(2),
            ..ClientConfig::default()
        };
        Ok(Self {
            components,
            client: LatticeClient::with_config(nats, lattice, config)?,
        })
    }
}

impl ImportsLookup for LatticeImports {
    fn imports_of<'a>(&'a self, component_id: &'a str) -> BoxFuture<'a, Option<Vec<String>>> {
        async move {
            if let Some(imports) = self.components.imports_of(component_id) {
                return Some(imports);
            }
            self.client
                .describe_uncached(component_id)
                .await
                .ok()
                .map(|d| d.imports)
        }
        .boxed()
    }
}
