//! What a key-value backend implements; the wasi:keyvalue plumbing is shared.

use std::future::Future;

use bytes::Bytes;
use trellis_provider::{Call, HealthReport, LinkInfo, ProviderContext};

use crate::{Error, KeyResponse};

/// A store behind `wasi:keyvalue`. Errors come in two kinds:
///
/// - `anyhow::Error` from [`Backend::open`]: the call's link is not set up so this backend
///   can serve it (e.g. no Redis `url` in its target config). The caller's host gets an
///   error report naming the problem.
/// - [`Error`]: what the interface can say to the component (`no-such-store`, or `other`
///   for a backend that is down, a value that is not a counter, ...).
pub trait Backend: Send + Sync + 'static {
    /// An open store, resolved for one call.
    type Bucket: Send + Sync;

    /// The store a call works on, from the link's target config (`call`), the provider's
    /// own config (`ctx`) and the identifier given to `open` (empty when the link decides).
    /// Called for `open` and again for every method call on the bucket it returned.
    fn open(
        &self,
        ctx: &ProviderContext,
        call: &Call,
        identifier: &str,
    ) -> impl Future<Output = anyhow::Result<Result<Self::Bucket, Error>>> + Send;

    fn get(
        &self,
        bucket: &Self::Bucket,
        key: &str,
    ) -> impl Future<Output = Result<Option<Bytes>, Error>> + Send;

    fn set(
        &self,
        bucket: &Self::Bucket,
        key: &str,
        value: Bytes,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    fn delete(
        &self,
        bucket: &Self::Bucket,
        key: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    fn exists(
        &self,
        bucket: &Self::Bucket,
        key: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;

    fn list_keys(
        &self,
        bucket: &Self::Bucket,
        cursor: Option<u64>,
    ) -> impl Future<Output = Result<KeyResponse, Error>> + Send;

    /// Adds `delta` to the counter at `key` (absent = 0) atomically, returning the new value.
    /// Counters are stored as [`crate::counter`] says.
    fn increment(
        &self,
        bucket: &Self::Bucket,
        key: &str,
        delta: u64,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Values of `keys`, in order (`None` for a missing key). One `get` per key unless
    /// overridden.
    fn get_many(
        &self,
        bucket: &Self::Bucket,
        keys: Vec<String>,
    ) -> impl Future<Output = Result<Vec<Option<(String, Bytes)>>, Error>> + Send {
        async move {
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                let value = self.get(bucket, &key).await?;
                out.push(value.map(|v| (key, v)));
            }
            Ok(out)
        }
    }

    fn set_many(
        &self,
        bucket: &Self::Bucket,
        key_values: Vec<(String, Bytes)>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        async move {
            for (key, value) in key_values {
                self.set(bucket, &key, value).await?;
            }
            Ok(())
        }
    }

    fn delete_many(
        &self,
        bucket: &Self::Bucket,
        keys: Vec<String>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        async move {
            for key in keys {
                self.delete(bucket, &key).await?;
            }
            Ok(())
        }
    }

    fn health(&self) -> impl Future<Output = HealthReport> + Send {
        async { HealthReport::healthy() }
    }

    /// A link now targets the provider or its config changed.
    fn link_put(&self, _link: &LinkInfo) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A link no longer targets the provider.
    fn link_deleted(&self, _link: &LinkInfo) -> impl Future<Output = ()> + Send {
        async {}
    }
}
