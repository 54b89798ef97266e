//! Every NATS subject and key-value bucket name of the protocol. Nothing outside this module
//! formats one.
//!
//! - control: `trellis.ctl.v1.{lattice}.{noun}.{verb}[.{target}]`
//! - events:  `trellis.evt.{lattice}.{type}`
//! - wRPC:    `trellis.rpc.{lattice}.{target_id}` is the prefix under which a component or
//!   provider serves its exports (wRPC appends `wrpc.0.0.1.{instance}.{function}`); see
//!   [`rpc`] for the subjects of one call.
//! - buckets: `trellis_links_{lattice}`, `trellis_config_{lattice}`, `trellis_apps_{lattice}`.
//! - presence: `trellis.presence.{lattice}.{host_id}`, kept in the stream
//!   `trellis_hosts_{lattice}` (see [`crate::presence`]).

/// Root of every subject the protocol uses.
pub const ROOT: &str = "trellis";
/// Version of the control protocol, part of every control subject.
pub const CONTROL_VERSION: &str = "v1";

/// Subjects of one lattice, and where its JetStream state is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subjects {
    lattice: String,
    /// The JetStream domain holding the lattice's state (`$JS.{domain}.API`); `None` is the
    /// JetStream of the server the client is connected to (or the one it reaches through
    /// leaf nodes, when that server has none).
    js_domain: Option<String>,
}

/// The pieces of a control subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlSubject<'a> {
    pub noun: &'a str,
    pub verb: &'a str,
    /// The host (or component) the subject is addressed to, for per-target subjects.
    pub target: Option<&'a str>,
}

/// Nouns and verbs of the control interface.
pub mod ctl {
    pub const HOST: &str = "host";
    pub const COMPONENT: &str = "component";
    pub const LABEL: &str = "label";
    pub const LINK: &str = "link";
    pub const CONFIG: &str = "config";
    pub const PROVIDER: &str = "provider";
    pub const GPIO: &str = "gpio";

    pub const PING: &str = "ping";
    pub const GET: &str = "get";
    pub const STOP: &str = "stop";
    pub const PUT: &str = "put";
    pub const DEL: &str = "del";
    pub const SCALE: &str = "scale";
    pub const AUCTION: &str = "auction";
    pub const DESCRIBE: &str = "describe";
    pub const START: &str = "start";
    pub const HEALTH: &str = "health";
    pub const RETARGET: &str = "retarget";
    pub const STATS: &str = "stats";
    pub const LIST: &str = "list";
    pub const SET: &str = "set";
    /// The deployment manager's API noun; its verbs are in `crate::app::verb`.
    pub const APP: &str = "app";
}

/// The subjects of one wRPC call (wRPC 0.0.1 over NATS).
pub mod rpc {
    /// wRPC protocol version in invocation subjects.
    pub const PROTOCOL: &str = "wrpc.0.0.1";
    /// Suffix of the subject results arrive on, under the call's reply inbox.
    pub const RESULTS: &str = ".results";
    /// Suffix of the subject error reports arrive on, under the call's reply inbox.
    pub const ERRORS: &str = ".err";

    /// `{prefix}.wrpc.0.0.1[.{instance}].{func}`, as wRPC servers subscribe it.
    pub fn invocation(prefix: &str, instance: &str, func: &str) -> String {
        let mut s = String::with_capacity(prefix.len() + instance.len() + func.len() + 16);
        if !prefix.is_empty() {
            s.push_str(prefix);
            s.push('.');
        }
        s.push_str(PROTOCOL);
        s.push('.');
        if !instance.is_empty() {
            s.push_str(instance);
            s.push('.');
        }
        s.push_str(func);
        s
    }

    /// Every subject under a caller's inbox (one subscription serves all its calls).
    pub fn inbox_wildcard(inbox: &str) -> String {
        format!("{inbox}.>")
    }

    /// The reply subject of one call under the caller's inbox.
    pub fn call_inbox(inbox: &str, call_id: &str) -> String {
        format!("{inbox}.{call_id}")
    }

    /// Where further parameters of an accepted call go: under the callee's reply subject.
    pub fn params(server_rx: &str) -> String {
        format!("{server_rx}.params")
    }

    /// Where a caller probes whether the callee that accepted its call is still connected.
    pub fn alive(server_rx: &str) -> String {
        format!("{server_rx}.alive")
    }

    /// The function a wRPC subject names (what follows `wrpc.0.0.1.`).
    pub fn function_of(subject: &str) -> &str {
        let marker = "wrpc.0.0.1.";
        subject
            .find(marker)
            .map(|i| &subject[i + marker.len()..])
            .unwrap_or(subject)
    }
}

impl Subjects {
    /// Subjects of `lattice`. The name must be a valid token (see [`crate::id`]).
    pub fn new(lattice: impl Into<String>) -> Self {
        Self {
            lattice: lattice.into(),
            js_domain: None,
        }
    }

    /// The same lattice with its state in JetStream domain `domain` (validated by
    /// [`crate::id::validate_js_domain`] where it is read).
    pub fn with_js_domain(mut self, domain: Option<String>) -> Self {
        self.js_domain = domain.filter(|d| !d.is_empty());
        self
    }

    pub fn lattice(&self) -> &str {
        &self.lattice
    }

    pub fn js_domain(&self) -> Option<&str> {
        self.js_domain.as_deref()
    }

    /// The JetStream stream of a messaging outbox (`TRELLIS_OUTBOX_{lattice}_{name}`).
    pub fn outbox_stream(&self, name: &str) -> String {
        format!("TRELLIS_OUTBOX_{}_{name}", self.lattice)
    }

    /// The subject a messaging outbox stores on (`trellis.outbox.{lattice}.{name}`).
    pub fn outbox_subject(&self, name: &str) -> String {
        format!("{ROOT}.outbox.{}.{name}", self.lattice)
    }

    /// `$JS.{domain}.API.INFO`: asked to tell whether the hub holding the lattice's state is
    /// reachable from here (a leaf node cut off from it has nobody answering).
    pub fn js_domain_probe(&self) -> Option<String> {
        self.js_domain.as_ref().map(|d| format!("$JS.{d}.API.INFO"))
    }

    /// The JetStream context the lattice's buckets are reached through: from a leaf node,
    /// the hub's domain, so requests cross the leaf connection instead of reaching the
    /// leaf's own JetStream.
    pub fn jetstream(&self, nats: &async_nats::Client) -> async_nats::jetstream::Context {
        match &self.js_domain {
            Some(domain) => async_nats::jetstream::with_domain(nats.clone(), domain),
            None => async_nats::jetstream::new(nats.clone()),
        }
    }

    fn control(&self, noun: &str, verb: &str) -> String {
        format!(
            "{ROOT}.ctl.{CONTROL_VERSION}.{}.{noun}.{verb}",
            self.lattice
        )
    }

    fn control_for(&self, noun: &str, verb: &str, target: &str) -> String {
        format!("{}.{target}", self.control(noun, verb))
    }

    /// Every host answers.
    pub fn host_ping(&self) -> String {
        self.control(ctl::HOST, ctl::PING)
    }

    /// The host's full inventory.
    pub fn host_get(&self, host_id: &str) -> String {
        self.control_for(ctl::HOST, ctl::GET, host_id)
    }

    /// The host's live per-component figures.
    pub fn host_stats(&self, host_id: &str) -> String {
        self.control_for(ctl::HOST, ctl::STATS, host_id)
    }

    pub fn host_stop(&self, host_id: &str) -> String {
        self.control_for(ctl::HOST, ctl::STOP, host_id)
    }

    /// The host's GPIO chips and lines.
    pub fn gpio_list(&self, host_id: &str) -> String {
        self.control_for(ctl::GPIO, ctl::LIST, host_id)
    }

    pub fn gpio_get(&self, host_id: &str) -> String {
        self.control_for(ctl::GPIO, ctl::GET, host_id)
    }

    pub fn gpio_set(&self, host_id: &str) -> String {
        self.control_for(ctl::GPIO, ctl::SET, host_id)
    }

    pub fn label_put(&self, host_id: &str) -> String {
        self.control_for(ctl::LABEL, ctl::PUT, host_id)
    }

    pub fn label_del(&self, host_id: &str) -> String {
        self.control_for(ctl::LABEL, ctl::DEL, host_id)
    }

    pub fn component_scale(&self, host_id: &str) -> String {
        self.control_for(ctl::COMPONENT, ctl::SCALE, host_id)
    }

    /// Every host whose labels match answers with an offer.
    pub fn component_auction(&self) -> String {
        self.control(ctl::COMPONENT, ctl::AUCTION)
    }

    /// Answered, in a queue group, by any host that runs `component_id`.
    pub fn component_describe(&self, component_id: &str) -> String {
        self.control_for(ctl::COMPONENT, ctl::DESCRIBE, component_id)
    }

    /// Start a capability provider on a host.
    pub fn provider_start(&self, host_id: &str) -> String {
        self.control_for(ctl::PROVIDER, ctl::START, host_id)
    }

    /// Stop a capability provider on a host.
    pub fn provider_stop(&self, host_id: &str) -> String {
        self.control_for(ctl::PROVIDER, ctl::STOP, host_id)
    }

    /// Health checks of one provider instance, answered by that instance alone.
    pub fn provider_health(&self, host_id: &str, provider_id: &str) -> String {
        format!(
            "{}.{host_id}.{provider_id}",
            self.control(ctl::PROVIDER, ctl::HEALTH)
        )
    }

    /// Put a link (answered by one host of a queue group).
    pub fn link_put(&self) -> String {
        self.control(ctl::LINK, ctl::PUT)
    }

    pub fn link_retarget(&self) -> String {
        self.control(ctl::LINK, ctl::RETARGET)
    }

    /// Every lattice-wide link and config request, for the queue group of hosts.
    pub fn store_requests(&self) -> Vec<String> {
        vec![
            self.link_put(),
            self.link_retarget(),
            self.link_del(),
            self.config_put(),
            self.config_del(),
        ]
    }

    pub fn link_del(&self) -> String {
        self.control(ctl::LINK, ctl::DEL)
    }

    pub fn config_put(&self) -> String {
        self.control(ctl::CONFIG, ctl::PUT)
    }

    pub fn config_del(&self) -> String {
        self.control(ctl::CONFIG, ctl::DEL)
    }

    /// Queue group for lattice-wide requests that one host should answer.
    pub fn any_host_group(&self) -> String {
        format!("{ROOT}.{}.hosts", self.lattice)
    }

    /// Queue group of the hosts that run `component_id`.
    pub fn queue_group(&self, component_id: &str) -> String {
        format!("{ROOT}.{}.{component_id}", self.lattice)
    }

    /// Every per-host control subject of `host_id`.
    pub fn host_control_wildcard(&self, host_id: &str) -> String {
        format!(
            "{ROOT}.ctl.{CONTROL_VERSION}.{}.*.*.{host_id}",
            self.lattice
        )
    }

    /// Splits a control subject of this lattice into noun, verb and target.
    pub fn parse_control<'a>(&self, subject: &'a str) -> Option<ControlSubject<'a>> {
        let mut parts = subject.split('.');
        if parts.next()? != ROOT
            || parts.next()? != "ctl"
            || parts.next()? != CONTROL_VERSION
            || parts.next()? != self.lattice
        {
            return None;
        }
        let noun = parts.next()?;
        let verb = parts.next()?;
        let target = parts.next();
        if parts.next().is_some() {
            return None;
        }
        Some(ControlSubject { noun, verb, target })
    }

    /// Subject an event of `event_type` is published on.
    pub fn event(&self, event_type: &str) -> String {
        format!("{ROOT}.evt.{}.{event_type}", self.lattice)
    }

    /// Every event of this lattice.
    pub fn events_wildcard(&self) -> String {
        format!("{ROOT}.evt.{}.>", self.lattice)
    }

    /// wRPC prefix under which `target_id` serves its exports.
    pub fn rpc_prefix(&self, target_id: &str) -> String {
        format!("{ROOT}.rpc.{}.{target_id}", self.lattice)
    }

    /// Every invocation of `target_id` (for `trellis spy`).
    pub fn rpc_wildcard(&self, target_id: &str) -> String {
        format!("{}.>", self.rpc_prefix(target_id))
    }

    /// The subject on which a caller receives the error report of the call whose reply
    /// inbox is `inbox`.
    pub fn rpc_error_inbox(&self, inbox: &str) -> String {
        format!("{inbox}{}", rpc::ERRORS)
    }

    /// The subject an invocation of `instance`/`func` of `target_id` is sent on.
    pub fn invocation(&self, target_id: &str, instance: &str, func: &str) -> String {
        rpc::invocation(&self.rpc_prefix(target_id), instance, func)
    }

    /// `trellis.rpc.{lattice}.{target_id}.on.{host_id}`: the instances of a component on one
    /// host, for callers that must stay on it (a provider delivering to the component next
    /// to it). Component ids are one token, so this never meets another component's prefix.
    pub fn rpc_prefix_on(&self, target_id: &str, host_id: &str) -> String {
        format!("{}.on.{host_id}", self.rpc_prefix(target_id))
    }

    pub fn invocation_on(
        &self,
        target_id: &str,
        host_id: &str,
        instance: &str,
        func: &str,
    ) -> String {
        rpc::invocation(&self.rpc_prefix_on(target_id, host_id), instance, func)
    }

    /// `trellis.ctl.v1.{lattice}.app.{verb}`: the deployment manager's API.
    pub fn app(&self, verb: &str) -> String {
        self.control(ctl::APP, verb)
    }

    /// Every app request, for the managers' subscription.
    pub fn app_wildcard(&self) -> String {
        self.app("*")
    }

    /// The queue group every manager instance of the lattice serves the API in.
    pub fn app_queue_group(&self) -> String {
        format!("{ROOT}.{}.deploy", self.lattice)
    }

    /// The key-value bucket holding the links of the lattice.
    pub fn links_bucket(&self) -> String {
        format!("{ROOT}_links_{}", self.lattice)
    }

    /// The key-value bucket holding the named configs of the lattice.
    pub fn config_bucket(&self) -> String {
        format!("{ROOT}_config_{}", self.lattice)
    }

    /// The key-value bucket holding the lattice's applications.
    pub fn apps_bucket(&self) -> String {
        format!("{ROOT}_apps_{}", self.lattice)
    }

    /// The object store holding compiled artifacts the lattice's hosts share.
    pub fn artifacts_bucket(&self) -> String {
        format!("{ROOT}_artifacts_{}", self.lattice)
    }

    /// The stream whose subjects are the live hosts of the lattice.
    pub fn presence_stream(&self) -> String {
        format!("{ROOT}_hosts_{}", self.lattice)
    }

    /// Where a host says it is live.
    pub fn presence(&self, host_id: &str) -> String {
        format!("{ROOT}.presence.{}.{host_id}", self.lattice)
    }

    /// Every host's presence subject.
    pub fn presence_wildcard(&self) -> String {
        format!("{ROOT}.presence.{}.*", self.lattice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_domain_probe_asks_the_hub_domain() {
        let subjects = Subjects::new("l").with_js_domain(Some("hub".into()));
        assert_eq!(
            subjects.js_domain_probe().as_deref(),
            Some("$JS.hub.API.INFO")
        );
        assert_eq!(Subjects::new("l").js_domain_probe(), None);
    }

    #[test]
    fn control_subjects() {
        let s = Subjects::new("prod");
        assert_eq!(s.host_ping(), "trellis.ctl.v1.prod.host.ping");
        assert_eq!(
            s.component_scale("NHOST"),
            "trellis.ctl.v1.prod.component.scale.NHOST"
        );
        let subject = s.label_put("NHOST");
        let parsed = s.parse_control(&subject).unwrap();
        assert_eq!(
            parsed,
            ControlSubject {
                noun: "label",
                verb: "put",
                target: Some("NHOST")
            }
        );
        assert_eq!(s.parse_control(&s.host_ping()).unwrap().target, None);
        assert!(s.parse_control("trellis.ctl.v1.other.host.ping").is_none());
        assert!(s.parse_control("trellis.ctl.v1.prod.a.b.c.d").is_none());
    }

    #[test]
    fn lattices_do_not_overlap() {
        let a = Subjects::new("a");
        assert_eq!(a.events_wildcard(), "trellis.evt.a.>");
        assert_eq!(a.event("host_started"), "trellis.evt.a.host_started");
        assert_eq!(a.rpc_prefix("greeter"), "trellis.rpc.a.greeter");
        assert_eq!(a.links_bucket(), "trellis_links_a");
        assert_eq!(a.apps_bucket(), "trellis_apps_a");
    }

    #[test]
    fn rpc_subjects() {
        let s = Subjects::new("prod");
        assert_eq!(
            s.invocation("kv", "wasi:keyvalue/store@0.2.0-draft", "open"),
            "trellis.rpc.prod.kv.wrpc.0.0.1.wasi:keyvalue/store@0.2.0-draft.open"
        );
        assert_eq!(rpc::invocation("", "", "f"), "wrpc.0.0.1.f");
        assert_eq!(s.rpc_error_inbox("_INBOX.x.1"), "_INBOX.x.1.err");
        assert_eq!(
            rpc::function_of("trellis.rpc.d.kv.wrpc.0.0.1.wasi:keyvalue/store@0.2.0-draft.open"),
            "wasi:keyvalue/store@0.2.0-draft.open"
        );
        assert_eq!(rpc::function_of("odd"), "odd");
    }

    #[test]
    fn app_subjects() {
        let s = Subjects::new("prod");
        assert_eq!(s.app("deploy"), "trellis.ctl.v1.prod.app.deploy");
        assert_eq!(s.app_wildcard(), "trellis.ctl.v1.prod.app.*");
        let list = s.app("list");
        let parsed = s.parse_control(&list).unwrap();
        assert_eq!((parsed.noun, parsed.verb), ("app", "list"));
    }
}
