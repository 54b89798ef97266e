//! What the providers part needs from the rest of the host.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use trellis_lattice::server::EventSink;
use trellis_lattice::{NatsAuth, Subjects};
use trellis_provider_http_server::LocalDispatch;

use crate::lattice_kv::StateStore;

pub struct ProvidersContext {
    pub host_id: String,
    /// The host's connection, which built-in providers share.
    pub nats: async_nats::Client,
    pub subjects: Subjects,
    /// How external providers connect: the host's own server and credentials.
    pub nats_url: String,
    pub nats_auth: NatsAuth,
    /// TLS files, passed on as absolute paths.
    pub nats_tls: trellis_lattice::client::NatsTls,
    /// What may run as an external provider, and as whom.
    pub exec: super::allow::ExecPolicy,
    /// Whose signed executables run here (see `crate::policy::executable_is_signed_ok`).
    pub issuers: crate::policy::IssuerPolicy,
    /// The secrets key, handed to the providers started here.
    pub secrets: crate::secrets::HostSecrets,
    /// Where fetched executables are kept.
    pub cache_dir: PathBuf,
    /// How long fetching an executable may take.
    pub fetch_timeout: Duration,
    pub health_interval: Duration,
    pub shutdown_timeout: Duration,
    /// Where a start checks that the provider's named configs exist.
    pub state: Arc<dyn StateStore>,
    /// The host's saved copy of the links and config its workload uses, which providers
    /// read while the lattice store is unreachable.
    pub state_copy: Option<PathBuf>,
    /// Where health changes are announced.
    pub events: Arc<dyn EventSink>,
    /// Hands requests of the built-in HTTP server to components running on this host.
    pub local_http: Option<Arc<dyn LocalDispatch>>,
}
