//! `trellis-provider-keyvalue-nats`: wasi:keyvalue on NATS JetStream key-value buckets, as
//! a process a Trellis host starts (settings in `TRELLIS_*` environment variables).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    trellis_provider::run_main(trellis_provider_keyvalue_nats::provider()).await
}
