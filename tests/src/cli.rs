//! Running the `trellis` CLI as a user would.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The `trellis` binary pointed at one NATS server and lattice.
pub struct Cli {
    nats_url: String,
    lattice: String,
    /// `--nats-url` and `--lattice` as flags instead of `NATS_URL` and `TRELLIS_LATTICE`.
    as_flags: bool,
    env: Vec<(String, String)>,
    dir: Option<PathBuf>,
}

/// NATS credentials the CLI reads from the environment: removed unless a test sets them.
const CREDENTIAL_VARS: [&str; 5] = [
    "NATS_CREDS",
    "NATS_NKEY",
    "NATS_USER",
    "NATS_PASSWORD",
    "NATS_TOKEN",
];

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
            as_flags: false,
            env: Vec::new(),
            dir: None,
        }
    }

    /// The binary given `--nats-url URL --lattice NAME` as flags before every command, with
    /// neither `NATS_URL` nor `TRELLIS_LATTICE` in its environment.
    pub fn with_flags(nats_url: &str, lattice: &str) -> Self {
        Self {
            as_flags: true,
            ..Self::new(nats_url, lattice)
        }
    }

    /// Also sets `key=value` in the CLI's environment (e.g. `NATS_TOKEN`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Runs the CLI in `dir`, so relative paths read as a user in that directory types them.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The command [`Self::run`] runs, to start it some other way.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(crate::paths::bin("trellis"));
        if self.as_flags {
            cmd.args(["--nats-url", &self.nats_url, "--lattice", &self.lattice])
                .env_remove("NATS_URL")
                .env_remove("TRELLIS_LATTICE");
        } else {
            cmd.env("NATS_URL", &self.nats_url)
                .env("TRELLIS_LATTICE", &self.lattice);
        }
        cmd.args(args);
        for var in CREDENTIAL_VARS {
            cmd.env_remove(var);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.dir {
            cmd.current_dir(dir);
        }
        cmd
    }

    /// Runs `trellis ARGS...` and captures its output (on a blocking thread).
    pub async fn run(&self, args: &[&str]) -> CliOutput {
        let mut cmd = self.command(args);
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

    /// Starts `trellis ARGS...` in the background (`trellis spy`, `trellis up`), collecting
    /// its output line by line.
    pub fn spawn(&self, args: &[&str]) -> CliChild {
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting trellis");
        let stdout = collect(child.stdout.take().expect("stdout pipe"));
        let stderr = collect(child.stderr.take().expect("stderr pipe"));
        CliChild {
            child: Some(child),
            status: None,
            stdout,
            stderr,
        }
    }
}

type Lines = Arc<Mutex<Vec<String>>>;

fn collect(pipe: impl std::io::Read + Send + 'static) -> Lines {
    let lines = Lines::default();
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).split(b'\n') {
            let Ok(line) = line else { return };
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            sink.lock().expect("output lines").push(text);
        }
    });
    lines
}

/// A `trellis` process started by [`Cli::spawn`]: stopped with SIGTERM (then SIGKILL) on drop.
pub struct CliChild {
    child: Option<Child>,
    status: Option<ExitStatus>,
    stdout: Lines,
    stderr: Lines,
}

impl CliChild {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("a started child")
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("stdout lines").join("\n")
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lines").join("\n")
    }

    /// Waits for a line of stdout matching `pred` (including lines already printed).
    pub async fn wait_for_stdout(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let lines = Arc::clone(&self.stdout);
        self.wait_for_line(&lines, what, timeout, pred).await
    }

    /// Waits for a line of stderr matching `pred` (including lines already printed).
    pub async fn wait_for_stderr(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let lines = Arc::clone(&self.stderr);
        self.wait_for_line(&lines, what, timeout, pred).await
    }

    async fn wait_for_line(
        &mut self,
        lines: &Lines,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let found = lines
                .lock()
                .expect("output lines")
                .iter()
                .find(|l| pred(l))
                .cloned();
            if let Some(line) = found {
                return line;
            }
            if let Some(status) = self.try_wait() {
                // The last lines may still be in the pipe.
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Some(line) = lines.lock().expect("lines").iter().find(|l| pred(l)) {
                    return line.clone();
                }
                panic!(
                    "trellis exited ({status}) before printing {what}:\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for trellis to print {what}:\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its exit status, once it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.status = Some(status);
            }
        }
        self.status
    }

    /// Sends `sig` (e.g. `libc::SIGINT`, what Ctrl-C sends).
    pub fn signal(&self, sig: libc::c_int) {
        if self.status.is_none() {
            // SAFETY: signalling the child we spawned (not yet reaped).
            unsafe {
                libc::kill(self.pid() as libc::pid_t, sig);
            }
        }
    }

    /// Waits for it to exit, or panics with its output after `timeout`. The output is
    /// complete when this returns.
    pub async fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                // Let the readers take the last lines out of the pipes.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return status;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "trellis did not exit within {timeout:?}:\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The processes it started and still holds: (pid, program name as the kernel keeps it).
    pub fn children(&self) -> Vec<(u32, String)> {
        let parent = self.pid();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let (head, rest) = stat.rsplit_once(')')?;
                let comm = head.split_once('(')?.1.to_string();
                let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
                (ppid == parent).then_some((pid, comm))
            })
            .collect()
    }
}

impl Drop for CliChild {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if self.status.is_some() || matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SIGTERM first: `trellis up` then stops what it started.
        // SAFETY: signalling the child we spawned (not yet reaped).
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
