//! Routes: links from this server to components, with `path` and/or `host` in the link's
//! source config. Kept current by watching the lattice's links and config.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use trellis_lattice::kv;
use trellis_lattice::link::{Config, Link};
use trellis_provider::{CancellationToken, ProviderContext};

/// One route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub target: String,
    pub link_name: String,
    /// Path prefix, matched on segment boundaries (`/hello` matches `/hello/x`, not
    /// `/helloworld`). `None` matches every path.
    pub path: Option<String>,
    /// Host name (without port), case-insensitive. `None` matches every host.
    pub host: Option<String>,
    /// What it matches, as `http.route` (`/hello/*`, `/*`): never a request's own path.
    pub template: std::sync::Arc<str>,
    /// Its instruments, bound on first use.
    pub meters: crate::observe::RouteMeters,
}

impl Route {
    fn matches(&self, host: Option<&str>, path: &str) -> bool {
        if let Some(want) = &self.host {
            if !host.is_some_and(|h| h.eq_ignore_ascii_case(want)) {
                return false;
            }
        }
        match self.path.as_deref() {
            None | Some("/") => true,
            Some(prefix) => {
                path == prefix
                    || (path.starts_with(prefix)
                        && (prefix.ends_with('/')
                            || path.as_bytes().get(prefix.len()) == Some(&b'/')))
            }
        }
    }

    /// More specific routes first: a host beats none, a longer path beats a shorter one.
    fn specificity(&self) -> (bool, usize) {
        (
            self.host.is_some(),
            self.path.as_ref().map_or(0, String::len),
        )
    }
}

/// The routes of one server, most specific first.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

/// Whether a link is an HTTP route of server `server_id`.
fn is_route(link: &Link, server_id: &str) -> bool {
    link.source_id == server_id
        && link.wit_namespace == "wasi"
        && link.wit_package == "http"
        && link.interfaces.iter().any(|i| i == "incoming-handler")
}

impl RouteTable {
    /// Builds the table; links whose config is unusable are left out with a warning.
    pub fn build(server_id: &str, links: &[Link], configs: &BTreeMap<String, Config>) -> Self {
        let mut routes = Vec::new();
        for link in links.iter().filter(|l| is_route(l, server_id)) {
            let mut merged = Config::new();
            for name in &link.source_config {
                match configs.get(name) {
                    Some(c) => merged.extend(c.clone()),
                    None => {
                        tracing::warn!(link = %link.name, config = %name, "route config missing")
                    }
                }
            }
            let path = merged.get("path").map(|p| {
                let p = p.trim();
                let p = if p.starts_with('/') {
                    p.to_string()
                } else {
                    format!("/{p}")
                };
                if p.len() > 1 {
                    p.trim_end_matches('/').to_string()
                } else {
                    p
                }
            });
            let host = merged
                .get("host")
                .map(|h| {
                    h.trim()
                        .split(':')
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                })
                .filter(|h| !h.is_empty());
            let template = match &path {
                Some(prefix) => format!("{}/*", prefix.trim_end_matches('/')),
                None => "/*".to_string(),
            };
            routes.push(Route {
                target: link.target_id.clone(),
                link_name: link.name.clone(),
                path,
                host,
                template: template.into(),
                meters: Default::default(),
            });
        }
        routes.sort_by(|a, b| {
            b.specificity()
                .cmp(&a.specificity())
                .then(a.link_name.cmp(&b.link_name))
        });
        Self { routes }
    }

    /// The route for a request, by its `Host` (port ignored) and path.
    pub fn lookup(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        let host = host.map(|h| h.split(':').next().unwrap_or(h));
        self.routes.iter().find(|r| r.matches(host, path))
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// How old a snapshot of the store may be when a request finds no route in the watched
/// table.
const SNAPSHOT_MAX_AGE: Duration = Duration::from_millis(250);

/// The current route table, swapped whole on every change.
#[derive(Clone)]
pub struct Routes {
    table: Arc<RwLock<Arc<RouteTable>>>,
    store: kv::LatticeState,
    server_id: String,
    snapshot: Arc<tokio::sync::Mutex<Option<FreshRead>>>,
}

impl Routes {
    pub fn current(&self) -> Arc<RouteTable> {
        self.table
            .read()
            .map(|t| Arc::clone(&t))
            .unwrap_or_default()
    }

    /// The route for a request. The watched table can trail a link put by a few
    /// milliseconds, so a miss is checked against a fresh read of the store (at most one
    /// read per quarter second, however many requests miss).
    pub async fn lookup(&self, host: Option<&str>, path: &str) -> Option<Route> {
        if let Some(r) = self.current().lookup(host, path) {
            return Some(r.clone());
        }
        let mut snapshot = self.snapshot.lock().await;
        let stale = snapshot
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() > SNAPSHOT_MAX_AGE);
        if stale {
            match self.store.snapshot().await {
                Ok((links, configs)) => {
                    let table = RouteTable::build(&self.server_id, &links, &configs);
                    *snapshot = Some((tokio::time::Instant::now(), Arc::new(table)));
                }
                Err(e) => tracing::warn!(%e, "cannot read routes from the store"),
            }
        }
        snapshot
            .as_ref()
            .and_then(|(_, t)| t.lookup(host, path).cloned())
    }

    /// Loads the routes and keeps them current until `stop`.
    pub async fn follow(ctx: &ProviderContext, stop: CancellationToken) -> anyhow::Result<Self> {
        let store = ctx.lattice_state().clone();
        let server_id = ctx.provider_id().to_string();
        let (links, configs) = store.snapshot().await?;
        let routes = Self {
            table: Arc::new(RwLock::new(Arc::new(RouteTable::build(
                &server_id, &links, &configs,
            )))),
            store: store.clone(),
            server_id: server_id.clone(),
            snapshot: Arc::default(),
        };
        let shared = routes.clone();
        let mut state = kv::Mirror::from_snapshot(links, configs);
        tokio::spawn(kv::follow(store.followed(), stop, move |update| {
            state.apply(update);
            let table = RouteTable::build(&server_id, &state.links(), &state.configs);
            if let Ok(mut t) = shared.table.write() {
                *t = Arc::new(table);
            }
        }));
        Ok(routes)
    }
}

/// A table read straight from the store, and when.
type FreshRead = (tokio::time::Instant, Arc<RouteTable>);

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, target: &str, config: &str) -> Link {
        Link {
            source_id: "web".into(),
            target_id: target.into(),
            name: name.into(),
            wit_namespace: "wasi".into(),
            wit_package: "http".into(),
            interfaces: vec!["incoming-handler".into()],
            source_config: vec![config.into()],
            target_config: vec![],
        }
    }

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn paths_hosts_and_precedence() {
        let configs: BTreeMap<String, Config> = [
            ("r-hello".to_string(), cfg(&[("path", "/hello")])),
            ("r-deep".to_string(), cfg(&[("path", "/hello/deep/")])),
            ("r-host".to_string(), cfg(&[("host", "Hello.Example:8080")])),
            ("r-root".to_string(), cfg(&[("path", "/")])),
        ]
        .into();
        let links = vec![
            link("hello", "hello-http", "r-hello"),
            link("deep", "deep", "r-deep"),
            link("byhost", "vhost", "r-host"),
            link("root", "fallback", "r-root"),
            Link {
                source_id: "other".into(),
                ..link("x", "x", "r-hello")
            },
        ];
        let t = RouteTable::build("web", &links, &configs);
        assert_eq!(t.len(), 4);
        let target = |host, path| t.lookup(host, path).map(|r| r.target.as_str());
        assert_eq!(target(Some("hello.example"), "/hello"), Some("vhost"));
        assert_eq!(target(Some("localhost:8080"), "/hello"), Some("hello-http"));
        assert_eq!(target(None, "/hello/x?y=1"), Some("hello-http"));
        assert_eq!(target(None, "/hello/deep/x"), Some("deep"));
        assert_eq!(target(None, "/helloworld"), Some("fallback"));
        let t = RouteTable::build("web", &links[..1], &configs);
        assert_eq!(t.lookup(None, "/other").map(|r| r.target.as_str()), None);
    }
}
