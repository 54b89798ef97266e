//! The HTTP server provider as its own process: every request crosses the lattice.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    trellis_provider::run_main(trellis_provider_http_server::HttpServer::new(None)).await
}
