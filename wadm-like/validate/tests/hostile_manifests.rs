//! Manifests as a hostile client or a careless operator writes them, against the one parser
//! and validator the CLI and the manager share (`trellis_validate::parse`): the corpus kept in
//! `tests/corpus/manifests/` (each refused with its `.expect` text), arbitrary text, and a
//! valid manifest with one value replaced by something hostile. Nothing panics; every error
//! is located and short, and repeats at most a short beginning of what was given.

use std::path::PathBuf;

use proptest::prelude::*;

/// Cases per property.
const CASES: u32 = 256;
/// The longest single error any of these inputs may produce.
const MAX_ERROR: usize = 2048;

const VALID: &str = "apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: hostile
  annotations:
    version: v1
spec:
  components:
    - name: web
      type: component
      properties:
        image: /c.wasm
        config:
          - name: settings
            properties:
              greeting: hi
      traits:
        - type: spreadscaler
          properties:
            instances: 2
            spread:
              - name: east
                weight: 50
                requirements:
                  zone: east
        - type: link
          properties:
            target:
              name: store
            namespace: wasi
            package: keyvalue
            interfaces: [store, atomics]
    - name: store
      type: capability
      properties:
        image: builtin://keyvalue
";

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/manifests")
}

/// Every error located (or about the whole document), short, and no long echo of `sent`.
fn clear(errs: &trellis_validate::ValidationErrors, sent: &str) {
    assert!(!errs.errors.is_empty());
    for e in &errs.errors {
        let text = e.to_string();
        assert!(!e.message.is_empty());
        assert!(text.len() <= MAX_ERROR, "an error of {} bytes", text.len());
        if sent.len() > 400 {
            let middle: String = sent
                .chars()
                .skip(sent.chars().count() / 2)
                .take(200)
                .collect();
            if middle.chars().count() == 200 {
                assert!(!text.contains(&middle), "the input was echoed: {text}");
            }
        }
    }
}

#[test]
fn the_valid_manifest_is_valid() {
    trellis_validate::parse("app.yaml", VALID).expect("the mutations start from a valid manifest");
}

#[test]
fn every_manifest_in_the_corpus_is_refused_clearly() {
    let mut files: Vec<_> = std::fs::read_dir(corpus())
        .expect("tests/corpus/manifests")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus is there: {}", files.len());
    let mut wrong = Vec::new();
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        let expect = std::fs::read_to_string(file.with_extension("expect")).expect("expect");
        let expect = expect.trim_end_matches('\n');
        let text = match trellis_validate::read_file(file) {
            Ok(text) => text,
            Err(errs) => {
                if !errs.to_string().contains(expect) {
                    wrong.push(format!("{name}: {errs}"));
                }
                continue;
            }
        };
        match trellis_validate::parse(name, &text) {
            Ok(_) => wrong.push(format!("{name}: accepted")),
            Err(errs) if !errs.to_string().contains(expect) => {
                wrong.push(format!("{name}: {errs}"))
            }
            Err(errs) => clear(&errs, &text),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn hostile_scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("-1".to_string()),
        Just("99999999999999999999999".to_string()),
        Just("1e308".to_string()),
        Just("~".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("*unknown_alias".to_string()),
        Just("&a [*a]".to_string()),
        Just("\"a\\0b\"".to_string()),
        Just("../../etc/passwd".to_string()),
        Just("file:///dev/zero".to_string()),
        "[a-zA-Z0-9 .:/@-]{0,40}",
        (1usize..100_000).prop_map(|n| "x".repeat(n)),
        (1usize..200).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn arbitrary_text_is_refused_clearly(text in "\\PC{0,2000}") {
        if let Err(errs) = trellis_validate::parse("app.yaml", &text) {
            clear(&errs, &text);
        }
    }

    #[test]
    fn arbitrary_bytes_as_text_are_refused_clearly(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(errs) = trellis_validate::parse("app.yaml", &text) {
            clear(&errs, &text);
        }
    }

    #[test]
    fn a_valid_manifest_with_one_hostile_value_never_panics(
        line in any::<prop::sample::Index>(),
        value in hostile_scalar(),
    ) {
        // Replace what follows the `:` (or `- `) of one line.
        let lines: Vec<&str> = VALID.lines().collect();
        let i = line.index(lines.len());
        let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        let l = lines[i];
        out[i] = match (l.find(": "), l.find("- ")) {
            (Some(at), _) => format!("{}: {value}", &l[..at]),
            (None, Some(at)) => format!("{}- {value}", &l[..at]),
            _ => format!("{l} {value}"),
        };
        let text = out.join("\n");
        if let Err(errs) = trellis_validate::parse("app.yaml", &text) {
            clear(&errs, &text);
        }
    }
}
