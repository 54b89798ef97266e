//! An HTTP server provider on a host, for ingress tests.

use trellis_lattice::control::StartProvider;
use trellis_lattice::link::Link;
use trellis_lattice::{LatticeClient, Placement};

/// Starts `builtin://http-server` with id `server_id` on `host`, listening on a free port with
/// `extra` config (e.g. `max_body`). Returns its base URL.
pub async fn start_http_server(
    client: &LatticeClient,
    host: &str,
    server_id: &str,
    extra: &[(&str, &str)],
) -> String {
    let port = crate::wait::free_port();
    let mut config: trellis_lattice::link::Config =
        [("address".to_string(), format!("127.0.0.1:{port}"))].into();
    for (k, v) in extra {
        config.insert(k.to_string(), v.to_string());
    }
    let config_name = format!("{server_id}-settings");
    client
        .put_config(&config_name, config)
        .await
        .expect("server config");
    client
        .start_provider(
            &Placement::Host(host.to_string()),
            &StartProvider {
                provider_id: server_id.to_string(),
                image: "builtin://http-server".into(),
                config: vec![config_name],
                annotations: Default::default(),
            },
        )
        .await
        .expect("http server starts");
    format!("http://127.0.0.1:{port}")
}

/// Routes `route` (a link name) of `server_id` to `target`, by `path` and/or `host`.
pub async fn route(
    client: &LatticeClient,
    server_id: &str,
    route: &str,
    target: &str,
    path: Option<&str>,
    host: Option<&str>,
) {
    let mut config = trellis_lattice::link::Config::new();
    if let Some(p) = path {
        config.insert("path".into(), p.into());
    }
    if let Some(h) = host {
        config.insert("host".into(), h.into());
    }
    let config_name = format!("{server_id}-route-{route}");
    client
        .put_config(&config_name, config)
        .await
        .expect("route config");
    client
        .put_link(Link {
            source_id: server_id.into(),
            target_id: target.into(),
            name: route.into(),
            wit_namespace: "wasi".into(),
            wit_package: "http".into(),
            interfaces: vec!["incoming-handler".into()],
            source_config: vec![config_name],
            target_config: vec![],
        })
        .await
        .expect("route link");
}
