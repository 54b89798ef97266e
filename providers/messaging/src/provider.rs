//! A messaging provider: the `producer` export served over a [`Transport`], and the
//! subscriptions its links ask for.

use std::sync::{Arc, Mutex};

use trellis_provider::{
    CancellationToken, HealthReport, Invocations, NatsContext, Provider, ProviderContext,
    WrpcClient,
};

use crate::bindings::exports::trellis::messaging::producer;
use crate::bindings::{Error, Message};
use crate::config::check_topic;
use crate::observe;
use crate::subscriptions::Subscriptions;
use crate::transport::Transport;

/// A provider over transport `T`.
pub struct MessagingProvider<T> {
    transport: Arc<T>,
    stop: CancellationToken,
    subscriptions: Mutex<Option<Subscriptions>>,
}

impl<T: Transport> MessagingProvider<T> {
    pub fn new(transport: T) -> Self {
        Self {
            transport: Arc::new(transport),
            stop: CancellationToken::new(),
            subscriptions: Mutex::new(None),
        }
    }
}

impl<T: Transport> Provider for MessagingProvider<T> {
    async fn serve(&self, ctx: &ProviderContext, wrpc: &WrpcClient) -> anyhow::Result<Invocations> {
        self.transport.bind(ctx);

        let subs = Subscriptions::follow(ctx, self.transport.clone(), self.stop.clone()).await?;
        if let Ok(mut s) = self.subscriptions.lock() {
            *s = Some(subs);
        }
        let handler = Producer {
            ctx: ctx.clone(),
            transport: self.transport.clone(),
        };
        crate::bindings::serve(wrpc, handler).await
    }

    async fn health(&self) -> HealthReport {
        let subs = self.subscriptions.lock().ok().and_then(|s| s.clone());
        let Some(subs) = subs else {
            return HealthReport::unhealthy("starting");
        };
        let (links, delivered, failed, dropped) = subs.totals();
        let mut message = format!(
            "{links} subscription(s): {delivered} delivered, {failed} failed, {dropped} dropped"
        );
        if let Some(status) = self.transport.status().await {
            message.push_str("; ");
            message.push_str(&status);
        }
        HealthReport {
            healthy: true,
            message: Some(message),
        }
    }

    async fn shutdown(&self) {
        self.stop.cancel();
        self.transport.shutdown().await;
    }
}

struct Producer<T> {
    ctx: ProviderContext,
    transport: Arc<T>,
}

impl<T: Transport> Clone for Producer<T> {
    fn clone(&self) -> Self {
        Self {
            ctx: self.ctx.clone(),
            transport: self.transport.clone(),
        }
    }
}

impl<T: Transport> producer::Handler<NatsContext> for Producer<T> {
    async fn send(&self, cx: NatsContext, message: Message) -> anyhow::Result<Result<(), Error>> {
        self.ctx
            .handle(cx, "trellis", "messaging", |call| async move {
                if let Err(reason) = check_topic(&message.topic) {
                    return Ok(Err(Error::Other(reason)));
                }
                let trace = Some(call.trace).filter(|t| t.sampled);
                let result = self
                    .transport
                    .send(call.target_config(), message, trace)
                    .await;

                let error = result.as_ref().err().map(error_type);
                observe::sent(T::SYSTEM, call.source(), error);
                Ok(result)
            })
            .await
    }
}

fn error_type(e: &Error) -> &'static str {
    match e {
        Error::Timeout => "timeout",
        Error::Connection(_) => "connection",
        Error::PermissionDenied(_) => "permission_denied",
        Error::MessageTooLarge(_) => "message_too_large",
        Error::Other(_) => "other",
    }
}
