//! The sandboxed runner for external tools (`helm`, `kustomize`, `kubectl`):
//! one child process per run, with an explicit environment, a time limit, an
//! output cap and a cap on concurrent runs.
//!
//! What a run gets and what it does not:
//!
//! - The environment is built from nothing: a `PATH` of system folders,
//!   `HOME`, `XDG_CACHE_HOME`, `XDG_CONFIG_HOME`, `XDG_DATA_HOME` and `TMPDIR`
//!   in a scratch folder of its own (under the runner's scratch root, removed
//!   after the run), then the variables the caller adds explicitly. Plumb's
//!   own environment (credentials, `KUBECONFIG`, proxies) never reaches a
//!   tool unless a caller passes it on by name.
//! - Standard input is closed; the working directory is the caller's.
//! - The child leads a process group of its own, and the whole group is
//!   killed when the time is up, when the output passes the cap, and when the
//!   child exits (so nothing it started in the background outlives the run).
//! - Standard output is collected up to the cap; standard error only its last
//!   [`STDERR_TAIL`] bytes, for the error message.
//!
//! Every function here blocks: call it from `spawn_blocking`.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

/// The `PATH` every tool gets: system folders only.
pub const SANDBOX_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// How much of the end of a tool's standard error is kept for its error.
pub const STDERR_TAIL: usize = 8 * 1024;
/// How often a running tool is checked on (exit, output cap, time).
const POLL: Duration = Duration::from_millis(10);
/// The time limit of [`ToolRunner::tool_version`].
const VERSION_TIMEOUT: Duration = Duration::from_secs(20);
/// The output cap of [`ToolRunner::tool_version`].
const VERSION_MAX_OUTPUT: usize = 64 * 1024;
/// How long the output of a killed tool is waited for (a process that left
/// its group may still hold the pipe).
const DRAIN_GRACE: Duration = Duration::from_secs(1);
/// The prefix of the runs' scratch folders under the scratch root.
const RUN_PREFIX: &str = "run-";

/// The error returned by [`find_tool`] and [`ToolRunner`].
///
/// It carries messages, not sources, so it can be cloned and compared (a
/// render error is kept in the application's status). No message ever holds
/// a tool's environment or arguments, which may carry credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The tool's executable was not found.
    #[error("{tool} not found: {detail}")]
    NotFound {
        /// The tool's name.
        tool: String,
        /// Where it was looked for and what to do.
        detail: String,
    },
    /// The tool could not be started (not executable, wrong architecture,
    /// missing working directory) or its scratch folder could not be made.
    #[error(
        "could not start {tool}: {message}; check the tool's installation and Plumb's data folder"
    )]
    Start {
        /// The tool's name.
        tool: String,
        /// What went wrong.
        message: String,
    },
    /// The tool ran longer than its time limit and was killed, with every
    /// process it started. Worth retrying (the machine may have been busy).
    #[error(
        "{tool} did not finish within {after:?} and was stopped; raise --tool-timeout if it needs longer, or make its input smaller"
    )]
    Timeout {
        /// The tool's name.
        tool: String,
        /// The time limit.
        after: Duration,
    },
    /// The tool never started because every run slot stayed busy for the
    /// whole time limit. Worth retrying.
    #[error(
        "{tool} did not start within {after:?}: all {max_concurrent} tool slots stayed busy; it is tried again later, and --max-tool-runs allows more at once"
    )]
    NoSlot {
        /// The tool's name.
        tool: String,
        /// How long the run waited.
        after: Duration,
        /// How many runs may go at once.
        max_concurrent: usize,
    },
    /// The tool wrote more than the output cap and was killed.
    #[error(
        "{tool} wrote more than {limit} bytes of output and was stopped; render less at once or raise --max-tool-output"
    )]
    OutputTooLarge {
        /// The tool's name.
        tool: String,
        /// The cap in bytes.
        limit: usize,
    },
    /// The tool exited with a failure status.
    #[error("{tool} failed ({status}): {stderr}")]
    Failed {
        /// The tool's name.
        tool: String,
        /// How it ended, as in `exit status: 1` or `signal: 9 (SIGKILL)`.
        status: String,
        /// The end of what it wrote to standard error, trimmed; says so when
        /// it wrote nothing.
        stderr: String,
    },
}

impl ToolError {
    /// Whether the run ran out of time, waiting for a slot or running.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ToolError::Timeout { .. } | ToolError::NoSlot { .. })
    }

    /// Whether trying again later may succeed without anyone changing
    /// anything (the time limits, which a busy machine can hit).
    pub fn is_spurious(&self) -> bool {
        self.is_timeout()
    }
}

/// Finds a tool's executable: `explicit` when given (a `--<name>-bin` flag),
/// else the first executable file called `name` in the folders of Plumb's
/// own `PATH`.
///
/// # Errors
///
/// [`ToolError::NotFound`] when `explicit` is not an executable file, or no
/// folder of `PATH` has one called `name`; the message says to install it
/// or to set `--<name>-bin`.
pub fn find_tool(name: &str, explicit: Option<&Path>) -> Result<PathBuf, ToolError> {
    let not_found = |detail: String| ToolError::NotFound {
        tool: name.to_owned(),
        detail,
    };
    if let Some(path) = explicit {
        return if is_executable(path) {
            Ok(path.to_owned())
        } else {
            Err(not_found(format!(
                "{} (--{name}-bin) is not an executable file; check the path",
                path.display()
            )))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| {
            not_found(format!(
                "install it or set --{name}-bin to its path (it is not on Plumb's PATH)"
            ))
        })
}

/// Whether `path` is a regular file (after links) with an execute bit.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// One run of a tool: what to run, where, and with which extra variables.
#[derive(Debug, Clone)]
pub struct ToolCommand {
    /// The tool's name in messages (`helm`).
    pub tool: String,
    /// The executable, from [`find_tool`].
    pub program: PathBuf,
    /// The arguments. They never appear in messages.
    pub args: Vec<OsString>,
    /// The working directory.
    pub dir: PathBuf,
    /// Variables added to the sandbox's, in order; they win over the
    /// sandbox's own (`HELM_CACHE_HOME` pointing at a shared cache). They
    /// never appear in messages.
    pub env: Vec<(OsString, OsString)>,
}

impl ToolCommand {
    /// A run of `program` (called `tool` in messages) in `dir`, with no
    /// arguments and no extra variables.
    pub fn new(
        tool: impl Into<String>,
        program: impl Into<PathBuf>,
        dir: impl Into<PathBuf>,
    ) -> ToolCommand {
        ToolCommand {
            tool: tool.into(),
            program: program.into(),
            args: Vec::new(),
            dir: dir.into(),
            env: Vec::new(),
        }
    }

    /// Adds an argument.
    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> ToolCommand {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    #[must_use]
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> ToolCommand {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Adds a variable to the environment.
    #[must_use]
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> ToolCommand {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }
}

/// The limits of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long the run may take; waiting for a slot may take as long again.
    pub timeout: Duration,
    /// The most standard output kept, in bytes; a tool that writes more is
    /// killed.
    pub max_output: usize,
}

impl Default for Limits {
    /// 90 seconds (Argo CD's default exec timeout) and 64 MiB.
    fn default() -> Limits {
        Limits {
            timeout: Duration::from_secs(90),
            max_output: 64 * 1024 * 1024,
        }
    }
}

/// Runs tools in the sandbox, at most `max_concurrent` at once.
///
/// Share one per process (in an `Arc`): the cap on concurrent runs is per
/// runner.
#[derive(Debug)]
pub struct ToolRunner {
    slots: Slots,
    scratch_root: PathBuf,
    runs: AtomicU64,
}

impl ToolRunner {
    /// A runner letting `max_concurrent` runs (at least one) go at once,
    /// each with a scratch folder of its own under `scratch_root` (created
    /// when needed, owned by Plumb).
    ///
    /// Scratch folders a previous process left behind are removed here, best
    /// effort.
    pub fn new(max_concurrent: usize, scratch_root: impl Into<PathBuf>) -> ToolRunner {
        let scratch_root = scratch_root.into();
        if let Ok(entries) = std::fs::read_dir(&scratch_root) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(RUN_PREFIX)
                    && let Err(err) = std::fs::remove_dir_all(entry.path())
                {
                    tracing::warn!(path = %entry.path().display(), %err, "could not remove a leftover tool scratch folder");
                }
            }
        }
        ToolRunner {
            slots: Slots::new(max_concurrent.max(1)),
            scratch_root,
            runs: AtomicU64::new(0),
        }
    }

    /// How many runs may go at once.
    pub fn max_concurrent(&self) -> usize {
        self.slots.max
    }

    /// Runs `command` in the sandbox and returns its standard output.
    ///
    /// The run first waits for a slot (at most `limits.timeout`), then runs
    /// for at most `limits.timeout`.
    ///
    /// # Errors
    ///
    /// [`ToolError::NoSlot`] when no slot freed up in time,
    /// [`ToolError::Start`] when the scratch folder or the process cannot be
    /// made, [`ToolError::Timeout`], [`ToolError::OutputTooLarge`], and
    /// [`ToolError::Failed`] with the end of its standard error when it exits
    /// with a failure status.
    pub fn run(&self, command: &ToolCommand, limits: &Limits) -> Result<Vec<u8>, ToolError> {
        let _slot = self
            .slots
            .acquire(deadline_after(limits.timeout))
            .ok_or_else(|| ToolError::NoSlot {
                tool: command.tool.clone(),
                after: limits.timeout,
                max_concurrent: self.slots.max,
            })?;
        let scratch = self.scratch(&command.tool)?;
        let result = execute(command, limits, &scratch.path);
        drop(scratch);
        result
    }

    /// The first line of what `program args` prints, trimmed: a version
    /// string such as `v3.15.2+g1a500d5` for `helm version --short`. Runs in
    /// the sandbox (in `/`) with a fixed 20-second limit; the caller keeps
    /// the answer.
    ///
    /// # Errors
    ///
    /// Those of [`run`](Self::run), and [`ToolError::Failed`] when it prints
    /// nothing.
    pub fn tool_version(&self, program: &Path, args: &[&str]) -> Result<String, ToolError> {
        let tool = program.file_name().map_or_else(
            || program.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        let command = ToolCommand::new(tool.clone(), program, "/").args(args);
        let limits = Limits {
            timeout: VERSION_TIMEOUT,
            max_output: VERSION_MAX_OUTPUT,
        };
        let output = self.run(&command, &limits)?;
        String::from_utf8_lossy(&output)
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| ToolError::Failed {
                tool,
                status: "exit status: 0".to_owned(),
                stderr: "it printed no version".to_owned(),
            })
    }

    /// A new scratch folder for one run of `tool`.
    fn scratch(&self, tool: &str) -> Result<Scratch, ToolError> {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let path = self
            .scratch_root
            .join(format!("{RUN_PREFIX}{}-{n}", std::process::id()));
        std::fs::create_dir_all(path.join("tmp"))
            .map(|()| Scratch { path: path.clone() })
            .map_err(|err| ToolError::Start {
                tool: tool.to_owned(),
                message: format!("creating the scratch folder {}: {err}", path.display()),
            })
    }
}

/// A run's scratch folder, removed when dropped.
struct Scratch {
    path: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.path) {
            // Removed with the other leftovers at the next start.
            tracing::warn!(path = %self.path.display(), %err, "could not remove a tool scratch folder");
        }
    }
}

/// A counting semaphore: the runner's slots.
#[derive(Debug)]
struct Slots {
    max: usize,
    free: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn new(max: usize) -> Slots {
        Slots {
            max,
            free: Mutex::new(max),
            freed: Condvar::new(),
        }
    }

    /// Takes a slot, waiting until `deadline` at most.
    fn acquire(&self, deadline: Instant) -> Option<Slot<'_>> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free == 0 {
            let left = deadline.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            free = self
                .freed
                .wait_timeout(free, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *free -= 1;
        Some(Slot { slots: self })
    }
}

/// One taken slot, given back when dropped.
struct Slot<'a> {
    slots: &'a Slots,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut free = self
            .slots
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *free += 1;
        self.slots.freed.notify_one();
    }
}

/// How a run ended, before its output is looked at.
enum Ending {
    Exited,
    TimedOut,
    TooMuchOutput,
}

/// Runs `command` with `home` as its scratch folder; the caller holds a slot.
fn execute(command: &ToolCommand, limits: &Limits, home: &Path) -> Result<Vec<u8>, ToolError> {
    let tool = command.tool.as_str();
    let start_error = |message: String| ToolError::Start {
        tool: tool.to_owned(),
        message,
    };
    let mut child = Command::new(&command.program)
        .args(&command.args)
        .env_clear()
        .env("PATH", SANDBOX_PATH)
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("TMPDIR", home.join("tmp"))
        .envs(command.env.iter().map(|(key, value)| (key, value)))
        .current_dir(&command.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|err| {
            start_error(format!(
                "{} in {}: {err}",
                command.program.display(),
                command.dir.display()
            ))
        })?;
    let deadline = deadline_after(limits.timeout);
    // The child leads its group, so the group's id is its pid.
    let group = Pid::from_child(&child);

    let overflow = Arc::new(AtomicBool::new(false));
    let (stdout_tx, stdout_rx) = mpsc::channel();
    let (stderr_tx, stderr_rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let max_output = limits.max_output;
    let spawned = std::thread::Builder::new()
        .name(format!("{tool}-stdout"))
        .spawn({
            let overflow = Arc::clone(&overflow);
            move || {
                let _ = stdout_tx.send(read_capped(stdout, max_output, &overflow));
            }
        })
        .and_then(|_| {
            std::thread::Builder::new()
                .name(format!("{tool}-stderr"))
                .spawn(move || {
                    let _ = stderr_tx.send(read_tail(stderr, STDERR_TAIL));
                })
        });
    if let Err(err) = spawned {
        // Already failing; its exit status adds nothing.
        let _ = kill_and_reap(&mut child, group);
        return Err(start_error(format!("starting a reader thread: {err}")));
    }

    let ending = loop {
        if overflow.load(Ordering::SeqCst) {
            break Ending::TooMuchOutput;
        }
        // Seen without reaping it: while the child is a zombie its pid, and
        // so its group's id, cannot be reused, so killing the group below
        // can only hit what the tool started.
        let exited = rustix::process::waitid(
            WaitId::Pid(group),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
        );
        match exited {
            Ok(Some(_)) => break Ending::Exited,
            Ok(None) => {}
            Err(err) => {
                let _ = kill_and_reap(&mut child, group);
                return Err(start_error(format!("waiting for it: {err}")));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            break Ending::TimedOut;
        }
        std::thread::sleep(POLL.min(deadline - now));
    };
    // Whatever the ending, nothing the tool started outlives the run.
    let status = kill_and_reap(&mut child, group);
    let timed_out = || ToolError::Timeout {
        tool: tool.to_owned(),
        after: limits.timeout,
    };
    let too_large = || ToolError::OutputTooLarge {
        tool: tool.to_owned(),
        limit: limits.max_output,
    };
    let status = match ending {
        Ending::TimedOut => return Err(timed_out()),
        Ending::TooMuchOutput => return Err(too_large()),
        Ending::Exited => {
            status.map_err(|err| start_error(format!("reading its exit status: {err}")))?
        }
    };

    // The whole group is dead, so both pipes are closed unless a process
    // left the group (`setsid`) and keeps one open: that only waits until
    // the deadline (or a short grace).
    let drain_until = deadline.max(Instant::now() + DRAIN_GRACE);
    let left = || drain_until.saturating_duration_since(Instant::now());
    let output = stdout_rx.recv_timeout(left()).map_err(|_| timed_out())?;
    if overflow.load(Ordering::SeqCst) {
        return Err(too_large());
    }
    if status.success() {
        return Ok(output);
    }
    let (tail, cut) = stderr_rx.recv_timeout(left()).map_err(|_| timed_out())?;
    Err(ToolError::Failed {
        tool: tool.to_owned(),
        status: status.to_string(),
        stderr: readable_stderr(&tail, cut),
    })
}

/// The instant `timeout` from now; a timeout too large to add (such as
/// `Duration::MAX`) waits a year, which is no limit in practice.
fn deadline_after(timeout: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);
    let now = Instant::now();
    now.checked_add(timeout.min(YEAR)).unwrap_or(now)
}

/// Kills the child's process group and reaps the child.
fn kill_and_reap(child: &mut Child, group: Pid) -> std::io::Result<ExitStatus> {
    // ESRCH (nothing left in the group) is fine.
    let _ = rustix::process::kill_process_group(group, Signal::KILL);
    child.wait()
}

/// Reads `from` to its end, keeping at most `cap` bytes; sets `overflow` and
/// stops reading (closing the pipe) at the first byte past the cap.
fn read_capped(mut from: impl Read, cap: usize, overflow: &AtomicBool) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) => return kept,
            Ok(n) => {
                if kept.len() + n > cap {
                    overflow.store(true, Ordering::SeqCst);
                    return kept;
                }
                kept.extend_from_slice(&buffer[..n]);
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            // A broken pipe reads as the end.
            Err(_) => return kept,
        }
    }
}

/// Reads `from` to its end, keeping its last `keep` bytes; and whether
/// anything before them was dropped.
fn read_tail(mut from: impl Read, keep: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut cut = false;
    let mut buffer = vec![0; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                kept.extend_from_slice(&buffer[..n]);
                // Trim in batches, not on every read.
                if kept.len() > 2 * keep {
                    kept.drain(..kept.len() - keep);
                    cut = true;
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if kept.len() > keep {
        kept.drain(..kept.len() - keep);
        cut = true;
    }
    (kept, cut)
}

/// The end of a tool's standard error as text fit for a message: invalid
/// UTF-8 replaced, carriage returns and surrounding blank space removed, a
/// cut made at a line start and marked with `...`.
fn readable_stderr(tail: &[u8], cut: bool) -> String {
    let text = String::from_utf8_lossy(tail)
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let mut text = text.as_str();
    if cut {
        // Drop the partial first line, unless that would drop nearly all.
        if let Some(newline) = text.find('\n').filter(|at| *at < text.len() / 2) {
            text = &text[newline + 1..];
        }
    }
    let text = text.trim();
    match (text.is_empty(), cut) {
        (true, _) => "it wrote nothing to standard error".to_owned(),
        (false, true) => format!("...\n{text}"),
        (false, false) => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Barrier;

    use super::*;

    /// A runner with a scratch root of its own, and a folder for scripts.
    struct Fixture {
        runner: ToolRunner,
        scratch: tempfile::TempDir,
        dir: tempfile::TempDir,
    }

    fn fixture(max_concurrent: usize) -> Fixture {
        let scratch = tempfile::tempdir().expect("tempdir");
        Fixture {
            runner: ToolRunner::new(max_concurrent, scratch.path().join("tools")),
            scratch,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    impl Fixture {
        /// A run of the shell script `body` (run by `/bin/sh`, so it needs no
        /// execute bit, and no test trips over a file being written while
        /// another thread forks), in the fixture's folder, with `args`.
        fn script(&self, tool: &str, body: &str, args: &[&str]) -> ToolCommand {
            let path = self.dir.path().join(format!("{tool}.sh"));
            std::fs::write(&path, body).expect("write script");
            ToolCommand::new(tool, "/bin/sh", self.dir.path())
                .arg(path)
                .args(args)
        }

        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).display().to_string()
        }
    }

    fn limits(timeout: Duration) -> Limits {
        Limits {
            timeout,
            ..Limits::default()
        }
    }

    /// Whether process `pid` is gone (or a zombie nobody reaped yet).
    fn process_gone(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => {
                let state = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next());
                matches!(state, Some('Z' | 'X'))
            }
        }
    }

    /// Waits (10 s at most) for process `pid` to be gone.
    fn wait_gone(pid: &str) -> bool {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if process_gone(pid) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn run_returns_standard_output_from_the_working_directory() {
        let fx = fixture(2);
        let command = fx.script("hello", "printf 'hello\\n'; echo \"in $(pwd)\"\n", &[]);
        let output = fx
            .runner
            .run(&command, &Limits::default())
            .expect("success");
        let dir = std::fs::canonicalize(fx.dir.path()).expect("canonical");
        assert_eq!(
            String::from_utf8(output).expect("utf-8"),
            format!("hello\nin {}\n", dir.display())
        );
        let leftovers = std::fs::read_dir(fx.scratch.path().join("tools"))
            .expect("scratch root")
            .count();
        assert_eq!(leftovers, 0, "the run's scratch folder is removed");
    }

    #[test]
    fn a_time_limit_too_large_to_add_is_no_limit() {
        let fx = fixture(1);
        let command = fx.script("helm", "echo ok\n", &[]);
        let output = fx
            .runner
            .run(&command, &limits(Duration::MAX))
            .expect("no overflow");
        assert_eq!(output, b"ok\n");
    }

    #[test]
    fn a_failing_tool_reports_its_status_and_trimmed_stderr() {
        let fx = fixture(1);
        let command = fx.script(
            "helm",
            "echo 'partial output'\necho '  Error: chart \"web\" not found\r' >&2\necho >&2\nexit 3\n",
            &[],
        );
        let err = fx
            .runner
            .run(&command, &Limits::default())
            .expect_err("fails");
        assert_eq!(
            err,
            ToolError::Failed {
                tool: "helm".into(),
                status: "exit status: 3".into(),
                stderr: "Error: chart \"web\" not found".into(),
            }
        );
        assert_eq!(
            err.to_string(),
            "helm failed (exit status: 3): Error: chart \"web\" not found"
        );
        assert!(!err.is_spurious());

        let silent = fx.script("kustomize", "exit 1\n", &[]);
        let err = fx
            .runner
            .run(&silent, &Limits::default())
            .expect_err("fails");
        assert!(
            err.to_string()
                .ends_with("kustomize failed (exit status: 1): it wrote nothing to standard error"),
            "{err}"
        );
    }

    #[test]
    fn only_the_end_of_a_long_stderr_is_kept() {
        let fx = fixture(1);
        let command = fx.script(
            "helm",
            "i=0\nwhile [ $i -lt 2000 ]; do echo \"noise line $i\" >&2; i=$((i+1)); done\necho 'Error: the real cause' >&2\nexit 1\n",
            &[],
        );
        let err = fx
            .runner
            .run(&command, &Limits::default())
            .expect_err("fails");
        let ToolError::Failed { stderr, .. } = err else {
            panic!("expected Failed, got {err:?}");
        };
        assert!(stderr.starts_with("...\nnoise line "), "{stderr}");
        assert!(stderr.ends_with("Error: the real cause"), "{stderr}");
        assert!(stderr.len() <= STDERR_TAIL + 4, "{}", stderr.len());
        assert!(!stderr.contains("noise line 0\n"));
    }

    #[test]
    fn a_tool_over_its_time_limit_is_killed() {
        let fx = fixture(1);
        let command = fx.script("helm", "sleep 30\n", &[]);
        let started = Instant::now();
        let err = fx
            .runner
            .run(&command, &limits(Duration::from_millis(300)))
            .expect_err("too slow");
        assert_eq!(
            err,
            ToolError::Timeout {
                tool: "helm".into(),
                after: Duration::from_millis(300),
            }
        );
        assert!(err.is_timeout() && err.is_spurious());
        assert!(err.to_string().contains("within 300ms"), "{err}");
        // Far below the 30 s the tool wanted; no tighter bound, the machine
        // may be busy.
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn a_timeout_kills_the_whole_process_group() {
        let fx = fixture(1);
        let pidfile = fx.path("grandchild.pid");
        // The grandchild keeps stdout open: without the group kill the run
        // would also wait for it.
        let command = fx.script(
            "helm",
            "sh -c 'sleep 30 & echo $! > \"$1\"; wait' sh \"$1\"\n",
            &[&pidfile],
        );
        let err = fx
            .runner
            .run(&command, &limits(Duration::from_secs(2)))
            .expect_err("too slow");
        assert!(matches!(err, ToolError::Timeout { .. }), "{err}");
        let pid = std::fs::read_to_string(&pidfile).expect("the grandchild started");
        assert!(wait_gone(pid.trim()), "grandchild {pid} still runs");
    }

    #[test]
    fn nothing_a_tool_started_outlives_its_exit() {
        let fx = fixture(1);
        let pidfile = fx.path("daemon.pid");
        let command = fx.script(
            "helm",
            "sleep 30 &\necho $! > \"$1\"\necho rendered\n",
            &[&pidfile],
        );
        let started = Instant::now();
        let output = fx
            .runner
            .run(&command, &Limits::default())
            .expect("success although a background process holds stdout");
        assert_eq!(output, b"rendered\n");
        // Not the 30 s of the background process: the run killed it.
        assert!(started.elapsed() < Duration::from_secs(20));
        let pid = std::fs::read_to_string(&pidfile).expect("pid");
        assert!(wait_gone(pid.trim()), "background process {pid} still runs");
    }

    #[test]
    fn output_over_the_cap_stops_the_tool() {
        let fx = fixture(1);
        let endless = fx.script("helm", "while :; do echo 0123456789; done\n", &[]);
        let capped = Limits {
            max_output: 1000,
            ..Limits::default()
        };
        let err = fx.runner.run(&endless, &capped).expect_err("too much");
        assert_eq!(
            err,
            ToolError::OutputTooLarge {
                tool: "helm".into(),
                limit: 1000
            }
        );

        let exact = fx.script("helm", "head -c 1000 /dev/zero\n", &[]);
        let output = fx.runner.run(&exact, &capped).expect("at the cap");
        assert_eq!(output.len(), 1000);
        let over = fx.script("helm", "head -c 1001 /dev/zero\n", &[]);
        let err = fx.runner.run(&over, &capped).expect_err("one byte over");
        assert!(matches!(err, ToolError::OutputTooLarge { .. }), "{err}");
    }

    #[test]
    fn the_environment_is_only_the_sandbox_and_the_callers_variables() {
        let fx = fixture(1);
        let command = ToolCommand::new("env", "/usr/bin/env", fx.dir.path())
            .env("HELM_CACHE_HOME", "/shared/helm-cache")
            .env("XDG_CONFIG_HOME", "/overridden");
        let output = fx
            .runner
            .run(&command, &Limits::default())
            .expect("env runs");
        let text = String::from_utf8(output).expect("utf-8");
        let vars: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .collect();
        let names: BTreeSet<&str> = vars.keys().copied().collect();
        assert_eq!(
            names,
            BTreeSet::from([
                "HELM_CACHE_HOME",
                "HOME",
                "PATH",
                "TMPDIR",
                "XDG_CACHE_HOME",
                "XDG_CONFIG_HOME",
                "XDG_DATA_HOME",
            ])
        );
        assert_eq!(vars["PATH"], SANDBOX_PATH);
        assert_eq!(vars["HELM_CACHE_HOME"], "/shared/helm-cache");
        assert_eq!(vars["XDG_CONFIG_HOME"], "/overridden", "the caller wins");
        let scratch = fx.scratch.path().join("tools").display().to_string();
        assert!(vars["HOME"].starts_with(&scratch), "{}", vars["HOME"]);
        assert!(vars["TMPDIR"].starts_with(vars["HOME"]));
        // Setting a variable here needs `unsafe` (forbidden), so the test
        // process's own variables stand in: none of them reached the tool.
        for (name, value) in std::env::vars() {
            if !names.contains(name.as_str()) {
                assert!(!text.contains(&format!("{name}={value}")), "{name} leaked");
            }
        }
    }

    #[test]
    fn runs_beyond_the_cap_wait_for_a_slot() {
        let fx = fixture(1);
        let inside = fx.path("inside");
        let overlaps = fx.path("overlaps");
        // `mkdir` is atomic: it fails only while another run is inside.
        let command = fx.script(
            "helm",
            "mkdir \"$1\" 2>/dev/null || echo overlap >> \"$2\"\nsleep 0.2\nrmdir \"$1\"\n",
            &[&inside, &overlaps],
        );
        let threads = 3;
        let start = Barrier::new(threads);
        std::thread::scope(|scope| {
            let runs: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        fx.runner.run(&command, &limits(Duration::from_secs(60)))
                    })
                })
                .collect();
            for run in runs {
                run.join().expect("thread").expect("run");
            }
        });
        assert!(
            !Path::new(&overlaps).exists(),
            "two runs overlapped with one slot"
        );
    }

    #[test]
    fn runs_within_the_cap_go_at_once() {
        let fx = fixture(2);
        // Each run waits for the other's marker: both finish only if both
        // run at the same time.
        let command = |me: &str, other: &str| {
            fx.script(
                me,
                "touch \"$1\"\ni=0\nwhile [ ! -e \"$2\" ]; do\n  i=$((i+1)); [ $i -gt 3000 ] && exit 7\n  sleep 0.01\ndone\n",
                &[&fx.path(me), &fx.path(other)],
            )
        };
        let (a, b) = (command("a", "b"), command("b", "a"));
        std::thread::scope(|scope| {
            let first = scope.spawn(|| fx.runner.run(&a, &limits(Duration::from_secs(120))));
            let second = scope.spawn(|| fx.runner.run(&b, &limits(Duration::from_secs(120))));
            first.join().expect("thread").expect("a");
            second.join().expect("thread").expect("b");
        });
    }

    #[test]
    fn a_run_that_never_gets_a_slot_times_out_saying_so() {
        let fx = fixture(1);
        let command = fx.script("helm", "echo ok\n", &[]);
        let taken = fx
            .runner
            .slots
            .acquire(Instant::now() + Duration::from_secs(1))
            .expect("the only slot");
        let err = fx
            .runner
            .run(&command, &limits(Duration::from_millis(100)))
            .expect_err("no slot");
        assert_eq!(
            err,
            ToolError::NoSlot {
                tool: "helm".into(),
                after: Duration::from_millis(100),
                max_concurrent: 1,
            }
        );
        assert!(err.is_timeout());
        assert!(err.to_string().contains("all 1 tool slots"), "{err}");
        drop(taken);
        assert_eq!(
            fx.runner
                .run(&command, &Limits::default())
                .expect("a free slot"),
            b"ok\n"
        );
    }

    #[test]
    fn find_tool_says_how_to_fix_a_missing_tool() {
        let err = find_tool("plumb-no-such-tool", None).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "plumb-no-such-tool not found: install it or set --plumb-no-such-tool-bin to its path (it is not on Plumb's PATH)"
        );
        let err = find_tool("helm", Some(Path::new("/nonexistent/helm"))).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "helm not found: /nonexistent/helm (--helm-bin) is not an executable file; check the path"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("helm");
        std::fs::write(&plain, "not executable").expect("write");
        assert!(matches!(
            find_tool("helm", Some(&plain)),
            Err(ToolError::NotFound { .. })
        ));
        let sh = find_tool("sh", None).expect("sh is on PATH");
        assert!(sh.ends_with("sh") && sh.is_absolute(), "{}", sh.display());
        assert_eq!(
            find_tool("sh", Some(Path::new("/bin/sh"))).expect("explicit"),
            Path::new("/bin/sh")
        );
    }

    #[test]
    fn tool_version_is_the_first_line_trimmed() {
        let fx = fixture(1);
        let version = fx
            .runner
            .tool_version(
                Path::new("/bin/sh"),
                &[
                    "-c",
                    "echo; echo '  Client Version: v1.33.0  '; echo 'Kustomize Version: v5.6.0'",
                ],
            )
            .expect("version");
        assert_eq!(version, "Client Version: v1.33.0");
        let err = fx
            .runner
            .tool_version(Path::new("/bin/sh"), &["-c", "echo oops >&2; exit 2"])
            .expect_err("fails");
        assert!(
            err.to_string().contains("sh failed (exit status: 2): oops"),
            "{err}"
        );
    }

    #[test]
    fn a_tool_that_cannot_start_says_so() {
        let fx = fixture(1);
        let command = ToolCommand::new("helm", "/bin/sh", fx.dir.path().join("missing"));
        let err = fx
            .runner
            .run(&command, &Limits::default())
            .expect_err("no such folder");
        assert!(matches!(err, ToolError::Start { .. }), "{err}");
        assert!(
            err.to_string().starts_with("could not start helm: "),
            "{err}"
        );
    }

    #[test]
    fn readable_stderr_cuts_at_a_line_and_normalizes_line_ends() {
        assert_eq!(readable_stderr(b"  a\r\nb\rc \n", false), "a\nb\nc");
        assert_eq!(
            readable_stderr(b"tial line\nwhole line\nlast\n", true),
            "...\nwhole line\nlast"
        );
        assert_eq!(
            readable_stderr(b"one very long line", true),
            "...\none very long line"
        );
        assert_eq!(
            readable_stderr(b" \n ", false),
            "it wrote nothing to standard error"
        );
    }
}
