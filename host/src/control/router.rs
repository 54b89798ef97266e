//! The control router: each parsed request to the part that carries it out, and the events
//! it causes, published with the request's trace.

use std::collections::BTreeMap;
use std::sync::Arc;

use trellis_lattice::control::{
    AuctionOffer, ComponentAuction, ComponentScaled, Empty, ScaleComponent, StartProvider,
};
use trellis_lattice::event::{
    ComponentScaleFailed, Event, LabelsChanged, ProviderStartFailed, ProviderStarted,
    ProviderStopped,
};
use trellis_lattice::labels::{self, Labels};
use trellis_lattice::server::{
    answer, Answer, ControlRequest, EventSink, HostRequest, StateRequest,
};
use trellis_lattice::trace::TraceContext;
use trellis_lattice::ControlError;

use super::parts::{ComponentControl, HostControl, ProviderControl};
use super::state::StateHandlers;
use crate::labels::HostLabels;

/// Everything the router hands requests to.
pub struct Router {
    pub host: Arc<dyn HostControl>,
    pub labels: Arc<HostLabels>,
    pub components: Arc<dyn ComponentControl>,
    pub providers: Arc<dyn ProviderControl>,
    pub state: StateHandlers,
    pub events: Arc<dyn EventSink>,
    /// The host's GPIO chips.
    pub gpio: Arc<trellis_gpio::Chips>,
}

impl Router {
    /// Serves one request: handles it, hands the answer to `reply`, then does what must wait
    /// for the answer to have left. A stop is one: stopping closes the connection the answer
    /// would leave by, so the caller of `host stop` could wait for a reply that never comes.
    pub async fn serve<F, Fut>(
        &self,
        request: Result<ControlRequest, ControlError>,
        name: Option<&str>,
        trace: &TraceContext,
        reply: F,
    ) where
        F: FnOnce(Answer) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let stop = match &request {
            Ok(ControlRequest::Host(HostRequest::Stop(req))) => Some(req.timeout_ms),
            _ => None,
        };
        if let Some(answer) = self.handle(request, name, trace).await {
            reply(answer).await;
        }
        if let Some(timeout_ms) = stop {
            self.host.request_stop(timeout_ms);
        }
    }

    /// Handles one request; `None` means stay silent.
    /// `name` says which request it was when it did not parse (`component.scale`).
    pub async fn handle(
        &self,
        request: Result<ControlRequest, ControlError>,
        name: Option<&str>,
        trace: &TraceContext,
    ) -> Option<Answer> {
        let request = match request {
            Ok(r) => r,
            Err(e) => return self.malformed(e, name, trace).await,
        };
        Some(match request {
            ControlRequest::Host(req) => return self.host_request(req, trace).await,
            ControlRequest::State(req) => self.state_request(req, trace).await,
            other => Err(ControlError::invalid(format!(
                "{} is not served by hosts on this subject",
                other.name()
            ))),
        })
    }

    /// A request whose body did not parse: answered with why (an auction too). A malformed
    /// scale request is a failed scale like any other, and announced as one.
    async fn malformed(
        &self,
        err: ControlError,
        name: Option<&str>,
        trace: &TraceContext,
    ) -> Option<Answer> {
        if name == Some("component.scale") {
            let event = Event::ComponentScaleFailed(ComponentScaleFailed {
                host_id: self.host.host_id().to_string(),
                component_id: String::new(),
                image: String::new(),
                replicas: 0,
                reason: err.message.clone(),
                annotations: BTreeMap::new(),
            });
            self.events.publish(event, Some(trace)).await;
        }
        Some(Err(err))
    }

    async fn host_request(&self, req: HostRequest, trace: &TraceContext) -> Option<Answer> {
        Some(match req {
            HostRequest::Ping => answer(Ok::<_, ControlError>(self.host.inventory().summary())),
            HostRequest::Get(req) => answer(self.host.inventory_page(req.page)),
            HostRequest::Stats => answer(Ok::<_, ControlError>(self.host.stats())),
            // The stop itself follows the answer (see `serve`).
            HostRequest::Stop(_) => {
                tracing::info!("stop requested over the control interface");
                answer(Ok::<_, ControlError>(Empty {}))
            }

            HostRequest::PutLabel(req) => {
                let r = self.labels.put(&req.key, &req.value);
                answer(self.labels_changed(r, trace).await)
            }
            HostRequest::DeleteLabel(req) => {
                let r = self.labels.delete(&req.key);
                answer(self.labels_changed(r, trace).await)
            }
            HostRequest::Scale(req) => answer(self.scale(req, trace).await),
            // A host that does not match declines, so an auction ends once every live host
            // has answered (see `trellis_lattice::presence`).
            HostRequest::Auction(req) => answer(self.auction(&req).ok_or_else(|| {
                ControlError::refused("this host's labels do not match the constraints")
            })),
            HostRequest::StartProvider(req) => answer(self.start_provider(req, trace).await),
            HostRequest::StopProvider(req) => {
                let r = self.providers.stop(&req.provider_id).await;
                if r.is_ok() {
                    let event = Event::ProviderStopped(ProviderStopped {
                        host_id: self.host.host_id().to_string(),
                        provider_id: req.provider_id.clone(),
                        reason: "stop requested".into(),
                    });
                    self.events.publish(event, Some(trace)).await;
                }
                answer(r.map(|()| Empty {}))
            }
            HostRequest::GpioList => {
                answer(super::gpio::list(Arc::clone(&self.gpio), self.host.host_id()).await)
            }
            HostRequest::GpioGet(req) => {
                answer(super::gpio::get(Arc::clone(&self.gpio), self.host.host_id(), req).await)
            }
            HostRequest::GpioSet(req) => {
                answer(super::gpio::set(&self.gpio, self.host.host_id(), req))
            }
        })
    }

    async fn state_request(&self, req: StateRequest, trace: &TraceContext) -> Answer {
        let s = &self.state;
        match req {
            StateRequest::PutLink(r) => answer(s.put_link(r, trace).await),
            StateRequest::RetargetLink(r) => answer(s.retarget_link(r, trace).await),
            StateRequest::DeleteLink(r) => answer(s.delete_link(r, trace).await),
            StateRequest::PutConfig(r) => answer(s.put_config(r, trace).await),
            StateRequest::DeleteConfig(r) => answer(s.delete_config(r, trace).await),
        }
    }

    async fn labels_changed(
        &self,
        result: Result<Labels, ControlError>,
        trace: &TraceContext,
    ) -> Result<Labels, ControlError> {
        if let Ok(labels) = &result {
            let event = Event::LabelsChanged(LabelsChanged {
                host_id: self.host.host_id().to_string(),
                labels: labels.clone(),
            });
            self.events.publish(event, Some(trace)).await;
        }
        result
    }

    fn auction(&self, req: &ComponentAuction) -> Option<AuctionOffer> {
        let labels = self.labels.get();
        if !labels::matches(&labels, &req.constraints) {
            return None;
        }
        Some(AuctionOffer {
            host_id: self.host.host_id().to_string(),
            friendly_name: self.host.friendly_name().to_string(),
            already_running: self.components.is_running(&req.component_id)
                || self.providers.is_running(&req.component_id),
            component_count: self.components.count() + self.providers.count(),
            labels,
        })
    }

    async fn scale(
        &self,
        req: ScaleComponent,
        trace: &TraceContext,
    ) -> Result<ComponentScaled, ControlError> {
        let (id, image, replicas) = (req.component_id.clone(), req.image.clone(), req.replicas);
        let annotations = req.annotations.clone();
        match self.components.scale(req).await {
            Ok(mut done) => {
                tracing::info!(component_id = %done.component_id, replicas = done.replicas, "component scaled");
                done.annotations = annotations;
                let event = Event::ComponentScaled(done.clone());
                self.events.publish(event, Some(trace)).await;
                Ok(done)
            }
            Err(err) => {
                tracing::warn!(component_id = %id, %image, reason = %err, "scale failed");
                let event = Event::ComponentScaleFailed(ComponentScaleFailed {
                    host_id: self.host.host_id().to_string(),
                    component_id: id,
                    image,
                    replicas,
                    reason: err.message.clone(),
                    annotations,
                });
                self.events.publish(event, Some(trace)).await;
                Err(err)
            }
        }
    }

    async fn start_provider(
        &self,
        req: StartProvider,
        trace: &TraceContext,
    ) -> Result<trellis_lattice::control::ProviderStartedReply, ControlError> {
        if self.components.is_running(&req.provider_id) {
            return Err(ControlError::conflict(format!(
                "a component with id {} runs here; provider ids must differ",
                req.provider_id
            )));
        }
        let (id, image, annotations): (String, String, BTreeMap<String, String>) = (
            req.provider_id.clone(),
            req.image.clone(),
            req.annotations.clone(),
        );
        let host_id = self.host.host_id().to_string();
        let result = self.providers.start(req).await;
        let event = match &result {
            // Already running from this image: nothing happened.
            Ok((reply, false)) => return Ok(reply.clone()),
            Ok((_, true)) => Event::ProviderStarted(ProviderStarted {
                host_id,
                provider_id: id,
                image,
                annotations,
            }),
            Err(e) => Event::ProviderStartFailed(ProviderStartFailed {
                host_id,
                provider_id: id,
                image,
                reason: e.message.clone(),
            }),
        };
        self.events.publish(event, Some(trace)).await;
        result.map(|(reply, _)| reply)
    }
}
