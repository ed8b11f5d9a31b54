//! Runs a command from an image's root filesystem: natively or under QEMU
//! user-mode emulation, always inside a bubblewrap sandbox in which the image's
//! root *is* `/`.
//!
//! Why a sandbox and not `qemu-… -L ROOT`: with `-L`, absolute symlinks in the
//! image (Debian's `/lib64/ld.so.1 → /lib/mips64el-linux-gnuabi64/ld.so.1`)
//! resolve on the host, so mips64el fails and amd64 silently runs the *host's*
//! loader and libraries — a check that could pass for the wrong reason. With the
//! root bound read-only at `/`, every path the program opens is the image's;
//! there is no network, no host file, and the cached root cannot be modified.
//!
//! The root must contain the mount points `proc`, `dev`, `tmp` and the file
//! [`QEMU_MOUNT`]; [`prepare_root`] creates them once when a root is unpacked.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::config::Runner;
use crate::error::{Error, Result};
use crate::platform::{self, Platform};

/// Where the emulator appears inside the sandbox.
pub const QEMU_MOUNT: &str = "/.archgate-qemu";

/// At most this much of a command's stdout and of its stderr is kept.
const MAX_CAPTURE: usize = 1 << 20;

/// How one platform's commands are executed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// On the host CPU.
    Native,
    /// Under this QEMU user-mode emulator (a host path).
    Qemu(PathBuf),
    /// Not at all: execution checks are skipped.
    Static,
}

impl Mode {
    /// `native`, `qemu`, `static`, for reports.
    pub fn label(&self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::Qemu(_) => "qemu",
            Mode::Static => "static",
        }
    }

    /// The runner as messages name it: the emulator's file name
    /// (`qemu-mips64el-static`), else the label.
    pub fn runner_name(&self) -> String {
        match self {
            Mode::Qemu(path) => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
            other => other.label().to_string(),
        }
    }

    /// Whether a command that ran out of time says more about the runner than
    /// the image: under emulation a slow or overloaded runner is the likely
    /// cause, so the check is an `error` (exit 3), never a verdict on the image.
    pub fn timeout_is_infrastructure(&self) -> bool {
        matches!(self, Mode::Qemu(_))
    }
}

/// Chooses the mode for `platform` under the configured runner. `Err` is a
/// message for an `error` outcome: the host cannot run the platform as asked
/// (emulator or bubblewrap missing), which is never a pass.
pub fn choose(runner: Runner, platform: &Platform) -> std::result::Result<Mode, String> {
    let host = Platform::host();
    let mode = match runner {
        Runner::Static => return Ok(Mode::Static),
        Runner::Native => {
            if !platform::can_run(&host, platform) {
                return Err(format!(
                    "runner \"native\" cannot run {platform} on this {host} host: use runner \"qemu\" (or \"auto\") in [verify.runners]"
                ));
            }
            Mode::Native
        }
        Runner::Auto if platform.normalised() == host.normalised() => Mode::Native,
        Runner::Auto | Runner::Qemu => Mode::Qemu(find_qemu(platform)?),
    };
    find_program("bwrap").ok_or_else(|| {
        "bwrap not found: install bubblewrap (apt-get install bubblewrap), or set [verify] runner = \"static\" to skip execution".to_string()
    })?;
    Ok(mode)
}

/// The emulator for `platform`: `qemu-ARCH-static`, else `qemu-ARCH`.
fn find_qemu(platform: &Platform) -> std::result::Result<PathBuf, String> {
    let Some(base) = platform.qemu_binary() else {
        return Err(format!(
            "no QEMU user-mode emulator is known for {platform}"
        ));
    };
    find_program(&format!("{base}-static"))
        .or_else(|| find_program(base))
        .ok_or_else(|| {
            format!(
                "{base}-static not found: install qemu-user-static (apt-get install qemu-user-static) to run {platform} code on this host"
            )
        })
}

/// A program on the host's `PATH`.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Creates the sandbox's mount points in a freshly unpacked root. A path the
/// image already has is left alone when it is a directory (or, for the QEMU
/// mount, a file); anything else there is an error naming it.
pub fn prepare_root(root: &Path) -> Result<()> {
    for dir in ["proc", "dev", "tmp"] {
        let p = root.join(dir);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::malformed(
                    format!("/{dir} in the image"),
                    "is not a directory; a container runtime could not mount it either",
                ));
            }
            Err(_) => std::fs::create_dir(&p).map_err(|e| Error::io(&p, e))?,
        }
    }
    let q = root.join(QEMU_MOUNT.trim_start_matches('/'));
    if std::fs::symlink_metadata(&q).is_err() {
        std::fs::write(&q, b"").map_err(|e| Error::io(&q, e))?;
    }
    Ok(())
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct Output {
    /// The exit code; `None` when killed by a signal or the timeout.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
    pub timed_out: bool,
}

impl Output {
    /// stdout and stderr together (what `java -version` prints goes to stderr).
    pub fn combined(&self) -> String {
        let mut s = self.stdout.clone();
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&self.stderr);
        s
    }

    /// The last `n` lines of the combined output, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let all = self.combined();
        let lines: Vec<&str> = all.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(n)..].join(" | ")
    }
}

/// One sandbox: an image root, how to execute, the image's environment.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub root: PathBuf,
    pub mode: Mode,
    /// `KEY=VALUE` entries from the image config.
    pub env: Vec<String>,
    /// The working directory inside the image (must exist there).
    pub workdir: String,
    pub timeout: Duration,
}

impl Sandbox {
    /// The bwrap command line for `argv` (argv[0] an absolute path inside the
    /// image), as `user` (uid, gid) when given: in a user namespace of its own.
    fn command(
        &self,
        argv: &[String],
        user: Option<(u32, u32)>,
    ) -> Result<tokio::process::Command> {
        self.command_in(argv, user, false, false, false)
    }

    /// [`Sandbox::command`]; `writable`: the root is bound read-write and
    /// keeps its own `/tmp` (a build step's changes land in it), and a foreign
    /// program runs through binfmt_misc rather than an explicit emulator.
    ///
    /// `in_ids`: bwrap runs as root of a user namespace that maps every id
    /// ([`maps_every_id`]); without `user` the command then runs as that root,
    /// in no user namespace of its own, so `chown` works and owners are real.
    fn command_in(
        &self,
        argv: &[String],
        user: Option<(u32, u32)>,
        writable: bool,
        share_net: bool,
        in_ids: bool,
    ) -> Result<tokio::process::Command> {
        let program = match &self.mode {
            Mode::Static => {
                return Err(Error::Internal("static runner asked to execute".into()));
            }
            _ => argv
                .first()
                .ok_or_else(|| Error::Internal("empty argv".into()))?,
        };
        let mut cmd = tokio::process::Command::new("bwrap");
        if in_ids && user.is_none() {
            // Every namespace of --unshare-all but the user's.
            cmd.args(["--unshare-ipc", "--unshare-pid", "--unshare-uts"]);
            cmd.args(["--unshare-cgroup-try", "--die-with-parent", "--new-session"]);
            if !share_net {
                cmd.arg("--unshare-net");
            }
        } else {
            cmd.args(["--unshare-all", "--die-with-parent", "--new-session"]);
            if share_net {
                cmd.arg("--share-net");
            }
        }
        if let Some((uid, gid)) = user {
            cmd.arg("--unshare-user")
                .args(["--uid", &uid.to_string(), "--gid", &gid.to_string()]);
        }
        cmd.arg(if writable { "--bind" } else { "--ro-bind" })
            .arg(&self.root)
            .arg("/")
            .args(["--proc", "/proc", "--dev", "/dev"]);
        if !writable {
            cmd.args(["--tmpfs", "/tmp"]);
        }
        // The runner's resolver over the image's own file (a mount: not in the root's files).
        let resolv = self.root.join("etc/resolv.conf");
        if share_net
            && std::fs::symlink_metadata(&resolv).is_ok_and(|m| m.is_file())
            && Path::new("/etc/resolv.conf").is_file()
        {
            cmd.args(["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]);
        }
        cmd.arg("--clearenv");
        for entry in &self.env {
            if let Some((k, v)) = entry.split_once('=')
                && !k.is_empty()
            {
                cmd.args(["--setenv", k, v]);
            }
        }
        cmd.args(["--chdir", &self.workdir]);
        if let (Mode::Qemu(qemu), false) = (&self.mode, writable) {
            cmd.arg("--ro-bind").arg(qemu).arg(QEMU_MOUNT);
            cmd.args(["--", QEMU_MOUNT]);
        } else {
            cmd.arg("--");
        }
        cmd.arg(program).args(&argv[1..]);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Ok(cmd)
    }

    /// Runs `argv` (argv[0] an absolute path inside the image). `Err` means the
    /// sandbox itself could not start (an infrastructure problem, not the image's).
    pub async fn run(&self, argv: &[String]) -> Result<Output> {
        let cmd = self.command(argv, None)?;
        self.wait_for(cmd).await
    }

    /// Runs a build step: `argv` as `user`, the root bound read-write, in the
    /// image's environment. A foreign program runs through binfmt_misc: the
    /// host's registration, or `binfmt` registered in a binfmt_misc private to
    /// a user namespace made for this command alone (`unshare`, Linux >= 6.7),
    /// around the sandbox.
    ///
    /// When archgate runs as root ([`maps_every_id`]), that user namespace maps
    /// every id to itself: a root step runs as its root (so `chown` to any
    /// user works and the files' owners on disk are the real ones), a `USER`
    /// step as that user (`setpriv`, then bwrap's own namespace mapping the
    /// user to itself). Otherwise the sandbox maps the step's user alone.
    pub async fn run_step(
        &self,
        argv: &[String],
        user: (u32, u32),
        binfmt: Option<&str>,
        share_net: bool,
    ) -> Result<Output> {
        let every_id = maps_every_id();
        let as_root = every_id && user == (0, 0);
        let inner = self.command_in(argv, (!as_root).then_some(user), true, share_net, every_id)?;
        let registration = match (binfmt, &self.mode) {
            (_, Mode::Native) => None,
            (Some(registration), Mode::Qemu(_)) => Some(registration),
            _ => {
                return Err(Error::Internal(
                    "a build step needs a native or binfmt runner".into(),
                ));
            }
        };
        let cmd = if every_id || registration.is_some() {
            // Around the sandbox: a user namespace for this step, where
            // STEP_SCRIPT registers QEMU and runs bwrap. Run as root, archgate
            // maps every id of it (then tells the script on stdin); otherwise
            // `unshare` maps archgate's own user as its root.
            let mut outer = tokio::process::Command::new("unshare");
            outer.arg("--user");
            if !every_id {
                outer.arg("--map-root-user");
            }
            outer.args([
                "--mount",
                "--",
                "/bin/sh",
                "-c",
                STEP_SCRIPT,
                "archgate-step",
            ]);
            // The sandbox maps the user itself unless every id is mapped.
            let (uid, gid) = if every_id { user } else { (0, 0) };
            outer.args([
                if every_id { "wait" } else { "go" },
                registration.unwrap_or(""),
                &uid.to_string(),
                &gid.to_string(),
                "bwrap",
            ]);
            outer.args(inner.as_std().get_args());
            outer
                .stdin(if every_id {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            outer
        } else {
            inner
        };
        let out = self.wait_for_mapped(cmd, every_id).await?;
        if let Some(line) = out.stderr.lines().find(|l| l.starts_with(BINFMT_FAILED)) {
            return Err(Error::Internal(format!(
                "{line}: the private binfmt_misc needs Linux >= 6.7 and unprivileged user namespaces"
            )));
        }
        Ok(out)
    }

    async fn wait_for(&self, cmd: tokio::process::Command) -> Result<Output> {
        self.wait_for_mapped(cmd, false).await
    }

    /// Runs `cmd` to its end, the timeout or a signal. `map_ids`: `cmd` is
    /// [`STEP_SCRIPT`] under `unshare --user`, which waits on its stdin until
    /// its namespace maps every id ([`map_every_id`]).
    async fn wait_for_mapped(
        &self,
        mut cmd: tokio::process::Command,
        map_ids: bool,
    ) -> Result<Output> {
        let started = Instant::now();
        let mut child = spawn(&mut cmd)?;
        if map_ids {
            map_every_id(&mut child).await?;
        }
        let out = tokio::spawn(capture(child.stdout.take()));
        let err = tokio::spawn(capture(child.stderr.take()));
        let waited = tokio::select! {
            waited = tokio::time::timeout(self.timeout, child.wait()) => waited,
            signal = crate::cancel::cancelled() => {
                // Stopped and reaped here, not left to `kill_on_drop`: a child
                // killed on drop is never waited for and stays `<defunct>`, and
                // the sandbox's own processes would die only asynchronously.
                stop(&mut child).await;
                return Err(Error::Cancelled(signal));
            }
        };
        let (code, timed_out) = match waited {
            Ok(status) => (
                status
                    .map_err(|e| Error::Internal(format!("waiting for bwrap: {e}")))?
                    .code(),
                false,
            ),
            Err(_) => {
                stop(&mut child).await;
                (None, true)
            }
        };
        let stdout = out.await.unwrap_or_default();
        let stderr = err.await.unwrap_or_default();
        let output = Output {
            code,
            stdout,
            stderr,
            duration: started.elapsed(),
            timed_out,
        };
        sandbox_failure(&output)?;
        Ok(output)
    }

    /// Starts a service (`argv` as in [`Sandbox::run`]) and watches it until
    /// it is [`Started`] one way or the other, then stops the whole sandbox
    /// (every process in it, emulator included) before returning: nothing is
    /// left running. `Output::timed_out` is set when `watch.timeout` ran out.
    pub async fn serve(&self, argv: &[String], watch: &Watch<'_>) -> Result<(Started, Output)> {
        let mut cmd = self.command(argv, watch.user)?;
        let started = Instant::now();
        let mut child = spawn(&mut cmd)?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let readers = [
            tokio::spawn(forward(child.stdout.take(), Stream::Stdout, tx.clone())),
            tokio::spawn(forward(child.stderr.take(), Stream::Stderr, tx)),
        ];
        let deadline = tokio::time::Instant::from_std(started + watch.timeout);
        let settle_at = tokio::time::Instant::from_std(started + watch.settle.min(watch.timeout));
        let mut lines = Lines::default();
        let mut open = true;
        // After a fatal line, the rest of the trace is collected for a moment.
        let mut fatal: Option<(String, tokio::time::Instant)> = None;
        let mut code = None;
        let outcome = 'watch: loop {
            let grace = fatal
                .as_ref()
                .map_or(deadline, |(_, until)| (*until).min(deadline));
            tokio::select! {
                chunk = rx.recv(), if open => match chunk {
                    None => open = false,
                    Some((stream, bytes)) => {
                        for line in lines.push(stream, &bytes) {
                            if fatal.is_some() {
                                continue;
                            }
                            if watch.ready.is_some_and(|re| re.is_match(&line)) {
                                break 'watch Started::Ready(line);
                            }
                            if is_fatal(&line) {
                                fatal = Some((line, tokio::time::Instant::now() + FATAL_GRACE));
                            }
                        }
                        if fatal.is_none()
                            && let (Some(re), Some(partial)) = (watch.ready, lines.partial())
                            && re.is_match(&partial)
                        {
                            break Started::Ready(partial);
                        }
                    }
                },
                status = child.wait() => {
                    code = status
                        .map_err(|e| Error::Internal(format!("waiting for bwrap: {e}")))?
                        .code();
                    // The sandbox is gone: its pipes end now.
                    while let Some((stream, bytes)) = rx.recv().await {
                        lines.push(stream, &bytes);
                    }
                    break match fatal.take() {
                        Some((line, _)) => Started::Fatal(line),
                        None => match lines.ready_in_rest(watch.ready) {
                            Some(line) => Started::Ready(line),
                            None => Started::Exited(code),
                        },
                    };
                }
                _ = tokio::time::sleep_until(grace), if fatal.is_some() => {
                    break Started::Fatal(fatal.take().map(|(l, _)| l).unwrap_or_default());
                }
                _ = tokio::time::sleep_until(settle_at), if watch.ready.is_none() && fatal.is_none() => {
                    break Started::Settled;
                }
                _ = tokio::time::sleep_until(deadline), if fatal.is_none() => break Started::TimedOut,
                signal = crate::cancel::cancelled() => {
                    stop(&mut child).await;
                    return Err(Error::Cancelled(signal));
                }
            }
        };
        stop(&mut child).await;
        for r in readers {
            let _ = r.await;
        }
        while let Ok((stream, bytes)) = rx.try_recv() {
            lines.push(stream, &bytes);
        }
        let (stdout, stderr) = lines.finish();
        let output = Output {
            code,
            stdout,
            stderr,
            duration: started.elapsed(),
            timed_out: matches!(outcome, Started::TimedOut),
        };
        if matches!(outcome, Started::Exited(_)) {
            sandbox_failure(&output)?;
        }
        Ok((outcome, output))
    }
}

/// What a failed private binfmt_misc set-up prints first.
const BINFMT_FAILED: &str = "archgate: binfmt_misc";

/// Run by `/bin/sh` inside `unshare --user --mount` around a build step:
/// with `$1 = wait`, waits until archgate says on stdin that it has mapped
/// every id of the namespace; registers `$2` (when given) in a binfmt_misc
/// private to the namespace; then runs the rest as `$3:$4`.
const STEP_SCRIPT: &str = r#"set -e
wait=$1; reg=$2; uid=$3; gid=$4; shift 4
if [ "$wait" = wait ]; then
read go || { echo "archgate: the user namespace was not mapped" >&2; exit 125; }
fi
if [ -n "$reg" ]; then
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || { echo "archgate: binfmt_misc cannot be mounted in a user namespace here" >&2; exit 125; }
printf '%s' "$reg" > /proc/sys/fs/binfmt_misc/register 2>/dev/null || { echo "archgate: binfmt_misc refused the QEMU registration" >&2; exit 125; }
fi
if [ "$uid" = 0 ] && [ "$gid" = 0 ]; then exec "$@" </dev/null; fi
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@" </dev/null"#;

/// Whether build steps can keep every owner: archgate runs as root, which
/// may map every id of a user namespace it makes to itself.
pub fn maps_every_id() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Maps every user and group id of `child`'s new user namespace to itself
/// (once `unshare` has made it), then tells the child to go on.
async fn map_every_id(child: &mut tokio::process::Child) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let pid = child
        .id()
        .ok_or_else(|| Error::Internal("the build step ended at once".into()))?;
    let ours = std::fs::read_link("/proc/self/ns/user").ok();
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let theirs = std::fs::read_link(proc.join("ns/user")).ok();
        if theirs.is_some() && theirs != ours {
            break;
        }
        if Instant::now() > deadline || theirs.is_none() {
            return Err(Error::Internal(
                "unshare did not make a user namespace for the build step (are user namespaces enabled?)".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for map in ["uid_map", "gid_map"] {
        std::fs::write(proc.join(map), "0 0 4294967295\n").map_err(|e| {
            Error::Internal(format!(
                "cannot map every id of the build step's user namespace ({map}: {e})"
            ))
        })?;
    }
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(b"go\n")
            .await
            .map_err(|e| Error::Internal(format!("starting the build step: {e}")))?;
    }
    Ok(())
}

/// How long the rest of a trace is collected after a fatal line.
const FATAL_GRACE: Duration = Duration::from_secs(3);

/// What [`Sandbox::serve`] waits for.
#[derive(Debug, Clone)]
pub struct Watch<'a> {
    /// A line matching it means ready; `None`: alive after `settle`, or exit, ends the wait.
    pub ready: Option<&'a regex::Regex>,
    pub timeout: Duration,
    pub settle: Duration,
    /// `(uid, gid)` to run as; `None`: the sandbox's default (root).
    pub user: Option<(u32, u32)>,
}

/// How a watched service ended the wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// It printed this line, matching `ready`, while alive.
    Ready(String),
    /// No `ready` pattern, and it was still running after `settle`.
    Settled,
    /// It exited (its code; `None`: killed by a signal) before either.
    Exited(Option<i32>),
    /// It printed this fatal line (`UnsatisfiedLinkError`, a JVM crash report) before it was ready.
    Fatal(String),
    /// `timeout` ran out first.
    TimedOut,
}

/// A JVM's own words for "this process cannot work": a native library that
/// does not load, or the fatal error report (`hs_err`) of a crash.
fn is_fatal(line: &str) -> bool {
    line.contains("UnsatisfiedLinkError")
        || line.contains("A fatal error has been detected by the Java Runtime Environment")
        || line.contains("hs_err_pid")
}

/// Starts bwrap: `Err` when it cannot start at all.
fn spawn(cmd: &mut tokio::process::Command) -> Result<tokio::process::Child> {
    cmd.spawn().map_err(|e| {
        Error::Internal(format!(
            "cannot start bwrap: {e} (install bubblewrap: apt-get install bubblewrap)"
        ))
    })
}

/// Stops a sandbox and everything in it, and reaps it. The sandbox's own
/// init (bwrap's child, PID 1 of its PID namespace) is killed first: the
/// kernel then kills every process of the namespace and bwrap exits once its
/// child is gone — so when this returns, no process of the sandbox is left.
/// Killing bwrap alone would leave that to `--die-with-parent`, asynchronously.
async fn stop(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let inits: Vec<i32> = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        for &init in &inits {
            // SAFETY: kill(2) with a PID read just now from bwrap's own children.
            unsafe {
                libc::kill(init, libc::SIGKILL);
            }
        }
        // Without a child (bwrap still setting up) there is nothing to wait for.
        if !inits.is_empty()
            && tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// Sends a pipe's chunks to `tx` until it ends.
async fn forward<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    stream: Stream,
    tx: tokio::sync::mpsc::UnboundedSender<(Stream, Vec<u8>)>,
) {
    let Some(mut pipe) = pipe else {
        return;
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx.send((stream, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
}

/// A service's output as it arrives: kept (at most [`MAX_CAPTURE`] per
/// stream) and cut into complete lines.
#[derive(Debug, Default)]
struct Lines {
    kept: [Vec<u8>; 2],
    /// Per stream: bytes after the last newline.
    pending: [Vec<u8>; 2],
    /// The newest stream that had a partial line.
    last: Option<usize>,
}

impl Lines {
    /// Adds a chunk; returns the lines it completed.
    fn push(&mut self, stream: Stream, bytes: &[u8]) -> Vec<String> {
        let i = stream as usize;
        let room = MAX_CAPTURE.saturating_sub(self.kept[i].len());
        self.kept[i].extend_from_slice(&bytes[..bytes.len().min(room)]);
        let pending = &mut self.pending[i];
        pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(n) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=n).collect();
            lines.push(
                String::from_utf8_lossy(&line)
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            );
        }
        // A line longer than the capture limit is judged by its start.
        pending.truncate(MAX_CAPTURE);
        self.last = (!pending.is_empty()).then_some(i);
        lines
    }

    /// The newest partial line (a ready line printed without a newline).
    fn partial(&self) -> Option<String> {
        self.last
            .map(|i| String::from_utf8_lossy(&self.pending[i]).into_owned())
    }

    /// A ready line among the partial lines left at the end.
    fn ready_in_rest(&self, ready: Option<&regex::Regex>) -> Option<String> {
        let re = ready?;
        self.pending
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .find(|p| !p.is_empty() && re.is_match(p))
    }

    /// `(stdout, stderr)` as kept.
    fn finish(self) -> (String, String) {
        let [out, err] = self.kept;
        (
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }
}

/// The first line of `qemu --version` (`qemu-aarch64 version 7.2.13 (Debian …)`),
/// for reports; `None` when it does not answer.
pub async fn emulator_version(qemu: &Path) -> Option<String> {
    let out = tokio::process::Command::new(qemu)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .await
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
}

/// Reads a pipe to its end, keeping at most [`MAX_CAPTURE`] bytes.
async fn capture<R: AsyncRead + Unpin>(pipe: Option<R>) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_CAPTURE.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// bubblewrap's own failures (it prints `bwrap: …` and exits 1 before the
/// program starts) are infrastructure errors, not the image's.
fn sandbox_failure(o: &Output) -> Result<()> {
    // `execvp` failing means the program is not in the image: the image's fault.
    let Some(line) = o
        .stderr
        .lines()
        .find(|l| l.starts_with("bwrap: ") && !l.contains("execvp"))
    else {
        return Ok(());
    };
    if o.code != Some(1) || !o.stdout.is_empty() {
        return Ok(());
    }
    let hint = if line.contains("namespace") || line.contains("uid map") {
        " (bubblewrap needs root or unprivileged user namespaces on this runner)"
    } else {
        ""
    };
    Err(Error::Internal(format!(
        "the sandbox could not start: {line}{hint}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_runner_needs_nothing() {
        let p = Platform::parse("linux/mips64le").unwrap();
        assert_eq!(choose(Runner::Static, &p), Ok(Mode::Static));
    }

    #[test]
    fn native_refuses_a_foreign_cpu() {
        let host = Platform::host();
        let foreign = if host.normalised().architecture == "mips64le" {
            "linux/amd64"
        } else {
            "linux/mips64le"
        };
        let err = choose(Runner::Native, &Platform::parse(foreign).unwrap()).unwrap_err();
        assert!(err.contains("qemu"), "{err}");
    }

    #[test]
    fn sandbox_failures_are_told_apart_from_the_program_failing() {
        let o = |code, stderr: &str| Output {
            code,
            stdout: String::new(),
            stderr: stderr.into(),
            duration: Duration::ZERO,
            timed_out: false,
        };
        assert!(sandbox_failure(&o(Some(1), "bwrap: Creating new namespace failed: x")).is_err());
        assert!(sandbox_failure(&o(Some(1), "Error: could not find java")).is_ok());
        assert!(sandbox_failure(&o(Some(1), "bwrap: execvp /x: No such file")).is_ok());
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let o = Output {
            code: Some(1),
            stdout: "a\n".into(),
            stderr: "b\n\nc\nd\n".into(),
            duration: Duration::ZERO,
            timed_out: false,
        };
        assert_eq!(o.tail(2), "c | d");
    }
}
