//! `trellis-provider-mqtt`: trellis:messaging over MQTT 5, as a process a Trellis host
//! starts (settings in `TRELLIS_*` environment variables).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    trellis_provider::run_main(trellis_provider_mqtt::provider()).await
}
