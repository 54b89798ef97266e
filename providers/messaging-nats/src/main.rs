//! `trellis-provider-messaging-nats`: trellis:messaging over NATS subjects, as a process a
//! Trellis host starts (settings in `TRELLIS_*` environment variables).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    trellis_provider::run_main(trellis_provider_messaging_nats::provider()).await
}
