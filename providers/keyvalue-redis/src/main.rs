//! `trellis-provider-keyvalue-redis`: wasi:keyvalue on Redis, as a process a Trellis host
//! starts (settings in `TRELLIS_*` environment variables).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    trellis_provider::run_main(trellis_provider_keyvalue_redis::provider()).await
}
