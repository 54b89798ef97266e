//! Running the `trellis` CLI as a user would.

use std::process::Command;

/// The `trellis` binary pointed at one NATS server and lattice.
pub struct Cli {
    nats_url: String,
    lattice: String,
}

#[derive(Debug)]
pub struct CliOutput {
    pub success: bool,
    /// The exit code (`None` when a signal ended it).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// Stdout parsed as JSON, or a panic showing what the CLI said.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Panics unless the command succeeded.
    pub fn ok(self) -> Self {
        assert!(
            self.success,
            "trellis failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panics unless the command failed; returns its stderr.
    pub fn err(self) -> String {
        assert!(
            !self.success,
            "trellis succeeded unexpectedly:\nstdout: {}",
            self.stdout
        );
        self.stderr
    }
}

impl Cli {
    pub fn new(nats_url: &str, lattice: &str) -> Self {
        Self {
            nats_url: nats_url.to_string(),
            lattice: lattice.to_string(),
        }
    }

    /// Runs `trellis ARGS...` and captures its output (on a blocking thread).
    pub async fn run(&self, args: &[&str]) -> CliOutput {
        let mut cmd = Command::new(crate::paths::bin("trellis"));
        cmd.args(args)
            .env("NATS_URL", &self.nats_url)
            .env("TRELLIS_LATTICE", &self.lattice)
            .env_remove("NATS_CREDS");
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("CLI task")
            .expect("running trellis");
        CliOutput {
            success: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
