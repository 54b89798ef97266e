//! Writes 100 MiB to stdout in one invocation: what the host keeps of it must stay bounded.

use std::io::Write as _;

wit_bindgen::generate!({ path: "../hostile-wit", world: "hostile" });

struct Chatter;

/// 1 KiB lines, 102,400 of them.
const LINE: usize = 1024;
const LINES: usize = 100 * 1024;

impl Guest for Chatter {
    fn run() {
        let mut line = [b'x'; LINE];
        line[LINE - 1] = b'\n';
        let mut out = std::io::stdout().lock();
        for _ in 0..LINES {
            // A closed stdout is not this component's problem to report.
            if out.write_all(&line).is_err() {
                return;
            }
        }
        let _ = out.flush();
    }
}

export!(Chatter);
