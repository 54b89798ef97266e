//! `trellis spy`: lattice events, and optionally a component's invocations, one line each.

use std::collections::HashMap;

use futures::StreamExt as _;
use trellis_lattice::event::{CloudEvent, Event};
use trellis_lattice::rpc::headers;
use trellis_lattice::trace::TraceContext;

use crate::global::Global;
use crate::output::{self, Format};

#[derive(clap::Args)]
pub struct SpyArgs {
    /// Also show every invocation of this component.
    #[arg(long)]
    pub component: Option<String>,
}

pub async fn run(g: &Global, args: SpyArgs) -> anyhow::Result<()> {
    let client = g.client().await?;
    let mut events = client.watch_events().await?;
    let mut calls = match &args.component {
        Some(id) => {
            trellis_lattice::id::validate_component_id(id)?;
            client
                .nats()
                .subscribe(client.subjects().rpc_wildcard(id))
                .await?
                .boxed()
        }
        None => futures::stream::pending().boxed(),
    };
    let mut names: HashMap<String, String> = client
        .hosts()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|h| (h.id, h.friendly_name))
        .collect();
    eprintln!("watching lattice `{}` (Ctrl-C to stop)", client.lattice());
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            ev = events.next() => match ev {
                Some(ev) => print_event(g, &mut names, &ev)?,
                None => anyhow::bail!("the event subscription ended (NATS connection closed)"),
            },
            msg = calls.next() => if let Some(msg) = msg {
                print_call(g, &msg)?;
            },
        }
    }
}

fn now() -> String {
    chrono::Local::now().format("%H:%M:%S%.3f").to_string()
}

fn host_name(names: &HashMap<String, String>, id: &str) -> String {
    names
        .get(id)
        .cloned()
        .unwrap_or_else(|| id.chars().take(10).collect())
}

fn print_event(
    g: &Global,
    names: &mut HashMap<String, String>,
    ce: &CloudEvent,
) -> anyhow::Result<()> {
    if g.output == Format::Json {
        println!("{}", serde_json::to_string(ce)?);
        return Ok(());
    }
    let event = ce.event();
    if let Ok(Event::HostStarted(h)) = &event {
        names.insert(h.host_id.clone(), h.friendly_name.clone());
    }
    if let Ok(Event::HostHeartbeat(inv)) = &event {
        names.insert(inv.host_id.clone(), inv.friendly_name.clone());
    }
    let detail = match event {
        Ok(Event::HostStarted(h)) => format!(
            "labels {}{}",
            output::labels(&h.labels, false),
            if h.reconnected { " (reconnected)" } else { "" }
        ),
        Ok(Event::HostStopped(h)) => h.reason,
        Ok(Event::HostHeartbeat(inv)) => format!(
            "{} component(s), {} provider(s), rss {}",
            inv.components.len(),
            inv.providers.len(),
            trellis_lattice::units::format_bytes(inv.resources.rss_bytes / 1024 * 1024)
        ),
        Ok(Event::ComponentScaled(c)) => {
            format!("{} replicas={} {}", c.component_id, c.replicas, c.image)
        }
        Ok(Event::ComponentScaleFailed(c)) => format!("{} failed: {}", c.component_id, c.reason),
        Ok(Event::LabelsChanged(l)) => format!("labels {}", output::labels(&l.labels, false)),
        Ok(Event::ProviderStarted(p)) => format!("{} {}", p.provider_id, p.image),
        Ok(Event::ProviderStopped(p)) => format!("{} {}", p.provider_id, p.reason),
        Ok(Event::ProviderStartFailed(p)) => format!("{} failed: {}", p.provider_id, p.reason),
        Ok(Event::ProviderHealthChanged(p)) => format!(
            "{} {:?}{}",
            p.provider_id,
            p.health,
            p.message.map(|m| format!(": {m}")).unwrap_or_default()
        ),
        Ok(Event::LinkSet(l)) => format!(
            "{} -> {} {}/{{{}}} ({}){}",
            l.link.source_id,
            l.link.target_id,
            l.link.package(),
            l.link.interfaces.join(","),
            l.link.name,
            l.previous_target
                .map(|p| format!(", was -> {p}"))
                .unwrap_or_default()
        ),
        Ok(Event::LinkDeleted(l)) => format!(
            "{} {}:{} ({})",
            l.key.source_id, l.key.wit_namespace, l.key.wit_package, l.key.name
        ),
        Ok(Event::ConfigSet(c)) => format!("{} keys {}", c.name, c.keys.join(",")),
        Ok(Event::ConfigDeleted(c)) => c.name,
        Ok(Event::AppStatus(st)) => format!(
            "{} {}{}",
            st.name,
            st.status,
            st.reason.map(|r| format!(": {r}")).unwrap_or_default()
        ),
        Ok(Event::Other { data, .. }) => serde_json::to_string(&data)?,
        Err(err) => format!("(unreadable: {err})"),
    };
    println!(
        "{}  {:<24} {:<22} {}",
        now(),
        ce.short_type(),
        host_name(names, &ce.source),
        detail
    );
    Ok(())
}

fn print_call(g: &Global, msg: &async_nats::Message) -> anyhow::Result<()> {
    // trellis.rpc.{lattice}.{id}.wrpc.0.0.1.{instance}.{function}; the instance may hold dots.
    let subject = msg.subject.as_str();
    let after = trellis_lattice::subject::rpc::function_of(subject);
    let (instance, function) = after.rsplit_once('.').unwrap_or(("", after));
    let header = |name: &str| {
        msg.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    let from = header(headers::SOURCE).unwrap_or_else(|| "(outside)".into());
    let trace = TraceContext::from_headers(msg.headers.as_ref())
        .map(|t| t.trace_id_hex())
        .unwrap_or_default();
    if g.output == Format::Json {
        println!(
            "{}",
            serde_json::json!({
                "type": "invocation", "subject": subject, "instance": instance,
                "function": function, "source": from, "trace_id": trace,
                "bytes": msg.payload.len(),
            })
        );
        return Ok(());
    }
    let target = if instance.is_empty() {
        function.to_string()
    } else {
        format!("{instance}#{function}")
    };
    println!(
        "{}  {:<24} {:<22} from {from}, {} byte(s), trace {trace}",
        now(),
        "invocation",
        target,
        msg.payload.len()
    );
    Ok(())
}
