//! The corpus of malformed control requests kept in `tests/corpus/control/` (written by
//! `tests/corpus/make-corpus.py`): every file, sent on its subject to the one parser every
//! server uses, is refused as `invalid` with its `.expect` text in a short message.

use std::path::PathBuf;

use trellis_lattice::server::ControlRequest;
use trellis_lattice::{ErrorKind, Subjects};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/control")
}

#[test]
fn every_malformed_control_request_in_the_corpus_is_refused_clearly() {
    let s = Subjects::new("t");
    let mut files: Vec<_> = std::fs::read_dir(corpus())
        .expect("tests/corpus/control")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "the corpus is there: {}", files.len());
    let mut wrong = Vec::new();
    for file in &files {
        let stem = file.file_stem().and_then(|s| s.to_str()).expect("name");
        let request = stem.split("--").next().expect("NOUN.VERB--CASE");
        let subject = format!("trellis.ctl.v1.t.{request}");
        let payload = std::fs::read(file).expect("read");
        let expect = std::fs::read_to_string(file.with_extension("expect")).expect("expect");
        let expect = expect.trim_end_matches('\n');
        match ControlRequest::parse(&s, &subject, &payload) {
            Ok(req) => wrong.push(format!("{stem}: accepted as {req:?}")),
            Err(e) if e.kind != ErrorKind::Invalid || !e.message.contains(expect) => {
                wrong.push(format!("{stem}: {:?} {}", e.kind, e.message))
            }
            Err(e) => assert!(e.message.len() < 2048, "{stem}: {}", e.message),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
