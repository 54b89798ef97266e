//! Imports every interface the host knows: all of WASI 0.2 (cli, clocks, random, filesystem,
//! sockets, http, io), config, logging, otel and gpio (served by the host) and linked ones (key-value,
//! messaging). `touch(false)` uses the host's own; `touch(true)` also calls the linked ones,
//! which fail clearly when nothing is linked.

wit_bindgen::generate!({
    path: [
        "../../interfaces/wit/config",
        "../../interfaces/wit/logging",
        "../../interfaces/wit/keyvalue",
        "../../interfaces/wit/messaging",
        "../../interfaces/wit/otel",
        "../../interfaces/wit/gpio",
        "wit",
    ],
    world: "trellis:examples/omnivore",
    generate_all,
});

use std::hint::black_box;

use wasip2::sockets::network::IpAddressFamily;

struct Omnivore;

/// Touches each interface the host implements; returns how many were touched.
fn native() -> u32 {
    use wasip2::{cli, clocks, filesystem, http, random, sockets};
    black_box(cli::environment::get_environment());
    black_box(cli::environment::get_arguments());
    black_box(cli::environment::initial_cwd());
    drop(black_box(cli::stdin::get_stdin()));
    drop(black_box(cli::stdout::get_stdout()));
    drop(black_box(cli::stderr::get_stderr()));
    drop(black_box(cli::terminal_stdin::get_terminal_stdin()));
    drop(black_box(cli::terminal_stdout::get_terminal_stdout()));
    drop(black_box(cli::terminal_stderr::get_terminal_stderr()));
    black_box(clocks::monotonic_clock::now());
    black_box(clocks::wall_clock::now());
    black_box(random::random::get_random_u64());
    black_box(random::insecure::get_insecure_random_u64());
    black_box(random::insecure_seed::insecure_seed());
    drop(black_box(filesystem::preopens::get_directories()));
    let network = sockets::instance_network::instance_network();
    drop(black_box(sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4)));
    drop(black_box(sockets::udp_create_socket::create_udp_socket(IpAddressFamily::Ipv4)));
    drop(black_box(sockets::ip_name_lookup::resolve_addresses(&network, "localhost")));
    drop(black_box(http::types::Fields::new()));
    if black_box(false) {
        // Referenced so the import exists; never sent.
        let request = http::types::OutgoingRequest::new(http::types::Fields::new());
        drop(http::outgoing_handler::handle(request, None));
    }
    black_box(wasi::config::store::get("omnivore").ok());
    wasi::logging::logging::log(wasi::logging::logging::Level::Debug, "omnivore", "touched");
    black_box(wasi::otel::tracing::current_span_context());
    // No pin is granted: refused, not a trap.
    drop(black_box(wasi::gpio::digital::DigitalInPin::get("omnivore", &[])));
    20
}

/// Calls each linked interface; the first that fails traps with its error.
fn linked() -> u32 {
    use trellis::messaging::{producer, types::Message};
    use wasi::keyvalue::{atomics, batch, store};
    let bucket = match store::open("") {
        Ok(b) => b,
        Err(e) => panic!("wasi:keyvalue/store.open failed: {e:?}"),
    };
    black_box(atomics::increment(&bucket, "omnivore", 1).ok());
    black_box(batch::get_many(&bucket, &["omnivore".to_string()]).ok());
    let message = Message {
        topic: "omnivore".to_string(),
        data: b"touched".to_vec(),
        content_type: None,
        metadata: Vec::new(),
    };
    black_box(producer::send(&message).ok());
    4
}

impl Guest for Omnivore {
    fn touch(all: bool) -> u32 {
        let mut n = native();
        if all {
            n += linked();
        }
        n
    }
}

export!(Omnivore);
