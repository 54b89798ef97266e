//! One manager instance: the API server, the leader election and the reconcile loop, each a
//! task with one shutdown path.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use trellis_lattice::LatticeClient;

use crate::reconcile::{self, Settings};
use crate::records::AppStore;

/// A running manager; [`Manager::stop`] stops it cleanly (releasing the leader lease).
pub struct Manager {
    instance: String,
    shutdown: CancellationToken,
    leader: watch::Receiver<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Manager {
    /// Starts a manager of `lattice` over an existing NATS connection.
    pub async fn start(
        nats: async_nats::Client,
        lattice: &str,
        settings: Settings,
    ) -> anyhow::Result<Self> {
        let subjects = trellis_lattice::Subjects::new(lattice);
        Self::start_as(Self::new_instance_id(), nats, &subjects, settings).await
    }

    /// A fresh instance id (`trellis-deploy-…`).
    pub fn new_instance_id() -> String {
        format!("trellis-deploy-{}", nuid::next())
    }

    /// [`Self::start`] under a given instance id (the one its telemetry already uses).
    pub async fn start_as(
        instance: String,
        nats: async_nats::Client,
        subjects: &trellis_lattice::Subjects,
        settings: Settings,
    ) -> anyhow::Result<Self> {
        let client = Arc::new(
            LatticeClient::new(nats.clone(), subjects.lattice())?
                .with_js_domain(subjects.js_domain().map(String::from))?,
        );
        let store = AppStore::open(&nats, client.subjects()).await?;
        let shutdown = CancellationToken::new();
        let (leader_tx, leader_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        let api = tokio::spawn(crate::api::serve(
            nats.clone(),
            client.subjects().clone(),
            store.clone(),
            Arc::clone(&client),
            shutdown.clone(),
        ));
        tasks.push(("api", log_exit("api", api)));

        // The loop subscribes to events before it can lead, so it never acts blind.
        let reconcile = tokio::spawn(reconcile::run(
            Arc::clone(&client),
            store.clone(),
            instance.clone(),
            settings,
            leader_rx.clone(),
            shutdown.clone(),
        ));
        tasks.push(("reconcile", log_exit("reconcile", reconcile)));

        let lease = tokio::spawn(crate::lease::run(
            store,
            instance.clone(),
            settings.lease,
            leader_tx,
            shutdown.clone(),
        ));
        tasks.push(("lease", lease));
        tracing::info!(
            instance,
            lattice = subjects.lattice(),
            "deployment manager started"
        );
        Ok(Self {
            instance,
            shutdown,
            leader: leader_rx,
            tasks,
        })
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether this instance leads now.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Stops every task and releases the lease.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for (name, task) in self.tasks {
            if tokio::time::timeout(std::time::Duration::from_secs(10), task)
                .await
                .is_err()
            {
                tracing::warn!(task = name, "did not stop within 10s");
            }
        }
        tracing::info!(instance = %self.instance, "deployment manager stopped");
    }
}

fn log_exit(name: &'static str, task: JoinHandle<anyhow::Result<()>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(task = name, "failed: {err:#}"),
            Err(err) => tracing::error!(task = name, %err, "panicked"),
        }
    })
}
