//! The processes `trellis up` starts: spawned with their settings, their output kept (a log
//! file when detached; in the foreground passed through, prefixed, with the last lines kept),
//! reaped as soon as they exit, and stopped in the reverse order of their start.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::future::Future;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};

/// Lines of a child's log shown when it dies.
const TAIL_LINES: usize = 20;
/// A kept line longer than this is cut (the whole line was already passed through).
const TAIL_LINE_CHARS: usize = 1000;
/// How often the foreground checks its children.
pub const REAP_INTERVAL: Duration = Duration::from_millis(100);
/// How long a child gets to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// One program to start.
pub struct Spec<'a> {
    /// What the user reads: "the host".
    pub role: &'static str,
    /// The program's name: "trellis-host".
    pub name: &'static str,
    /// Short tag: the log file's name (`host.log`) and the prefix of its lines.
    pub tag: &'static str,
    pub program: &'a Path,
    pub args: Vec<String>,
    /// Environment to set (`Some`) or remove (`None`).
    pub env: Vec<(&'static str, Option<OsString>)>,
}

enum Output {
    /// Detached: the child writes to this file.
    File(PathBuf),
    /// Foreground: the last lines, as read from the child's pipes.
    Captured {
        tail: Arc<Mutex<VecDeque<String>>>,
        readers: Vec<tokio::task::JoinHandle<()>>,
    },
}

struct Supervised {
    role: &'static str,
    name: &'static str,
    child: Child,
    pid: u32,
    output: Output,
}

/// A child that exited on its own.
pub struct Exit {
    role: &'static str,
    name: &'static str,
    pid: u32,
    status: ExitStatus,
    tail: Vec<String>,
    log: Option<PathBuf>,
}

impl Exit {
    /// "the host (trellis-host, pid 42) exited (signal: 9 (SIGKILL))", or "(exit status: 1)".
    pub fn summary(&self) -> String {
        format!(
            "{} ({}, pid {}) exited ({})",
            self.role, self.name, self.pid, self.status
        )
    }

    /// The summary and the last lines of the child's log, on stderr.
    pub fn report(&self) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}", self.summary());
        match (&self.log, self.tail.is_empty()) {
            (Some(log), true) => {
                let _ = writeln!(err, "its log {} is empty", log.display());
            }
            (None, true) => {
                let _ = writeln!(err, "it wrote nothing");
            }
            (log, false) => {
                let from = log
                    .as_ref()
                    .map(|l| format!(" ({})", l.display()))
                    .unwrap_or_default();
                let _ = writeln!(err, "last lines of its log{from}:");
                for line in &self.tail {
                    let _ = writeln!(err, "    {line}");
                }
            }
        }
    }
}

/// Everything `up` started, in start order.
pub struct Children {
    list: Vec<Supervised>,
    /// Detached children log into files in this directory and outlive `up`.
    detach_logs: Option<PathBuf>,
}

impl Children {
    pub fn new(detach_logs: Option<PathBuf>) -> Self {
        Self {
            list: Vec::new(),
            detach_logs,
        }
    }

    pub fn spawn(&mut self, spec: Spec<'_>) -> anyhow::Result<()> {
        let mut cmd = Command::new(spec.program);
        cmd.args(&spec.args).stdin(Stdio::null());
        // Hosts and the manager export like `trellis up` was told to.
        if trellis_telemetry::enabled() {
            cmd.env(trellis_telemetry::OBSERVABILITY_ENV, "1");
        }
        for (key, value) in &spec.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        let log = self
            .detach_logs
            .as_ref()
            .map(|dir| dir.join(format!("{}.log", spec.tag)));
        match &log {
            Some(log) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .with_context(|| format!("opening log {}", log.display()))?;
                cmd.stdout(file.try_clone()?).stderr(file);
                // SAFETY: setsid is async-signal-safe; it detaches the child from our terminal.
                unsafe {
                    cmd.pre_exec(|| {
                        libc::setsid();
                        Ok(())
                    });
                }
            }
            None => {
                // Its own process group: Ctrl-C reaches `up` alone, which then stops the
                // children in order (the manager and the host before NATS). And the child
                // is told when `up` dies, however it dies.
                let parent = std::process::id();
                cmd.stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .process_group(0)
                    .kill_on_drop(true);
                // SAFETY: prctl and getppid are async-signal-safe.
                unsafe {
                    cmd.pre_exec(move || {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                        if libc::getppid() != parent as libc::pid_t {
                            // `up` died while this child was being forked.
                            libc::_exit(1);
                        }
                        Ok(())
                    });
                }
            }
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", spec.program.display()))?;
        let pid = child.id().context("a child without a process id")?;
        let output = match log {
            Some(file) => Output::File(file),
            None => {
                let tail = Arc::new(Mutex::new(VecDeque::new()));
                let mut readers = Vec::new();
                if let Some(out) = child.stdout.take() {
                    readers.push(pass_through(out, spec.tag, false, Arc::clone(&tail)));
                }
                if let Some(err) = child.stderr.take() {
                    readers.push(pass_through(err, spec.tag, true, Arc::clone(&tail)));
                }
                Output::Captured { tail, readers }
            }
        };
        self.list.push(Supervised {
            role: spec.role,
            name: spec.name,
            child,
            pid,
            output,
        });
        Ok(())
    }

    /// The first child that has exited, reaped, with the end of its log.
    pub async fn exited(&mut self) -> Option<Exit> {
        for s in &mut self.list {
            if let Ok(Some(status)) = s.child.try_wait() {
                let (tail, log) = match &mut s.output {
                    Output::File(path) => (tail_of_file(path), Some(path.clone())),
                    Output::Captured { tail, readers } => {
                        // The pipes end with the child, unless a grandchild still holds them.
                        for r in std::mem::take(readers) {
                            let _ = tokio::time::timeout(Duration::from_millis(500), r).await;
                        }
                        let lines = tail.lock().map(|t| t.iter().cloned().collect());
                        (lines.unwrap_or_default(), None)
                    }
                };
                return Some(Exit {
                    role: s.role,
                    name: s.name,
                    pid: s.pid,
                    status,
                    tail,
                    log,
                });
            }
        }
        None
    }

    /// Runs `work` while watching the children: fails as soon as one exits (saying which, with
    /// its log), or when `work` is not done within `limit`.
    pub async fn while_running<T>(
        &mut self,
        what: &str,
        limit: Duration,
        work: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        tokio::pin!(work);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            tokio::select! {
                done = &mut work => return done,
                () = tokio::time::sleep(REAP_INTERVAL) => {}
            }
            if let Some(exit) = self.exited().await {
                exit.report();
                anyhow::bail!("{} while waiting for {what}", exit.summary());
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "timed out after {} waiting for {what} (see its log)",
                    humantime::format_duration(limit)
                );
            }
        }
    }

    /// Waits until a child exits; the foreground's watch.
    pub async fn watch(&mut self) -> Exit {
        loop {
            if let Some(exit) = self.exited().await {
                return exit;
            }
            tokio::time::sleep(REAP_INTERVAL).await;
        }
    }

    /// Stops every child still running, last started first.
    pub async fn stop_all(mut self) {
        while let Some(mut s) = self.list.pop() {
            stop_child(s.name, &mut s.child).await;
            if let Output::Captured { readers, .. } = s.output {
                for r in readers {
                    let _ = tokio::time::timeout(Duration::from_millis(500), r).await;
                }
            }
        }
    }

    /// Lets the children run on without `up`: (name, pid), in the order `down` stops them.
    pub fn detach(self) -> Vec<(String, u32)> {
        self.list
            .iter()
            .rev()
            .map(|s| (s.name.to_string(), s.pid))
            .collect()
    }
}

/// A program shipped next to `trellis`, else found on PATH (or in /usr/sbin for Debian's
/// nats-server).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let beside = std::env::current_exe().ok()?.parent()?.join(name);
    if beside.is_file() {
        return Some(beside);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([
            "/usr/sbin".into(),
            "/usr/local/sbin".into(),
            "/usr/local/bin".into(),
        ])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Copies a child's output to ours, each line prefixed with `tag`, keeping the last lines.
fn pass_through(
    pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    tag: &'static str,
    to_stderr: bool,
    tail: Arc<Mutex<VecDeque<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches(['\n', '\r']);
            let shown = format!("{tag:<6} | {line}");
            let _ = if to_stderr {
                writeln!(std::io::stderr().lock(), "{shown}")
            } else {
                writeln!(std::io::stdout().lock(), "{shown}")
            };
            if let Ok(mut t) = tail.lock() {
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(shown.chars().take(TAIL_LINE_CHARS).collect());
            }
        }
    })
}

/// The last lines of a log file (only its end is read).
fn tail_of_file(path: &Path) -> Vec<String> {
    const WINDOW: u64 = 64 * 1024;
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(WINDOW);
    if file.seek(std::io::SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if file.take(WINDOW).read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // cut in the middle
    }
    let from = lines.len().saturating_sub(TAIL_LINES);
    lines[from..]
        .iter()
        .map(|l| l.chars().take(TAIL_LINE_CHARS).collect())
        .collect()
}

async fn stop_child(name: &str, child: &mut Child) {
    // No id: already reaped.
    let Some(pid) = child.id() else { return };
    signal(pid, libc::SIGTERM);
    if tokio::time::timeout(STOP_TIMEOUT, child.wait())
        .await
        .is_err()
    {
        eprintln!(
            "{name} did not stop within {}; killing it",
            humantime::format_duration(STOP_TIMEOUT)
        );
        let _ = child.kill().await;
    }
}

pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: sending a signal to a process id we started.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Whether process `pid` runs, as program `name`: a zombie (exited, not yet reaped by
/// whoever inherited it) does not count, nor a process that reused the id. Without /proc,
/// whether the id exists.
pub fn alive(pid: u32, name: &str) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if Path::new("/proc/self/stat").exists() {
        let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
            return false;
        };
        // pid (comm) STATE ...: the command may hold spaces and parentheses.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if matches!(state, None | Some("Z") | Some("X") | Some("x")) {
            return false;
        }
        // The kernel keeps the first 15 bytes of the program's name.
        let comm = std::fs::read_to_string(proc_dir.join("comm")).unwrap_or_default();
        let short: String = name.chars().take(15).collect();
        return comm.trim_end() == short;
    }
    // SAFETY: kill with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaped_child_is_not_alive_and_a_zombie_neither() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let pid = child.id();
        assert!(alive(pid, "sleep"));
        assert!(!alive(pid, "trellis-host"), "another program's process");
        signal(pid, libc::SIGKILL);
        // Not reaped yet: a zombie.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while alive(pid, "sleep") {
            assert!(std::time::Instant::now() < deadline, "sleep still alive");
            std::thread::sleep(Duration::from_millis(10));
        }
        child.wait().expect("reaped");
        assert!(!alive(pid, "sleep"));
    }

    #[test]
    fn the_tail_of_a_log_is_its_last_lines() {
        let dir = std::env::temp_dir().join(format!("trellis-up-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("host.log");
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).expect("log");
        let tail = tail_of_file(&path);
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail.last().map(String::as_str), Some("line 99"));
        assert_eq!(tail[0], format!("line {}", 100 - TAIL_LINES));
        assert!(tail_of_file(&dir.join("absent.log")).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
