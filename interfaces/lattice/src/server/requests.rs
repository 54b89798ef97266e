//! Every control request a server can receive, parsed once from its subject and payload into
//! a typed value; anything that does not parse is an [`ErrorKind::Invalid`] answer naming
//! what was wrong.

use serde::de::DeserializeOwned;

use super::checks::Check;
use crate::app::{self, verb, AppName, DeployApp, GetApp, ListApps, PutApp};
use crate::control::{
    ComponentAuction, DeleteConfig, DeleteLabel, DeleteLink, DescribeComponent, GetHost, PutConfig,
    PutLabel, PutLink, RetargetLink, ScaleComponent, StartProvider, StopHost, StopProvider,
};
use crate::error::{ControlError, ErrorKind};
use crate::gpio::{GpioLine, GpioSet};

use crate::subject::{ctl, Subjects};

/// Requests each host serves on its own subjects (and the broadcasts every host hears).
#[derive(Clone, Debug, PartialEq)]
pub enum HostRequest {
    /// Broadcast: every host answers with its summary.
    Ping,
    /// The host's inventory (a page of it, when it is too large for one message).
    Get(GetHost),
    /// The host's live per-component figures.
    Stats,
    Stop(StopHost),
    PutLabel(PutLabel),
    DeleteLabel(DeleteLabel),
    Scale(ScaleComponent),
    /// Broadcast: hosts whose labels match answer with an offer; others stay silent.
    Auction(ComponentAuction),
    StartProvider(StartProvider),
    StopProvider(StopProvider),
    GpioList,
    GpioGet(GpioLine),
    GpioSet(GpioSet),
}

/// Lattice-wide link and config writes, answered by one host of the hosts' queue group.
#[derive(Clone, Debug, PartialEq)]
pub enum StateRequest {
    PutLink(PutLink),
    RetargetLink(RetargetLink),
    DeleteLink(DeleteLink),
    PutConfig(PutConfig),
    DeleteConfig(DeleteConfig),
}

/// The deployment manager's API.
#[derive(Clone, Debug, PartialEq)]
pub enum AppRequest {
    Put(PutApp),
    Validate(PutApp),
    Deploy(DeployApp),
    Rollback(DeployApp),
    Undeploy(AppName),
    Delete(AppName),
    List(ListApps),
    Status(AppName),
    History(AppName),
    Get(GetApp),
}

/// Any control request.
#[derive(Clone, Debug, PartialEq)]
pub enum ControlRequest {
    Host(HostRequest),
    State(StateRequest),
    App(AppRequest),
    /// Answered by any host running the component.
    Describe(DescribeComponent),
}

impl ControlRequest {
    /// Parses a request from its subject and payload.
    pub fn parse(subjects: &Subjects, subject: &str, payload: &[u8]) -> Result<Self, ControlError> {
        let Some(parsed) = subjects.parse_control(subject) else {
            return Err(ControlError::invalid(format!(
                "{} is not a control subject of lattice `{}`",
                crate::error::shorten(subject),
                subjects.lattice()
            )));
        };
        let (noun, verb) = (parsed.noun, parsed.verb);
        use ControlRequest as C;
        use HostRequest as H;
        use StateRequest as S;
        Ok(match (noun, verb) {
            (ctl::HOST, ctl::PING) => C::Host(H::Ping),
            (ctl::HOST, ctl::GET) => C::Host(H::Get(body("host get", payload)?)),
            (ctl::HOST, ctl::STATS) => C::Host(H::Stats),
            (ctl::HOST, ctl::STOP) => C::Host(H::Stop(body("host stop", payload)?)),
            (ctl::LABEL, ctl::PUT) => C::Host(H::PutLabel(body("label put", payload)?)),
            (ctl::LABEL, ctl::DEL) => C::Host(H::DeleteLabel(body("label delete", payload)?)),
            (ctl::COMPONENT, ctl::SCALE) => C::Host(H::Scale(body("scale", payload)?)),
            (ctl::COMPONENT, ctl::AUCTION) => C::Host(H::Auction(body("auction", payload)?)),
            (ctl::COMPONENT, ctl::DESCRIBE) => C::Describe(body("describe", payload)?),
            (ctl::PROVIDER, ctl::START) => {
                C::Host(H::StartProvider(body("provider start", payload)?))
            }
            (ctl::PROVIDER, ctl::STOP) => C::Host(H::StopProvider(body("provider stop", payload)?)),
            (ctl::GPIO, ctl::LIST) => C::Host(H::GpioList),
            (ctl::GPIO, ctl::GET) => C::Host(H::GpioGet(body("gpio get", payload)?)),
            (ctl::GPIO, ctl::SET) => C::Host(H::GpioSet(body("gpio set", payload)?)),
            (ctl::LINK, ctl::PUT) => C::State(S::PutLink(body("link put", payload)?)),
            (ctl::LINK, ctl::RETARGET) => {
                C::State(S::RetargetLink(body("link retarget", payload)?))
            }
            (ctl::LINK, ctl::DEL) => C::State(S::DeleteLink(body("link delete", payload)?)),
            (ctl::CONFIG, ctl::PUT) => C::State(S::PutConfig(body("config put", payload)?)),
            (ctl::CONFIG, ctl::DEL) => C::State(S::DeleteConfig(body("config delete", payload)?)),
            (ctl::APP, _) => C::App(parse_app(verb, payload)?),
            (noun, verb) => {
                return Err(ControlError::invalid(format!(
                    "unknown control request {noun}.{verb}"
                )))
            }
        })
    }

    /// The name of the request a subject carries (`component.scale`), whether or not its
    /// payload parses; `None` for subjects that are no control request.
    pub fn name_of(subjects: &Subjects, subject: &str) -> Option<&'static str> {
        let parsed = subjects.parse_control(subject)?;
        known(parsed.noun, parsed.verb)
    }

    /// A short name for logs and spans: `component.scale`.
    pub fn name(&self) -> &'static str {
        use ControlRequest as C;
        use HostRequest as H;
        use StateRequest as S;
        let (noun, verb) = match self {
            C::Host(h) => match h {
                H::Ping => (ctl::HOST, ctl::PING),
                H::Get(_) => (ctl::HOST, ctl::GET),
                H::Stats => (ctl::HOST, ctl::STATS),
                H::Stop(_) => (ctl::HOST, ctl::STOP),
                H::PutLabel(_) => (ctl::LABEL, ctl::PUT),
                H::DeleteLabel(_) => (ctl::LABEL, ctl::DEL),
                H::Scale(_) => (ctl::COMPONENT, ctl::SCALE),
                H::Auction(_) => (ctl::COMPONENT, ctl::AUCTION),
                H::StartProvider(_) => (ctl::PROVIDER, ctl::START),
                H::StopProvider(_) => (ctl::PROVIDER, ctl::STOP),
                H::GpioList => (ctl::GPIO, ctl::LIST),
                H::GpioGet(_) => (ctl::GPIO, ctl::GET),
                H::GpioSet(_) => (ctl::GPIO, ctl::SET),
            },
            C::State(s) => match s {
                S::PutLink(_) => (ctl::LINK, ctl::PUT),
                S::RetargetLink(_) => (ctl::LINK, ctl::RETARGET),
                S::DeleteLink(_) => (ctl::LINK, ctl::DEL),
                S::PutConfig(_) => (ctl::CONFIG, ctl::PUT),
                S::DeleteConfig(_) => (ctl::CONFIG, ctl::DEL),
            },
            C::App(a) => return a.name(),
            C::Describe(_) => (ctl::COMPONENT, ctl::DESCRIBE),
        };
        known(noun, verb).unwrap_or("control")
    }
}

impl AppRequest {
    /// A short name for logs and spans: `app.deploy`.
    pub fn name(&self) -> &'static str {
        let verb = match self {
            AppRequest::Put(_) => verb::PUT,
            AppRequest::Validate(_) => verb::VALIDATE,
            AppRequest::Deploy(_) => verb::DEPLOY,
            AppRequest::Rollback(_) => verb::ROLLBACK,
            AppRequest::Undeploy(_) => verb::UNDEPLOY,
            AppRequest::Delete(_) => verb::DELETE,
            AppRequest::List(_) => verb::LIST,
            AppRequest::Status(_) => verb::STATUS,
            AppRequest::History(_) => verb::HISTORY,
            AppRequest::Get(_) => verb::GET,
        };
        known(ctl::APP, verb).unwrap_or("app")
    }
}

fn known(noun: &str, verb: &str) -> Option<&'static str> {
    KNOWN
        .iter()
        .find(|(n, v, _)| *n == noun && *v == verb)
        .map(|(_, _, name)| *name)
}

/// Every control request by noun and verb, with its name.
const KNOWN: &[(&str, &str, &str)] = &[
    (ctl::HOST, ctl::PING, "host.ping"),
    (ctl::HOST, ctl::GET, "host.get"),
    (ctl::HOST, ctl::STATS, "host.stats"),
    (ctl::HOST, ctl::STOP, "host.stop"),
    (ctl::LABEL, ctl::PUT, "label.put"),
    (ctl::LABEL, ctl::DEL, "label.del"),
    (ctl::COMPONENT, ctl::SCALE, "component.scale"),
    (ctl::COMPONENT, ctl::AUCTION, "component.auction"),
    (ctl::COMPONENT, ctl::DESCRIBE, "component.describe"),
    (ctl::PROVIDER, ctl::START, "provider.start"),
    (ctl::PROVIDER, ctl::STOP, "provider.stop"),
    (ctl::GPIO, ctl::LIST, "gpio.list"),
    (ctl::GPIO, ctl::GET, "gpio.get"),
    (ctl::GPIO, ctl::SET, "gpio.set"),
    (ctl::LINK, ctl::PUT, "link.put"),
    (ctl::LINK, ctl::RETARGET, "link.retarget"),
    (ctl::LINK, ctl::DEL, "link.del"),
    (ctl::CONFIG, ctl::PUT, "config.put"),
    (ctl::CONFIG, ctl::DEL, "config.del"),
    (ctl::APP, verb::PUT, "app.put"),
    (ctl::APP, verb::VALIDATE, "app.validate"),
    (ctl::APP, verb::DEPLOY, "app.deploy"),
    (ctl::APP, verb::ROLLBACK, "app.rollback"),
    (ctl::APP, verb::UNDEPLOY, "app.undeploy"),
    (ctl::APP, verb::DELETE, "app.delete"),
    (ctl::APP, verb::LIST, "app.list"),
    (ctl::APP, verb::STATUS, "app.status"),
    (ctl::APP, verb::HISTORY, "app.history"),
    (ctl::APP, verb::GET, "app.get"),
];

fn parse_app(verb: &str, payload: &[u8]) -> Result<AppRequest, ControlError> {
    let what = |v: &str| format!("app {v}");
    Ok(match verb {
        verb::PUT => AppRequest::Put(body(&what(verb), payload)?),
        verb::VALIDATE => AppRequest::Validate(body(&what(verb), payload)?),
        verb::DEPLOY => AppRequest::Deploy(body(&what(verb), payload)?),
        verb::ROLLBACK => AppRequest::Rollback(body(&what(verb), payload)?),
        verb::UNDEPLOY => AppRequest::Undeploy(body(&what(verb), payload)?),
        verb::DELETE => AppRequest::Delete(body(&what(verb), payload)?),
        verb::LIST => AppRequest::List(body(&what(verb), payload)?),
        verb::STATUS => AppRequest::Status(body(&what(verb), payload)?),
        verb::HISTORY => AppRequest::History(body(&what(verb), payload)?),
        verb::GET => AppRequest::Get(body(&what(verb), payload)?),
        other => {
            return Err(ControlError::invalid(format!(
                "unknown app request `{other}` (known: {})",
                app::verb::ALL.join(", ")
            )))
        }
    })
}

/// A request body: JSON of the request's type (an empty payload stands for `{}`; unknown
/// fields are refused), whose ids and sizes pass [`Check`].
fn body<T: DeserializeOwned + Check>(what: &str, payload: &[u8]) -> Result<T, ControlError> {
    let payload: &[u8] = if payload.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        payload
    };
    let request: T = serde_json::from_slice(payload).map_err(|e| {
        let reason = crate::error::bounded(&e.to_string());
        ControlError::new(ErrorKind::Invalid, format!("malformed {what} request: {reason}"))
    })?;
    request
        .check()
        .map_err(|e| ControlError::new(ErrorKind::Invalid, format!("{what} request: {e}")))?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(subject: &str, payload: &str) -> Result<ControlRequest, ControlError> {
        ControlRequest::parse(&Subjects::new("t"), subject, payload.as_bytes())
    }

    #[test]
    fn every_family_parses() {
        let s = Subjects::new("t");
        let host = format!("N{}", "A".repeat(55));
        assert_eq!(
            parse(&s.host_ping(), "").unwrap(),
            ControlRequest::Host(HostRequest::Ping)
        );
        assert_eq!(
            parse(&s.host_stop(&host), "").unwrap(),
            ControlRequest::Host(HostRequest::Stop(StopHost { timeout_ms: None }))
        );
        let scale = parse(
            &s.component_scale(&host),
            r#"{"component_id":"c","image":"/c.wasm","replicas":2}"#,
        )
        .unwrap();
        assert_eq!(scale.name(), "component.scale");
        assert_eq!(
            ControlRequest::name_of(&s, &s.component_scale(&host)),
            Some("component.scale")
        );
        assert_eq!(ControlRequest::name_of(&s, "trellis.ctl.v1.t.x.y"), None);
        // Every request has its own name.
        let mut names: Vec<_> = KNOWN.iter().map(|(_, _, n)| *n).collect();
        names.dedup();
        assert_eq!(names.len(), KNOWN.len());
        assert!(matches!(
            parse(&s.config_del(), r#"{"name":"x"}"#).unwrap(),
            ControlRequest::State(StateRequest::DeleteConfig(_))
        ));
        assert!(matches!(
            parse(&s.app(verb::LIST), "").unwrap(),
            ControlRequest::App(AppRequest::List(_))
        ));
        assert!(matches!(
            parse(&s.component_describe("c"), r#"{"component_id":"c"}"#).unwrap(),
            ControlRequest::Describe(_)
        ));
    }

    #[test]
    fn what_does_not_parse_is_invalid_and_named() {
        let s = Subjects::new("t");
        let err = parse(&s.component_scale("h"), "{").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Invalid);
        assert!(err.message.starts_with("malformed scale request"), "{err}");
        let err = parse("trellis.ctl.v1.t.host.dance", "").unwrap_err();
        assert!(
            err.message.contains("unknown control request host.dance"),
            "{err}"
        );
        let err = parse(&s.app("dance"), "").unwrap_err();
        assert!(err.message.contains("unknown app request `dance`"), "{err}");
        let err = parse("trellis.ctl.v1.other.host.ping", "").unwrap_err();
        assert!(err.message.contains("not a control subject"), "{err}");
    }
}
