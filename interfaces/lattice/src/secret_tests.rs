use std::os::unix::fs::PermissionsExt as _;

use super::*;

fn key() -> SecretsKey {
    SecretsKey::generate().unwrap()
}

#[test]
fn a_sealed_value_opens_with_the_key_and_carries_no_plaintext() {
    let k = key();
    let plain = Secret::new("hunter2-ünïcode");
    let sealed = k.public().seal("db", "password", &plain).unwrap();
    assert!(is_sealed(&sealed));
    assert!(!sealed.contains("hunter2"));
    assert!(sealed.contains(&k.public().as_string()), "names its key");
    check_sealed("db", "password", &sealed).unwrap();
    assert_eq!(k.open("db", "password", &sealed).unwrap(), plain);
    // A fresh sender key and nonce each time.
    assert_ne!(sealed, k.public().seal("db", "password", &plain).unwrap());
}

#[test]
fn secrets_never_show_in_debug_display_or_errors() {
    let s = Secret::new("plaintext-xyz");
    assert_eq!(format!("{s:?} {s}"), "<secret> <secret>");
    let k = key();
    assert!(!format!("{k:?}").contains(&k.pair.seed().unwrap()));
    let sealed = k.public().seal("c", "k", &s).unwrap();
    let config: Config = [
        ("k".to_string(), sealed.clone()),
        ("plain".to_string(), "v".to_string()),
    ]
    .into();
    let shown = shown(&config);
    assert_eq!(shown["k"], SHOWN);
    assert_eq!(shown["plain"], "v");
    let err = open_config("c", &config, None).unwrap_err().to_string();
    assert!(
        err.contains("config `c` key `k`") && err.contains("--secrets-key"),
        "{err}"
    );
    assert!(
        !err.contains("plaintext") && !err.contains(&sealed),
        "{err}"
    );
}

#[test]
fn a_tampered_sealed_value_fails_clearly() {
    let k = key();
    let sealed = k.public().seal("c", "k", &Secret::new("v")).unwrap();
    // Flip one hex digit of the box.
    let mut bytes = sealed.clone().into_bytes();
    let last = bytes.len() - 3;
    bytes[last] = if bytes[last] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(bytes).unwrap();
    let err = k.open("c", "k", &tampered).unwrap_err().to_string();
    assert!(err.contains("does not open (altered"), "{err}");
    for (bad, says) in [
        (format!("{SEALED_PREFIX}x"), "sealed form"),
        (format!("{SEALED_PREFIX}a:b:00"), "sender key"),
        (
            format!(
                "{SEALED_PREFIX}{}",
                sealed[SEALED_PREFIX.len()..].replace(':', ";")
            ),
            "sealed form",
        ),
        (format!("{}zz", &sealed[..sealed.len() - 2]), "not hex"),
    ] {
        let err = k.open("c", "k", &bad).unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
        assert!(check_sealed("c", "k", &bad).is_err());
    }
}

#[test]
fn a_value_opens_only_where_it_was_sealed_and_with_its_key() {
    let k = key();
    let sealed = k
        .public()
        .seal("db", "password", &Secret::new("v"))
        .unwrap();
    for (config, key_name) in [("other", "password"), ("db", "user")] {
        let err = k.open(config, key_name, &sealed).unwrap_err().to_string();
        assert!(err.contains("another config or key"), "{err}");
    }
    let other = key();
    let err = other
        .open("db", "password", &sealed)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&k.public().as_string()) && err.contains(&other.public().as_string()),
        "{err}"
    );
}

#[test]
fn public_keys_are_checked_and_seeds_are_not_echoed() {
    let k = key();
    let seed = k.pair.seed().unwrap();
    let err = SecretsPublicKey::parse(&seed).unwrap_err().to_string();
    assert!(
        err.contains("looks like a seed") && !err.contains(&seed),
        "{err}"
    );
    assert!(SecretsPublicKey::parse("Xnope").is_err());
    let p = SecretsPublicKey::parse(&k.public().as_string()).unwrap();
    let sealed = p.seal("c", "k", &Secret::new("v")).unwrap();
    assert_eq!(k.open("c", "k", &sealed).unwrap().expose(), "v");
    let too_long = Secret::new("x".repeat(MAX_SECRET_BYTES + 1));
    assert!(p.seal("c", "k", &too_long).is_err());
}

#[test]
fn key_files_are_private_and_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.xk");
    let k = key();
    k.write_file(&path, false).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let read = SecretsKey::read_file(&path).unwrap();
    assert_eq!(read.public().as_string(), k.public().as_string());
    assert!(key().write_file(&path, false).is_err(), "kept");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = SecretsKey::read_file(&path).unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::write(dir.path().join("junk"), "SXnot-a-seed").unwrap();
    let junk = dir.path().join("junk");
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = SecretsKey::read_file(&junk).unwrap_err().to_string();
    assert!(err.contains("xkey seed") && !err.contains("SXnot"), "{err}");
}
