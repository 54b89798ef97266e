//! NATS subject syntax, checked before anything reaches the server.

/// Whether `subject` can be published to: dot-separated non-empty tokens, no whitespace, no
/// wildcards.
pub fn check_publish(subject: &str) -> Result<(), String> {
    check(subject, false)
}

/// Whether `filter` can be subscribed to: like a subject, plus `*` as a whole token and `>`
/// as the whole last token.
pub fn check_filter(filter: &str) -> Result<(), String> {
    check(filter, true)
}

fn check(subject: &str, wildcards: bool) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "{subject:?} is not a NATS subject{}: {why}",
            if wildcards { " filter" } else { "" }
        ))
    };
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it holds whitespace");
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return bad("it has an empty token");
        }
        let wildcard = *token == "*" || *token == ">";
        if !wildcard && token.contains(['*', '>']) {
            return bad("`*` and `>` must be whole tokens");
        }
        if wildcard && !wildcards {
            return bad("wildcards cannot be published to");
        }
        if *token == ">" && i + 1 != tokens.len() {
            return bad("`>` must be the last token");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_filters() {
        assert!(check_publish("factory.line1.temp").is_ok());
        assert!(check_publish("trellis/demo/button").is_ok());
        assert!(check_publish("a.*").is_err());
        assert!(check_publish("a..b").is_err());
        assert!(check_publish("a b").is_err());
        assert!(check_filter("factory.*.temp").is_ok());
        assert!(check_filter("alerts.>").is_ok());
        assert!(check_filter("alerts.>.x").is_err());
        assert!(check_filter("al*").is_err());
        assert!(check_filter(".a").is_err());
    }
}
