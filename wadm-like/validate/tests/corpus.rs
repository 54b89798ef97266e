//! The manifest corpus: every file in `tests/invalid/` must fail validation with the errors
//! its `.expected` sidecar lists, and every file in `tests/valid/` must pass.
//!
//! An `.expected` file holds one expectation per line (blank lines and `#` comments ignored):
//!
//! - `FILE: PATH: MESSAGE`: this exact error line must be reported;
//! - `~ PATH :: TEXT`: an error at exactly PATH whose message contains TEXT must be reported
//!   (`~  :: TEXT` for an error about the whole document).
//!
//! `SHOW=path/to/file.yaml cargo test -p trellis-validate --test corpus show -- --ignored
//! --nocapture` prints what the validator says about a file.

use std::path::{Path, PathBuf};

use trellis_validate::{self as validate, ValidationErrors};

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dir);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    out.sort();
    out
}

fn validate_file(path: &Path) -> Result<trellis_lattice::manifest::Manifest, ValidationErrors> {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let text = std::fs::read_to_string(path).unwrap();
    validate::parse_and_check_images(&name, &text, path.parent().unwrap())
}

enum Expectation {
    Exact(String),
    At { path: String, text: String },
}

fn expectations(path: &Path) -> Vec<Expectation> {
    let sidecar = path.with_extension("expected");
    let text = std::fs::read_to_string(&sidecar)
        .unwrap_or_else(|e| panic!("{} needs {}: {e}", path.display(), sidecar.display()));
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| match l.strip_prefix("~ ") {
            Some(rest) => {
                let (path, text) = rest.split_once(" :: ").unwrap_or_else(|| {
                    panic!("{}: `~ PATH :: TEXT` expected: {l}", sidecar.display())
                });
                Expectation::At {
                    path: path.trim().to_string(),
                    text: text.to_string(),
                }
            }
            None => Expectation::Exact(l.to_string()),
        })
        .collect()
}

#[test]
fn invalid_manifests_report_the_expected_errors() {
    let files = files("invalid");
    assert!(
        files.len() >= 35,
        "the corpus has only {} invalid manifests",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let expected = expectations(file);
        assert!(!expected.is_empty(), "{} expects nothing", file.display());
        let errors = match validate_file(file) {
            Ok(_) => {
                failures.push(format!("{}: validated, but should not", file.display()));
                continue;
            }
            Err(e) => e,
        };
        let lines: Vec<String> = errors.to_string().lines().map(String::from).collect();
        assert_eq!(lines.len(), errors.errors.len(), "one line per error");
        for exp in expected {
            let found = match &exp {
                Expectation::Exact(line) => lines.contains(line),
                Expectation::At { path, text } => errors
                    .errors
                    .iter()
                    .any(|e| e.path == *path && e.message.contains(text.as_str())),
            };
            if !found {
                let want = match exp {
                    Expectation::Exact(line) => line,
                    Expectation::At { path, text } => format!("at {path:?}: ...{text}..."),
                };
                failures.push(format!(
                    "{}: missing expected error\n    {want}\n  got:\n    {}",
                    file.display(),
                    lines.join("\n    ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn valid_manifests_pass() {
    let files = files("valid");
    assert!(
        files.len() >= 3,
        "the corpus has only {} valid manifests",
        files.len()
    );
    for file in files {
        if let Err(e) = validate_file(&file) {
            panic!("{} should be valid:\n{e}", file.display());
        }
    }
}

#[test]
#[ignore = "prints what the validator says about $SHOW"]
fn show() {
    let path = std::env::var("SHOW").expect("set SHOW to a manifest path");
    match validate_file(Path::new(&path)) {
        Ok(m) => println!("valid:\n{}", serde_json::to_string_pretty(&m).unwrap()),
        Err(e) => println!("{e}"),
    }
}

/// The corpus component is checked in compiled; make sure it is what its source says.
#[test]
fn corpus_component_matches_its_source() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/components");
    let compiled = std::fs::read(dir.join("kv-client.wasm")).unwrap();
    let source = wat::parse_file(dir.join("kv-client.wat")).unwrap();
    assert_eq!(
        compiled, source,
        "rebuild it: wasm-tools parse tests/components/kv-client.wat -o tests/components/kv-client.wasm"
    );
}

/// The annotated example in the README is a valid manifest.
#[test]
fn readme_example_is_valid() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let start = readme.find("```yaml\n").expect("README has a yaml example") + "```yaml\n".len();
    let len = readme[start..].find("```").unwrap();
    let manifest =
        validate::parse("README.md", &readme[start..start + len]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(manifest.name(), "counter");
    assert_eq!(manifest.version(), Some("v1.2.0"));
}
