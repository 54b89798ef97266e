//! Head sampling decided by Trellis before a span is made, by the same rules as
//! `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`: a trace that is not sampled then costs
//! no `tracing` span anywhere (the SDK would build one to decide, on every request). The
//! SDK's own sampler is left to follow what was decided here.

use std::sync::OnceLock;

use rand::Rng as _;
use trellis_lattice::trace::TraceContext;

/// The configured sampler.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Rule {
    /// Follow the caller's decision when there is a caller.
    pub parent_based: bool,
    /// Share of new traces sampled (0 never, 1 always).
    pub ratio: f64,
}

impl Rule {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let arg = get("OTEL_TRACES_SAMPLER_ARG")
            .and_then(|a| a.trim().parse::<f64>().ok())
            .filter(|r| (0.0..=1.0).contains(r));
        let name = get("OTEL_TRACES_SAMPLER").unwrap_or_default();
        let (parent_based, ratio) = match name.trim() {
            "always_on" => (false, 1.0),
            "always_off" => (false, 0.0),
            "traceidratio" => (false, arg.unwrap_or(1.0)),
            "parentbased_always_off" => (true, 0.0),
            "parentbased_traceidratio" => (true, arg.unwrap_or(1.0)),
            // parentbased_always_on, the default, and anything not understood (as the SDK).
            _ => (true, 1.0),
        };
        Self {
            parent_based,
            ratio,
        }
    }

    /// Whether a span continuing `incoming` (or starting a trace) is recorded.
    pub fn decide(&self, incoming: Option<&TraceContext>) -> bool {
        match incoming {
            Some(parent) if self.parent_based => parent.sampled,
            Some(parent) => ratio_keeps(self.ratio, parent.trace_id),
            None => ratio_keeps(self.ratio, rand::thread_rng().gen()),
        }
    }
}

/// The trace-id ratio rule: the low 63 bits of the trace id against the ratio, so every
/// process that decides on the same trace id decides alike.
fn ratio_keeps(ratio: f64, trace_id: u128) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    ((trace_id as u64) >> 1) < bound
}

static RULE: OnceLock<Rule> = OnceLock::new();

pub(crate) fn install(rule: Rule) {
    let _ = RULE.set(rule);
}

/// Whether a continued caller's decision holds (a `parentbased_*` sampler, the default).
pub(crate) fn parent_based() -> bool {
    RULE.get().is_none_or(|r| r.parent_based)
}

/// Whether a span continuing `incoming` (or a new trace, for `None`) should be recorded.
/// Always false while export is off.
pub fn decide(incoming: Option<&TraceContext>) -> bool {
    crate::switch::enabled() && RULE.get().is_some_and(|r| r.decide(incoming))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pairs: &[(&str, &str)]) -> Rule {
        Rule::from_lookup(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn the_standard_names() {
        assert_eq!(
            rule(&[]),
            Rule {
                parent_based: true,
                ratio: 1.0
            }
        );
        let r = rule(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.01"),
        ]);
        assert_eq!(
            r,
            Rule {
                parent_based: true,
                ratio: 0.01
            }
        );
        assert_eq!(rule(&[("OTEL_TRACES_SAMPLER", "always_off")]).ratio, 0.0);
        assert_eq!(
            rule(&[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "7")
            ])
            .ratio,
            1.0
        );
    }

    #[test]
    fn parents_decide_and_ratios_hold() {
        let r = Rule {
            parent_based: true,
            ratio: 0.0,
        };
        let mut parent = TraceContext::new_root();
        assert!(r.decide(Some(&parent)));
        parent.sampled = false;
        assert!(!r.decide(Some(&parent)));
        assert!(!r.decide(None));
        let tenth = Rule {
            parent_based: true,
            ratio: 0.1,
        };
        let kept = (0..20_000).filter(|_| tenth.decide(None)).count();
        assert!((1_000..3_000).contains(&kept), "{kept}");
    }
}
