//! MQTT topic names and filters (MQTT 5 §4.7), checked before anything reaches the broker,
//! and which filter a received topic matched.

/// Whether `topic` can be published to: no wildcards, no NUL.
pub fn check_publish(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("an MQTT topic cannot be empty".into());
    }
    if topic.contains(['+', '#', '\0']) {
        return Err(format!(
            "{topic:?} is not an MQTT topic to publish to: it holds a wildcard or NUL"
        ));
    }
    Ok(())
}

/// Whether `filter` can be subscribed to: `+` a whole level, `#` the whole last level.
pub fn check_filter(filter: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{filter:?} is not an MQTT topic filter: {why}"));
    if filter.is_empty() {
        return bad("it is empty");
    }
    if filter.contains('\0') {
        return bad("it holds NUL");
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if *level != "+" && *level != "#" && level.contains(['+', '#']) {
            return bad("`+` and `#` must be whole levels");
        }
        if *level == "#" && i + 1 != levels.len() {
            return bad("`#` must be the last level");
        }
    }
    Ok(())
}

/// Whether `topic` matches `filter` (topics starting with `$` match no leading wildcard).
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_topics() {
        assert!(check_publish("factory/line1/temp").is_ok());
        assert!(check_publish("factory/+/temp").is_err());
        assert!(check_publish("").is_err());
        assert!(check_filter("factory/+/temp").is_ok());
        assert!(check_filter("alerts/#").is_ok());
        assert!(check_filter("#").is_ok());
        assert!(check_filter("a/#/b").is_err());
        assert!(check_filter("a/b+").is_err());
    }

    #[test]
    fn matching() {
        assert!(matches("factory/+/temp", "factory/line1/temp"));
        assert!(!matches("factory/+/temp", "factory/line1/hum"));
        assert!(matches("alerts/#", "alerts"));
        assert!(matches("alerts/#", "alerts/fire/now"));
        assert!(!matches("alerts/#", "alert"));
        assert!(matches("a/b", "a/b"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("#", "$SYS/x"));
    }
}
