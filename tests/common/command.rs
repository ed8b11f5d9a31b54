//! `TestCommand`: the one way the tests start the archgate binary (ripgrep's
//! harness is the model), and `TestOutput`, what a finished run left behind.
//!
//! The builder starts from a clean slate: every variable the settings read
//! (`ARCHGATE_*`, GitLab's `CI_*` and `GITLAB_CI`, Jenkins', Docker's
//! credentials, `SOURCE_DATE_EPOCH`) is removed, so a developer's shell or the
//! CI job running the suite cannot change what a test sees; a test that wants
//! one sets it with [`TestCommand::env`]. Every assertion helper prints the
//! whole run (command, exit code, stdout, stderr) when it fails.

use std::ffi::OsStr;
use std::fmt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// Prefixes of variables the binary reads as settings or CI context.
const CLEARED_PREFIXES: &[&str] = &["ARCHGATE_", "CI_"];

/// Single variables the binary reads: CI detection, Jenkins' context,
/// registry credentials and the build's timestamp.
const CLEARED: &[&str] = &[
    "CI",
    "GITLAB_CI",
    "JENKINS_URL",
    "TAG_NAME",
    "GIT_COMMIT",
    "BRANCH_NAME",
    "BUILD_NUMBER",
    "DOCKER_AUTH_CONFIG",
    "DOCKER_CONFIG",
    "SOURCE_DATE_EPOCH",
];

/// Whether archgate reads the variable `name` (as a setting, CI context or
/// credentials), so that a test run must not inherit it.
pub fn read_by_archgate(name: &str) -> bool {
    CLEARED.contains(&name) || CLEARED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The archgate binary with arguments, environment and working directory.
pub struct TestCommand {
    cmd: Command,
    /// `archgate ARGS`, for failure messages (the environment is left out: a
    /// test may set credentials).
    line: String,
}

impl Default for TestCommand {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCommand {
    /// The built binary, with the environment that could leak into a test removed
    /// and colours off.
    pub fn new() -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_archgate"));
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(read_by_archgate) {
                cmd.env_remove(name);
            }
        }
        // Removed even when the test process does not have them (cheap, and
        // `env_remove` of an absent variable is a no-op).
        for name in CLEARED {
            cmd.env_remove(name);
        }
        cmd.env("NO_COLOR", "1");
        TestCommand {
            cmd,
            line: "archgate".into(),
        }
    }

    /// Runs archgate as another user (the tests run as root).
    pub fn as_user(&mut self, uid: u32, gid: u32) -> &mut Self {
        use std::os::unix::process::CommandExt;
        self.cmd.uid(uid).gid(gid);
        self
    }

    /// Appends one argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.line.push(' ');
        self.line.push_str(&arg.as_ref().to_string_lossy());
        self.cmd.arg(arg);
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self.arg(arg);
        }
        self
    }

    /// Sets one environment variable for the run.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.cmd.env(key, value);
        self
    }

    /// Sets several environment variables.
    pub fn envs<K, V>(&mut self, vars: &[(K, V)]) -> &mut Self
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.cmd.env(k, v);
        }
        self
    }

    /// Removes one variable the test process has (e.g. `PATH`).
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Self {
        self.cmd.env_remove(key);
        self
    }

    /// The working directory of the run.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.line = format!("cd {} && {}", dir.as_ref().display(), self.line);
        self.cmd.current_dir(dir);
        self
    }

    /// Starts the run as the leader of its own process group (its pid is the
    /// group's id), so a test can find every process it left behind.
    pub fn own_process_group(&mut self) -> &mut Self {
        use std::os::unix::process::CommandExt;
        self.cmd.process_group(0);
        self
    }

    /// Runs to the end, capturing stdout and stderr.
    pub fn output(&mut self) -> TestOutput {
        let out = self
            .cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.line));
        TestOutput::new(self.line.clone(), out)
    }

    /// Runs to the end on a pseudo-terminal (util-linux `script`, package
    /// bsdutils), with the same arguments, environment and directory: what a
    /// person at a terminal sees lands in stdout, stdout and stderr together.
    pub fn output_on_a_terminal(&mut self) -> TestOutput {
        let quote = |s: &OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
        let mut line = quote(self.cmd.get_program());
        for a in self.cmd.get_args() {
            line.push(' ');
            line.push_str(&quote(a));
        }
        let mut script = Command::new("script");
        script.args(["-qefc", &line, "/dev/null"]);
        for (k, v) in self.cmd.get_envs() {
            match v {
                Some(v) => script.env(k, v),
                None => script.env_remove(k),
            };
        }
        if let Some(d) = self.cmd.get_current_dir() {
            script.current_dir(d);
        }
        let out = script.stdin(Stdio::null()).output().unwrap_or_else(|e| {
            panic!(
                "start `script` (util-linux, Debian package bsdutils) for {}: {e}",
                self.line
            )
        });
        TestOutput::new(format!("script -qefc {line}"), out)
    }

    /// Starts the run in the background with stdout and stderr captured (for
    /// tests that run several at once); finish it with [`Running::wait`].
    pub fn spawn(&mut self) -> Running {
        self.start(Stdio::piped)
    }

    /// Starts the run in the background with its output discarded (for tests
    /// that kill it midway).
    pub fn spawn_quiet(&mut self) -> Running {
        self.start(Stdio::null)
    }

    fn start(&mut self, out: fn() -> Stdio) -> Running {
        let child = self
            .cmd
            .stdin(Stdio::null())
            .stdout(out())
            .stderr(out())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.line));
        Running {
            child,
            line: self.line.clone(),
        }
    }

    /// `output()` after checking that the run exits 0.
    pub fn assert_success(&mut self) -> TestOutput {
        let out = self.output();
        out.assert_code(0);
        out
    }
}

/// A run started in the background.
pub struct Running {
    child: Child,
    line: String,
}

impl Running {
    /// Waits for the end and collects what it printed.
    pub fn wait(self) -> TestOutput {
        let out = self
            .child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("wait for {}: {e}", self.line));
        TestOutput::new(self.line, out)
    }

    /// The process id of the run.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`TERM`, `INT`, …) to the run with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill -{signal} {}", self.line);
    }

    /// Kills the run and waits for it; its exit code (`None`: ended by the signal).
    pub fn kill(mut self) -> Option<i32> {
        self.child
            .kill()
            .unwrap_or_else(|e| panic!("kill {}: {e}", self.line));
        self.child.wait().expect("wait for the killed run").code()
    }
}

/// A finished run: exit code, stdout and stderr (lossily decoded once).
pub struct TestOutput {
    command: String,
    code: Option<i32>,
    stdout_bytes: Vec<u8>,
    stdout: String,
    stderr: String,
}

impl TestOutput {
    fn new(command: String, out: Output) -> Self {
        TestOutput {
            command,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            stdout_bytes: out.stdout,
        }
    }

    /// The exit code; `None` when a signal ended the run.
    pub fn code(&self) -> Option<i32> {
        self.code
    }

    /// Whether the run exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Standard output as text.
    pub fn stdout(&self) -> &str {
        &self.stdout
    }

    /// Standard output's exact bytes.
    pub fn stdout_bytes(&self) -> &[u8] {
        &self.stdout_bytes
    }

    /// Standard error as text.
    pub fn stderr(&self) -> &str {
        &self.stderr
    }

    /// Standard output parsed as JSON; `Null` when it is not JSON.
    pub fn json_or_null(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout_bytes).unwrap_or(serde_json::Value::Null)
    }

    /// Standard output parsed as JSON; fails the test (printing the run) otherwise.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout_bytes)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }

    /// Fails the test unless the run exited with `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "expected exit {code}:\n{self}");
        self
    }

    /// Fails the test unless stdout contains `needle`.
    #[track_caller]
    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{self}"
        );
        self
    }

    /// Fails the test unless stderr contains `needle`.
    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{self}"
        );
        self
    }
}

impl fmt::Display for TestOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "command: {}\nexit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

impl fmt::Debug for TestOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
