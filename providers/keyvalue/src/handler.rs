//! The generated `wasi:keyvalue` handlers, each call resolved to its link and bucket and
//! handed to the [`Backend`].

use std::sync::Arc;

use bytes::Bytes;
use trellis_provider::{
    Call, Invocations, LinkInfo, NatsContext, Provider, ProviderContext, WrpcClient,
};
use wit_bindgen_wrpc::wrpc_transport::{ResourceBorrow, ResourceOwn};

use crate::bindings::exports::wasi::keyvalue::{atomics, batch, store};
use crate::{handle, Backend, Error, HealthReport, KeyResponse};

/// The WIT namespace and package every call of these interfaces follows a link for.
const NAMESPACE: &str = "wasi";
const PACKAGE: &str = "keyvalue";

type Bucket = store::Bucket;

/// A `wasi:keyvalue` provider over `B`.
pub struct KeyValueProvider<B> {
    backend: Arc<B>,
}

impl<B: Backend> KeyValueProvider<B> {
    pub fn new(backend: B) -> Self {
        Self {
            backend: Arc::new(backend),
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }
}

impl<B: Backend> Provider for KeyValueProvider<B> {
    async fn serve(&self, ctx: &ProviderContext, wrpc: &WrpcClient) -> anyhow::Result<Invocations> {
        let handler = Handler {
            ctx: ctx.clone(),
            backend: Arc::clone(&self.backend),
        };
        crate::bindings::serve(wrpc, handler).await
    }

    async fn health(&self) -> HealthReport {
        self.backend.health().await
    }

    async fn link_put(&self, link: &LinkInfo) {
        self.backend.link_put(link).await
    }

    async fn link_deleted(&self, link: &LinkInfo) {
        self.backend.link_deleted(link).await
    }
}

struct Handler<B> {
    ctx: ProviderContext,
    backend: Arc<B>,
}

impl<B> Clone for Handler<B> {
    fn clone(&self) -> Self {
        Self {
            ctx: self.ctx.clone(),
            backend: Arc::clone(&self.backend),
        }
    }
}

impl<B: Backend> Handler<B> {
    /// The backend's bucket for a method call on `handle`.
    async fn bucket(
        &self,
        call: &Call,
        handle: ResourceBorrow<Bucket>,
    ) -> anyhow::Result<Result<B::Bucket, Error>> {
        let identifier = handle::decode(handle)?;
        self.backend.open(&self.ctx, call, &identifier).await
    }
}

/// Opens the call's bucket or returns the interface's error from the enclosing closure.
macro_rules! open_or_return {
    ($self:ident, $call:ident, $handle:ident) => {
        match $self.bucket(&$call, $handle).await? {
            Ok(bucket) => bucket,
            Err(err) => return Ok(Err(err)),
        }
    };
}

impl<B: Backend> store::Handler<NatsContext> for Handler<B> {
    async fn open(
        &self,
        cx: NatsContext,
        identifier: String,
    ) -> anyhow::Result<Result<ResourceOwn<Bucket>, Error>> {
        self.ctx
            .handle(cx, NAMESPACE, PACKAGE, |call| async move {
                let opened = self.backend.open(&self.ctx, &call, &identifier).await?;
                Ok(opened.map(|_| handle::encode(&identifier)))
            })
            .await
    }
}

impl<B: Backend> store::HandlerBucket<NatsContext> for Handler<B> {
    async fn get(
        &self,
        cx: NatsContext,
        this: ResourceBorrow<Bucket>,
        key: String,
    ) -> anyhow::Result<Result<Option<Bytes>, Error>> {
        self.ctx
            .handle(cx, NAMESPACE, PACKAGE, |call| async move {
                let bucket = open_or_return!(self, call, this);
                Ok(self.backend.get(&bucket, &key).await)
            })
            .await
    }

    async fn set(
        &self,
        cx: NatsContext,
        this: ResourceBorrow<Bucket>,
        key: String,
        value: Bytes,
    ) -> anyhow::Result<Result<(), Error>> {
        self.ctx
            .handle(cx, NAMESPACE, PACKAGE, |call| async move {
                let bucket = open_or_return!(self, call, this);
                Ok(self.backend.set(&bucket, &key, value).await)
            })
            .await
    }

    async fn delete(
        &self,
        cx: NatsContext,
        this: ResourceBorrow<Bucket>,
        key: String,
    ) -> anyhow::Result<Result<(), Error>> {
        self.ctx
            .handle(cx, NAMESPACE, PACKAGE, |call| async move {
                let bucket = open_or_return!(self, call, this);
                Ok(self.backend.delete(&bucket, &key).await)
            })
            .await
    }

    async fn exists(
        &self,
        cx: NatsContext,
        this: ResourceBorrow<Bucket>,
        key: String,
    ) -> anyhow::Result<Result<bool, Error>> {
        self.ctx
            .handle(cx, NAMESPACE, PACKAGE, |call| async move {
                let bucket = open_or_return!(self, call, this);
                Ok(self.backend.exists(&bucket, &key).await)
            })
            .await
    }

    async fn list_keys(
        &self,
        cx: NatsContext,
        this: ResourceBorrow<Bucket>,
        cursor: Option<u64>,
    ) -> anyhow::Result<Result<KeyResponse, Error>> {
        self.ctx
            .handle(cx, NAMESPACE, PACKAGE, |call| async move {
                let bucket = open_or_return!(self, call, this);
                Ok(self.backend.list_keys(&bucket, cursor).await)
            })
            .await
    }
}

impl<B: Backend> atomics::Handler<NatsContext> for Handler<B> {
    async fn increment(
        &self,
        cx: NatsContext,
        this: ResourceBorrow<Bucket>,
        key: String,
        delta: u64,
    ) -> anyhow::Result<Result<u64, Error>> {
        self.ctx
            .handle(cx, NAMESPACE, PACKAGE, |call| async move {
                let bucket = open_or_return!(self, call, this);
                Ok(self.backend.increment(&bucket, &key, delta).await)
            })
            .await
    }
}

impl<B: Backend> batch::Handler<NatsContext> for Handler<B> {
    async fn get_many(
        &self,
        cx: NatsContext,
        this: ResourceBorrow<Bucket>,
        keys: Vec<String>,
    ) -> anyhow::Result<Result<Vec<Option<(String, Bytes)>>, Error>> {
        self.ctx
            .handle(cx, NAMESPACE, PACKAGE, |call| async move {
                let bucket = open_or_return!(self, call, this);
                Ok(self.backend.get_many(&bucket, keys).await)
            })
            .await
    }

    async fn set_many(
        &self,
        cx: NatsContext,
        this: ResourceBorrow<Bucket>,
        key_values: Vec<(String, Bytes)>,
    ) -> anyhow::Result<Result<(), Error>> {
        self.ctx
            .handle(cx, NAMESPACE, PACKAGE, |call| async move {
                let bucket = open_or_return!(self, call, this);
                Ok(self.backend.set_many(&bucket, key_values).await)
            })
            .await
    }

    async fn delete_many(
        &self,
        cx: NatsContext,
        this: ResourceBorrow<Bucket>,
        keys: Vec<String>,
    ) -> anyhow::Result<Result<(), Error>> {
        self.ctx
            .handle(cx, NAMESPACE, PACKAGE, |call| async move {
                let bucket = open_or_return!(self, call, this);
                Ok(self.backend.delete_many(&bucket, keys).await)
            })
            .await
    }
}
