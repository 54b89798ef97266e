//! The hyper server: HTTP/1.1 with keep-alive, TCP_NODELAY on every accepted socket (without
//! it every keep-alive response waits ~40 ms for Nagle and delayed ACKs), a task per
//! connection, routing and dispatch per request.
//!
//! Thread per core: each server thread has its own single-threaded runtime and its own
//! listening socket on the same address (SO_REUSEPORT, so the kernel spreads connections
//! over them). A connection, and every guest instance answering on it, stays on one thread:
//! no hand-offs between threads, which on a work-stealing runtime cost about as much CPU as
//! the request itself.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use trellis_lattice::rpc::{CallContext, Invoker, InvokerConfig};
use tracing::Instrument as _;
use trellis_provider::{CancellationToken, ProviderContext};

use crate::config::ServerConfig;
use crate::dispatch::{self, DispatchError, LocalDispatch, ResponseBody};
use crate::observe;
use crate::routes::Routes;

/// Everything a request needs.
pub struct ServerState {
    server_id: String,
    settings: ServerConfig,
    routes: Routes,
    local: Option<Arc<dyn LocalDispatch>>,
    invoker: Invoker,
}

impl ServerState {
    pub async fn new(
        ctx: &ProviderContext,
        settings: ServerConfig,
        routes: Routes,
        local: Option<Arc<dyn LocalDispatch>>,
    ) -> anyhow::Result<Self> {
        let invoker = Invoker::new(
            ctx.nats().clone(),
            ctx.subjects().clone(),
            InvokerConfig {
                timeout: settings.timeout,
                ..InvokerConfig::default()
            },
        )
        .await?;
        Ok(Self {
            server_id: ctx.provider_id().to_string(),
            settings,
            routes,
            local,
            invoker,
        })
    }

    async fn handle(self: Arc<Self>, mut req: Request<Incoming>) -> Response<ResponseBody> {
        let host = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()));
        let Some(route) = self.routes.lookup(host, req.uri().path()).await else {
            return DispatchError::new(
                StatusCode::NOT_FOUND,
                format!("no route for {}{}", host.unwrap_or(""), req.uri().path()),
            )
            .into_response();
        };
        let measured = observe::begin(&mut req, &route);
        let span = measured.span.clone();
        let resp = self.routed(route, req).instrument(span).await;
        measured.finish(resp.status());
        resp
    }

    async fn routed(
        &self,
        route: crate::routes::Route,
        req: Request<Incoming>,
    ) -> Response<ResponseBody> {
        let too_large = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > self.settings.max_body_bytes);
        if too_large {
            return DispatchError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body larger than {} bytes",
                    self.settings.max_body_bytes
                ),
            )
            .into_response();
        }
        let target = route.target.clone();
        let req = match &self.local {
            Some(local) => match local.try_local(&target, req, self.settings.max_body_bytes) {
                Ok(fut) => {
                    return match tokio::time::timeout(self.settings.timeout, fut).await {
                        Ok(Ok(resp)) => resp,
                        Ok(Err(e)) => e.into_response(),
                        Err(_) => DispatchError::new(
                            StatusCode::GATEWAY_TIMEOUT,
                            format!(
                                "component `{target}` did not answer within {}",
                                humantime::format_duration(self.settings.timeout)
                            ),
                        )
                        .into_response(),
                    }
                }
                Err(req) => req,
            },
            None => req,
        };
        let hop = trellis_telemetry::spans::http_hop(&tracing::Span::current(), &target);
        let cx = CallContext {
            trace: Some(
                trellis_telemetry::context::of(&hop).unwrap_or_else(|| dispatch::trace_of(&req)),
            ),

            source: Some(self.server_id.clone()),
            link: Some(route.link_name.clone()),
            depth: 0,
            budget: None,
        };
        match dispatch::over_lattice(
            &self.invoker,
            cx,
            &target,
            req,
            self.settings.max_body_bytes,
            self.settings.timeout,
        )
        .instrument(hop.clone())
        .await
        {
            Ok(resp) => resp,
            Err(e) => {
                trellis_telemetry::spans::fail(&hop, "call", &e.message);
                e.into_response()
            }
        }
    }
}

/// Binds `threads` listening sockets to `address` with SO_REUSEPORT (the first one picks the
/// port when `address` has port 0). Returns them and the bound address.
pub fn bind(
    address: std::net::SocketAddr,
    threads: usize,
) -> std::io::Result<(Vec<std::net::TcpListener>, std::net::SocketAddr)> {
    let mut listeners = Vec::with_capacity(threads.max(1));
    let mut addr = address;
    for _ in 0..threads.max(1) {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        let listener: std::net::TcpListener = socket.into();
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok((listeners, addr))
}

/// Serves each listener on its own thread with a single-threaded runtime, until `stop`.
pub fn serve_threads(
    listeners: Vec<std::net::TcpListener>,
    state: Arc<ServerState>,
    stop: CancellationToken,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let mut threads = Vec::with_capacity(listeners.len());
    for (i, listener) in listeners.into_iter().enumerate() {
        let (state, stop) = (Arc::clone(&state), stop.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        threads.push(
            std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        match TcpListener::from_std(listener) {
                            Ok(listener) => serve(listener, state, stop).await,
                            Err(err) => tracing::error!(%err, "cannot serve a listening socket"),
                        }
                    });
                })?,
        );
    }
    Ok(threads)
}

/// Accepts connections until `stop`; then lets open connections finish for a moment.
pub async fn serve(listener: TcpListener, state: Arc<ServerState>, stop: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let stop = stop.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, std::convert::Infallible>(state.handle(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(err) = r {
                    tracing::debug!(%err, %peer, "connection ended with an error");
                },
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), connections.wait()).await;
}
