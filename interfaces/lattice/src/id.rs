//! Names that end up inside NATS subjects: lattice names, component and provider ids.
//!
//! They may not contain `.`, whitespace or the NATS wildcards, because each is exactly one
//! subject token.

use crate::error::{Error, Result};
use crate::limits::MAX_ID_LEN as MAX_LEN;

/// Checks that `value` can be one subject token. `what` names the input in the error
/// ("component id", "lattice name", ...).
pub fn validate_token(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(what, value, "must not be empty"));
    }
    if value.len() > MAX_LEN {
        return Err(Error::invalid(
            what,
            value,
            format!("must be at most {MAX_LEN} characters"),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(Error::invalid(
            what,
            value,
            format!("may only hold letters, digits, '-' and '_' (found {c:?})"),
        ));
    }
    Ok(())
}

/// A lattice name.
pub fn validate_lattice(name: &str) -> Result<()> {
    validate_token("lattice name", name)
}

/// A JetStream domain: one subject token, as it becomes part of `$JS.{domain}.API`.
pub fn validate_js_domain(domain: &str) -> Result<()> {
    validate_token("JetStream domain", domain)
}

/// A component or provider id.
pub fn validate_component_id(id: &str) -> Result<()> {
    validate_token("component id", id)
}

/// A host id is a server nkey's public key: 56 upper-case base32 characters starting with `N`.
pub fn validate_host_id(id: &str) -> Result<()> {
    let ok = id.len() == 56
        && id.starts_with('N')
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "host id",
            id,
            "must be a server nkey public key (56 characters starting with 'N')",
        ))
    }
}

/// An issuer's public key (`A…`, an account nkey, checksum included): whom a component
/// must be signed by.
pub fn validate_issuer(key: &str) -> Result<()> {
    let ok = key.len() == 56
        && key.starts_with('A')
        && nkeys::KeyPair::from_public_key(key)
            .is_ok_and(|k| k.key_pair_type() == nkeys::KeyPairType::Account);
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "issuer",
            key,
            "must be an issuer public key (56 characters starting with 'A', as `trellis keys gen issuer` prints)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_js_domain_is_one_subject_token() {
        validate_js_domain("hub").unwrap();
        for bad in ["", "a.b", "a b", "a*", ">", &"x".repeat(200)] {
            let err = validate_js_domain(bad).unwrap_err().to_string();
            assert!(err.contains("JetStream domain"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn tokens() {
        assert!(validate_component_id("greeter-1_a").is_ok());
        for bad in ["", "a.b", "a b", "a*", "a>", &"x".repeat(200)] {
            assert!(validate_component_id(bad).is_err(), "{bad:?}");
        }
        let err = validate_lattice("a.b").unwrap_err().to_string();
        assert!(err.contains("lattice name") && err.contains("'.'"), "{err}");
    }

    #[test]
    fn host_ids() {
        let id = format!("N{}", "A".repeat(55));
        assert!(validate_host_id(&id).is_ok());
        assert!(validate_host_id("NABC").is_err());
        assert!(validate_host_id(&format!("U{}", "A".repeat(55))).is_err());
    }
}
