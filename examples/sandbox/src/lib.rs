//! Probes the sandbox a host gives it: every refusal comes back as an error string, so a test
//! sees exactly what was allowed.

wit_bindgen::generate!({ path: "wit", world: "sandbox" });

use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, OutgoingRequest, Scheme};
use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};

struct Sandbox;

fn env() -> String {
    let mut vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    vars.sort();
    vars.join("\n")
}

fn connect(arg: &str) -> Result<String, String> {
    let (host, port) = arg.rsplit_once(':').ok_or("expected HOST:PORT")?;
    let port: u16 = port.parse().map_err(|_| "bad port")?;
    let octets: Vec<u8> = host.split('.').filter_map(|o| o.parse().ok()).collect();
    let [a, b, c, d] = octets[..] else {
        return Err("expected an IPv4 address".into());
    };
    let network = wasip2::sockets::instance_network::instance_network();
    let socket = wasip2::sockets::tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4)
        .map_err(|e| format!("create: {e:?}"))?;
    let addr = IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address: (a, b, c, d) });
    socket
        .start_connect(&network, addr)
        .map_err(|e| format!("connect: {e:?}"))?;
    socket.subscribe().block();
    socket
        .finish_connect()
        .map(|_| "connected".to_string())
        .map_err(|e| format!("connect: {e:?}"))
}

fn fetch(url: &str) -> Result<String, String> {
    let (scheme, rest) = url.split_once("://").ok_or("expected a URL")?;
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, format!("/{p}")),
        None => (rest, "/".to_string()),
    };
    // A component cannot choose who it is on the lattice: headers like these must change
    // nothing wherever the request lands.
    let headers = Fields::from_list(&[
        ("trellis-source".to_string(), b"victim".to_vec()),
        ("trellis-link".to_string(), b"secret".to_vec()),
    ])
    .map_err(|e| format!("headers: {e:?}"))?;
    let request = OutgoingRequest::new(headers);
    let scheme = match scheme {
        "https" => Scheme::Https,
        _ => Scheme::Http,
    };
    request.set_scheme(Some(&scheme)).map_err(|_| "scheme")?;
    request.set_authority(Some(authority)).map_err(|_| "authority")?;
    request.set_path_with_query(Some(&path)).map_err(|_| "path")?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("fetch: {e:?}"))?;
    future.subscribe().block();
    let response = future
        .get()
        .ok_or("no response")?
        .map_err(|_| "response taken twice")?
        .map_err(|e| format!("fetch: {e:?}"))?;
    Ok(response.status().to_string())
}

impl Guest for Sandbox {
    fn probe(what: String, arg: String) -> Result<String, String> {
        match what.as_str() {
            "env" => Ok(env()),
            "read" => std::fs::read_to_string(&arg).map_err(|e| format!("read: {e}")),
            "write" => std::fs::write(&arg, b"written by sandbox")
                .map(|()| "written".to_string())
                .map_err(|e| format!("write: {e}")),
            "list" => std::fs::read_dir(&arg)
                .map(|d| d.flatten().count().to_string())
                .map_err(|e| format!("list: {e}")),
            "connect" => connect(&arg),
            "fetch" => fetch(&arg),
            "clock" => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs().to_string())
                .map_err(|e| format!("clock: {e}")),
            other => Err(format!("unknown probe {other}")),
        }
    }
}

export!(Sandbox);
