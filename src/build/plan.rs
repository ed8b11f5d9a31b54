//! Planning one platform's image, purely: which base (global `ARG`s and the
//! automatic platform arguments substituted into `FROM`), then every
//! instruction of the final stage applied to the base config the way Docker
//! (BuildKit) does — `Env` with `$PATH` expansion, `WorkingDir`, `Entrypoint`
//! and `Cmd` (exec and shell forms through `SHELL`), `Labels`, `ExposedPorts`,
//! `User`, `Volumes`, `StopSignal`, `Healthcheck`, history entries (config-only
//! instructions are `empty_layer`) — and the steps that make layers, in
//! order: `ADD`/`COPY` layers to write and `RUN` commands to execute (their
//! argv, environment, working directory and user). No I/O: the caller fetches
//! the base config, writes the layers and runs the commands.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::dockerfile::{
    CommandForm, CopySpec, Dockerfile, Healthcheck, Instruction, Line, VolumeForm,
};
use super::subst;
use crate::error::{Error, Result};
use crate::platform::Platform;

/// Docker's predefined build args (any case): passed to `RUN` without an `ARG`.
const PROXY_ARGS: [&str; 5] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "FTP_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
];

/// The `PATH` Docker gives an image built `FROM scratch`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the plan needs besides the Dockerfile.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The Dockerfile's name, for messages (`Dockerfile:4: ...`).
    pub file: &'a str,
    /// `--build-arg` / `[build] args`.
    pub build_args: &'a BTreeMap<String, String>,
    pub target: &'a Platform,
    /// The platform archgate runs on (`BUILDPLATFORM`).
    pub build: &'a Platform,
    /// History and config `created`: `SOURCE_DATE_EPOCH`, else 0.
    pub epoch: i64,
}

/// The final stage's base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    /// An image location and the platform to take from it.
    Image {
        reference: String,
        platform: Platform,
        line: usize,
    },
}

/// One `ADD`/`COPY` layer to write, with everything substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSpec {
    pub line: usize,
    pub add: bool,
    /// Paths inside the build context (may hold `*`, `?`, `[...]`).
    pub sources: Vec<String>,
    /// Absolute destination inside the image, cleaned.
    pub dest: String,
    /// The destination is a directory (ends with `/`, or several sources).
    pub dest_dir: bool,
    pub uid: u64,
    pub gid: u64,
    /// `--chown` was given (an extracted archive then takes `uid`/`gid` too).
    pub chown: bool,
    pub chmod: Option<u32>,
    /// `COPY --from`: the sources are paths in a stage or an image, not the context.
    pub from: Option<CopyFrom>,
}

/// Where `COPY --from` copies from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CopyFrom {
    /// An earlier stage of the Dockerfile, by its number (0-based).
    Stage(usize),
    /// An image location (as `FROM` takes it), for the platform being built.
    Image(String),
}

/// One `RUN` to execute in the stage's root, with everything resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub line: usize,
    /// Exec form as written; shell form through the stage's `SHELL`.
    pub argv: Vec<String>,
    /// `KEY=VALUE`: the stage's `Env`, then the `ARG`s in scope it does not set.
    pub env: Vec<String>,
    /// The working directory (absolute; created when missing).
    pub workdir: String,
    /// Every `WORKDIR` of the stage so far, in order, with the `USER` in
    /// force at its line (`""`: root): the directories missing are made
    /// before the command, each owned by its line's user, as BuildKit does.
    pub workdirs: Vec<(String, String)>,
    /// The stage's `USER` (`""`: root), resolved in the root when run.
    pub user: String,
}

/// A step that makes a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Copy(LayerSpec),
    Run(RunSpec),
}

/// The result of planning: a config (without the new layers' diff_ids) and
/// the steps that make the new layers, in order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub config: Value,
    pub steps: Vec<Step>,
}

impl Plan {
    /// Whether a step executes a command (the root must then be unpacked).
    pub fn runs(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Step::Run(_)))
    }

    /// Whether a step copies out of another stage or an image.
    pub fn copies_from(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, Step::Copy(c) if c.from.is_some()))
    }
}

/// The automatic platform arguments.
pub fn platform_args(target: &Platform, build: &Platform) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        m.insert(format!("{prefix}PLATFORM"), p.to_string());
        m.insert(format!("{prefix}OS"), p.os.clone());
        m.insert(format!("{prefix}ARCH"), p.architecture.clone());
        m.insert(
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        );
    }
    m
}

/// RFC 3339 UTC for a Unix time (history `created`).
pub fn rfc3339(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

struct Stage<'a> {
    /// Its number among the Dockerfile's stages (0-based).
    index: usize,
    from: &'a Line,
    image: String,
    platform: Option<String>,
    alias: Option<String>,
    body: Vec<&'a Line>,
}

fn stages(df: &Dockerfile) -> (Vec<&Line>, Vec<Stage<'_>>) {
    let mut globals = Vec::new();
    let mut out: Vec<Stage> = Vec::new();
    for l in &df.instructions {
        match &l.instruction {
            Instruction::From {
                image,
                platform,
                alias,
            } => out.push(Stage {
                index: out.len(),
                from: l,
                image: image.clone(),
                platform: platform.clone(),
                alias: alias.clone(),
                body: Vec::new(),
            }),
            _ => match out.last_mut() {
                Some(s) => s.body.push(l),
                None => globals.push(l),
            },
        }
    }
    (globals, out)
}

fn at(inp: &Inputs, line: usize, message: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}:{line}: {message}", inp.file))
}

/// The global scope: automatic platform args, then global `ARG`s (build args win).
fn global_args(df: &Dockerfile, inp: &Inputs) -> Result<BTreeMap<String, Option<String>>> {
    let (globals, _) = stages(df);
    let mut scope: BTreeMap<String, Option<String>> = platform_args(inp.target, inp.build)
        .into_iter()
        .map(|(k, v)| (k, Some(v)))
        .collect();
    for l in globals {
        if let Instruction::Arg(list) = &l.instruction {
            for (name, default) in list {
                let value = match inp.build_args.get(name) {
                    Some(v) => Some(v.clone()),
                    None => match default {
                        Some(d) => {
                            let lookup = |n: &str| scope.get(n).cloned().flatten();
                            Some(
                                subst::expand_word(d, df.escape, &lookup)
                                    .map_err(|e| at(inp, l.line, e))?,
                            )
                        }
                        None => scope.get(name).cloned().flatten(),
                    },
                };
                scope.insert(name.clone(), value);
            }
        }
    }
    Ok(scope)
}

/// How messages name stage `idx`: `stage build` (its `AS` name), else `stage 2`.
pub fn stage_label(df: &Dockerfile, idx: usize) -> String {
    match stages(df).1.get(idx).and_then(|s| s.alias.clone()) {
        Some(name) => format!("stage {name}"),
        None => format!("stage {idx}"),
    }
}

/// The number of the last stage (the one `build` publishes).
pub fn last_stage(df: &Dockerfile, inp: &Inputs) -> Result<usize> {
    stages(df)
        .1
        .len()
        .checked_sub(1)
        .ok_or_else(|| at(inp, 1, "no FROM instruction"))
}

/// The chain of stages stage `idx` builds on (root first) and its base.
fn chain<'a>(df: &'a Dockerfile, inp: &Inputs, idx: usize) -> Result<(Vec<Stage<'a>>, Base)> {
    let (_, all) = stages(df);
    let global = global_args(df, inp)?;
    let lookup = |n: &str| global.get(n).cloned().flatten();
    let mut all: Vec<Option<Stage>> = all.into_iter().map(Some).collect();
    let mut idx = idx;
    if idx >= all.len() {
        return Err(at(inp, 1, format!("no stage {idx}")));
    }
    let mut chain = Vec::new();
    loop {
        let stage = all[idx]
            .take()
            .ok_or_else(|| at(inp, 1, "FROM stages form a cycle"))?;
        let image = subst::expand_word(&stage.image, df.escape, &lookup)
            .map_err(|e| at(inp, stage.from.line, e))?;
        if image.is_empty() {
            return Err(at(
                inp,
                stage.from.line,
                format!(
                    "FROM `{}` expands to nothing: pass it with --build-arg",
                    stage.image
                ),
            ));
        }
        let earlier = all[..idx].iter().rposition(|s| {
            s.as_ref()
                .and_then(|s| s.alias.as_deref())
                .is_some_and(|a| a.eq_ignore_ascii_case(&image))
        });
        let line = stage.from.line;
        let platform = match &stage.platform {
            Some(p) => {
                let p = subst::expand_word(p, df.escape, &lookup).map_err(|e| at(inp, line, e))?;
                Some(
                    Platform::parse(&p)
                        .map_err(|e| at(inp, line, format!("FROM --platform: {e}")))?,
                )
            }
            None => None,
        };
        chain.push(stage);
        if let Some(i) = earlier {
            idx = i;
            continue;
        }
        chain.reverse();
        let base = if image.eq_ignore_ascii_case("scratch") {
            Base::Scratch
        } else {
            Base::Image {
                reference: image,
                platform: platform.unwrap_or_else(|| inp.target.clone()),
                line,
            }
        };
        return Ok((chain, base));
    }
}

/// The base stage `stage` builds on, for this platform.
pub fn base(df: &Dockerfile, inp: &Inputs, stage: usize) -> Result<Base> {
    Ok(chain(df, inp, stage)?.1)
}

/// The config `FROM scratch` starts from.
pub fn scratch_config(target: &Platform) -> Value {
    let mut v = json!({
        "architecture": target.architecture,
        "os": target.os,
        "config": {"Env": [format!("PATH={DEFAULT_PATH}")]},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    });
    if let Some(variant) = &target.variant {
        v["variant"] = json!(variant);
    }
    v
}

/// Per-stage state while applying instructions.
struct State {
    config: Value,
    args: BTreeMap<String, Option<String>>,
    shell: Vec<String>,
    cmd_set: bool,
    /// Each `WORKDIR` so far and the `USER` at its line.
    workdirs: Vec<(String, String)>,
}

impl State {
    fn runtime(&mut self) -> &mut Map<String, Value> {
        if !self.config.get("config").is_some_and(Value::is_object) {
            self.config["config"] = json!({});
        }
        self.config["config"]
            .as_object_mut()
            .expect("just made an object")
    }

    fn env(&self) -> Vec<(String, String)> {
        self.config
            .pointer("/config/Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|kv| match kv.split_once('=') {
                        Some((k, v)) => (k.to_string(), v.to_string()),
                        None => (kv.to_string(), String::new()),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The working directory (`/` when unset).
    fn workdir(&self) -> String {
        self.config
            .pointer("/config/WorkingDir")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("/")
            .to_string()
    }

    /// The `USER` in force (`""`: root).
    fn user(&self) -> String {
        self.config
            .pointer("/config/User")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }

    /// ENV wins over ARG, as in Docker.
    fn lookup(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.env().into_iter().find(|(k, _)| k == name) {
            return Some(v);
        }
        self.args.get(name).cloned().flatten()
    }

    fn set_env(&mut self, key: &str, value: &str) {
        let mut env = self.env();
        match env.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_string(),
            None => env.push((key.to_string(), value.to_string())),
        }
        let list: Vec<Value> = env
            .into_iter()
            .map(|(k, v)| json!(format!("{k}={v}")))
            .collect();
        self.runtime().insert("Env".into(), Value::Array(list));
    }

    /// Sets `config.<map>[key] = value`, creating the map (Labels, ExposedPorts, Volumes).
    fn set_in(&mut self, map: &str, key: &str, value: Value) {
        let rt = self.runtime();
        if !rt.get(map).is_some_and(Value::is_object) {
            rt.insert(map.into(), json!({}));
        }
        rt[map][key] = value;
    }

    fn history(&mut self, epoch: i64, created_by: String, empty: bool) {
        let mut h = json!({
            "created": rfc3339(epoch),
            "created_by": created_by,
            "comment": "buildkit.dockerfile.v0",
        });
        if empty {
            h["empty_layer"] = json!(true);
        }
        match self.config.get_mut("history").and_then(Value::as_array_mut) {
            Some(a) => a.push(h),
            None => self.config["history"] = json!([h]),
        }
    }
}

/// Applies stage `stage` (and the stages it builds on) to the base config.
pub fn apply(df: &Dockerfile, inp: &Inputs, stage: usize, base_config: Value) -> Result<Plan> {
    let (chain, _) = chain(df, inp, stage)?;
    let (_, all) = stages(df);
    let names: Vec<Option<&str>> = all.iter().map(|s| s.alias.as_deref()).collect();
    let global = global_args(df, inp)?;
    let automatic = platform_args(inp.target, inp.build);
    let mut config = base_config;
    let shape_ok = config.is_object()
        && config
            .get("config")
            .is_none_or(|c| c.is_object() || c.is_null())
        && config
            .get("history")
            .is_none_or(|h| h.is_array() || h.is_null())
        && config
            .get("rootfs")
            .is_none_or(|r| r.get("diff_ids").is_some_and(Value::is_array));
    if !shape_ok {
        return Err(Error::malformed(
            format!("{}: the base image config", inp.file),
            "not an image config (`config`, `history` or `rootfs` has the wrong type); rebuild the base",
        ));
    }
    if config
        .pointer("/config/OnBuild")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(at(
            inp,
            chain.first().map(|s| s.from.line).unwrap_or(1),
            "the base image has ONBUILD triggers, which archgate does not run: build FROM an image without them, or use `[build] driver = \"buildx\"`",
        ));
    }
    if let Some(rt) = config.get_mut("config").and_then(Value::as_object_mut) {
        rt.remove("OnBuild");
    }
    let shell = config
        .pointer("/config/Shell")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_else(|| vec!["/bin/sh".to_string(), "-c".to_string()]);
    let mut state = State {
        config,
        args: BTreeMap::new(),
        shell,
        cmd_set: false,
        workdirs: Vec::new(),
    };
    let mut steps = Vec::new();
    for stage in &chain {
        // Each stage starts with no ARGs in scope.
        state.args.clear();
        let scope = Scope {
            global: &global,
            automatic: &automatic,
            names: &names,
            stage: stage.index,
        };
        for l in &stage.body {
            apply_one(df, inp, &scope, &mut state, l, &mut steps)?;
        }
    }
    state.config["created"] = json!(rfc3339(inp.epoch));
    Ok(Plan {
        config: state.config,
        steps,
    })
}

fn word(df: &Dockerfile, inp: &Inputs, state: &State, line: usize, w: &str) -> Result<String> {
    let lookup = |n: &str| state.lookup(n);
    subst::expand_word(w, df.escape, &lookup).map_err(|e| at(inp, line, e))
}

fn words(
    df: &Dockerfile,
    inp: &Inputs,
    state: &State,
    line: usize,
    w: &str,
) -> Result<Vec<String>> {
    let lookup = |n: &str| state.lookup(n);
    subst::expand_words(w, df.escape, &lookup).map_err(|e| at(inp, line, e))
}

fn command(state: &State, form: &CommandForm) -> Vec<String> {
    match form {
        CommandForm::Exec(v) => v.clone(),
        CommandForm::Shell(s) => {
            let mut v = state.shell.clone();
            v.push(s.clone());
            v
        }
    }
}

/// Cleans an absolute path: no `.`, `..` or doubled `/`.
pub fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

fn join(dir: &str, p: &str) -> String {
    if p.starts_with('/') {
        clean_path(p)
    } else {
        clean_path(&format!("{dir}/{p}"))
    }
}

fn parse_chown(s: &str) -> Option<(u64, u64)> {
    let id = |x: &str| -> Option<u64> { if x == "root" { Some(0) } else { x.parse().ok() } };
    match s.split_once(':') {
        Some((u, g)) => Some((id(u)?, id(g)?)),
        None => {
            let u = id(s)?;
            Some((u, u))
        }
    }
}

/// What one instruction sees besides the stage's state.
struct Scope<'a> {
    global: &'a BTreeMap<String, Option<String>>,
    automatic: &'a BTreeMap<String, String>,
    /// Every stage's `AS` name, by number.
    names: &'a [Option<&'a str>],
    /// The number of the stage being applied.
    stage: usize,
}

fn apply_one(
    df: &Dockerfile,
    inp: &Inputs,
    scope: &Scope,
    state: &mut State,
    l: &Line,
    steps: &mut Vec<Step>,
) -> Result<()> {
    let line = l.line;
    let epoch = inp.epoch;
    match &l.instruction {
        Instruction::From { .. } => {}
        Instruction::Arg(list) => {
            let mut shown = Vec::new();
            for (name, default) in list {
                let value = if let Some(v) = scope.automatic.get(name) {
                    Some(v.clone())
                } else if let Some(v) = inp.build_args.get(name) {
                    Some(v.clone())
                } else if let Some(d) = default {
                    Some(word(df, inp, state, line, d)?)
                } else {
                    scope.global.get(name).cloned().flatten()
                };
                shown.push(match default {
                    Some(d) => format!("{name}={d}"),
                    None => name.clone(),
                });
                state.args.insert(name.clone(), value);
            }
            state.history(epoch, format!("ARG {}", shown.join(" ")), true);
        }
        Instruction::Env(pairs) => {
            // Every value is expanded against the environment before this instruction.
            let mut expanded = Vec::new();
            for (k, v) in pairs {
                let k = word(df, inp, state, line, k)?;
                let v = word(df, inp, state, line, v)?;
                expanded.push((k, v));
            }
            for (k, v) in &expanded {
                state.set_env(k, v);
            }
            let shown: Vec<String> = expanded.iter().map(|(k, v)| format!("{k}={v}")).collect();
            state.history(epoch, format!("ENV {}", shown.join(" ")), true);
        }
        Instruction::Workdir(w) => {
            let w = word(df, inp, state, line, w)?;
            let current = state.workdir();
            let dir = join(&current, &w);
            state.runtime().insert("WorkingDir".into(), json!(dir));
            let user = state.user();
            state.workdirs.push((dir.clone(), user));
            state.history(epoch, format!("WORKDIR {dir}"), true);
        }
        Instruction::Copy(spec) => {
            let mut layer = copy_layer(df, inp, state, line, spec)?;
            if let Some(from) = &spec.from {
                layer.from = Some(copy_from(df, inp, scope, state, line, from)?);
            }
            let kw = if spec.add { "ADD" } else { "COPY" };
            let mut shown = String::new();
            if let Some(c) = &spec.chown {
                shown.push_str(&format!("--chown={c} "));
            }
            if let Some(c) = &spec.chmod {
                shown.push_str(&format!("--chmod={c} "));
            }
            state.history(
                epoch,
                format!(
                    "{kw} {shown}{} {} # buildkit",
                    layer.sources.join(" "),
                    word(df, inp, state, line, &spec.dest)?
                ),
                false,
            );
            steps.push(Step::Copy(layer));
        }
        Instruction::Run(form) => {
            let argv = command(state, form);
            if argv.is_empty() {
                return Err(at(inp, line, "RUN has an empty command"));
            }
            let env = state.env();
            // ARGs in scope reach the command as variables (ENV wins), as in Docker.
            let args: Vec<(String, String)> = state
                .args
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
                .filter(|(k, _)| !env.iter().any(|(e, _)| e == k))
                .collect();
            let workdir = state.workdir();
            let user = state.user();
            // Docker's predefined proxy args reach every RUN from --build-arg
            // without an ARG, and stay out of the history (they may hold credentials).
            let proxies: Vec<(String, String)> = inp
                .build_args
                .iter()
                .filter(|(k, _)| PROXY_ARGS.contains(&k.to_ascii_uppercase().as_str()))
                .filter(|(k, _)| {
                    !env.iter().any(|(e, _)| e == *k) && !args.iter().any(|(a, _)| a == *k)
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            // BuildKit's form: `RUN |2 A=1 B=2 /bin/sh -c cmd # buildkit`.
            let shown_args = if args.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("|{} {} ", args.len(), list.join(" "))
            };
            state.history(
                epoch,
                format!("RUN {shown_args}{} # buildkit", argv.join(" ")),
                false,
            );
            steps.push(Step::Run(RunSpec {
                line,
                argv,
                env: env
                    .into_iter()
                    .chain(args)
                    .chain(proxies)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
                workdir,
                workdirs: state.workdirs.clone(),
                user,
            }));
        }
        Instruction::Label(pairs) => {
            let mut shown = Vec::new();
            for (k, v) in pairs {
                let k = word(df, inp, state, line, k)?;
                let v = word(df, inp, state, line, v)?;
                shown.push(format!("{k}={v}"));
                state.set_in("Labels", &k, json!(v));
            }
            state.history(epoch, format!("LABEL {}", shown.join(" ")), true);
        }
        Instruction::User(u) => {
            let u = word(df, inp, state, line, u)?;
            state.runtime().insert("User".into(), json!(u));
            state.history(epoch, format!("USER {u}"), true);
        }
        Instruction::Expose(e) => {
            let mut ports = Vec::new();
            for p in words(df, inp, state, line, e)? {
                ports.extend(expose_ports(&p).map_err(|m| at(inp, line, m))?);
            }
            for p in &ports {
                state.set_in("ExposedPorts", p, json!({}));
            }
            state.history(epoch, format!("EXPOSE {}", ports.join(" ")), true);
        }
        Instruction::Volume(form) => {
            let list = match form {
                VolumeForm::Json(v) => v
                    .iter()
                    .map(|w| word(df, inp, state, line, w))
                    .collect::<Result<Vec<_>>>()?,
                VolumeForm::Words(w) => words(df, inp, state, line, w)?,
            };
            if list.iter().any(|v| v.trim().is_empty()) {
                return Err(at(inp, line, "VOLUME names an empty path"));
            }
            for v in &list {
                state.set_in("Volumes", v, json!({}));
            }
            state.history(epoch, format!("VOLUME [{}]", list.join(" ")), true);
        }
        Instruction::Entrypoint(form) => {
            let v = command(state, form);
            let cmd_set = state.cmd_set;
            let rt = state.runtime();
            if v.is_empty() {
                rt.remove("Entrypoint");
            } else {
                rt.insert("Entrypoint".into(), json!(v));
            }
            // An inherited CMD makes no sense with a new ENTRYPOINT.
            if !cmd_set {
                rt.remove("Cmd");
            }
            state.history(epoch, format!("ENTRYPOINT {}", json!(v)), true);
        }
        Instruction::Cmd(form) => {
            let v = command(state, form);
            state.runtime().insert("Cmd".into(), json!(v));
            state.cmd_set = true;
            state.history(epoch, format!("CMD {}", json!(v)), true);
        }
        Instruction::StopSignal(s) => {
            let s = word(df, inp, state, line, s)?;
            state.runtime().insert("StopSignal".into(), json!(s));
            state.history(epoch, format!("STOPSIGNAL {s}"), true);
        }
        Instruction::Healthcheck(h) => {
            let value = match h {
                Healthcheck::None => json!({"Test": ["NONE"]}),
                Healthcheck::Check {
                    test,
                    durations,
                    retries,
                } => {
                    let test: Vec<String> = match test {
                        CommandForm::Exec(v) => {
                            let mut t = vec!["CMD".to_string()];
                            t.extend(v.iter().cloned());
                            t
                        }
                        CommandForm::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                    };
                    let mut o = json!({"Test": test});
                    for (flag, key) in [
                        ("interval", "Interval"),
                        ("timeout", "Timeout"),
                        ("start-period", "StartPeriod"),
                        ("start-interval", "StartInterval"),
                    ] {
                        if let Some(ns) = durations.get(flag).filter(|n| **n != 0) {
                            o[key] = json!(ns);
                        }
                    }
                    if let Some(r) = retries.filter(|r| *r != 0) {
                        o["Retries"] = json!(r);
                    }
                    o
                }
            };
            state.runtime().insert("Healthcheck".into(), value);
            state.history(
                epoch,
                format!("HEALTHCHECK {}", l.text.get(11..).unwrap_or("").trim()),
                true,
            );
        }
        Instruction::Shell(v) => {
            state.shell = v.clone();
            state.runtime().insert("Shell".into(), json!(v));
            state.history(epoch, format!("SHELL {}", json!(v)), true);
        }
        Instruction::Maintainer(m) => {
            state.config["author"] = json!(m);
            state.history(epoch, format!("MAINTAINER {m}"), true);
        }
        Instruction::Onbuild(t) => {
            let rt = state.runtime();
            match rt.get_mut("OnBuild").and_then(Value::as_array_mut) {
                Some(a) => a.push(json!(t)),
                None => {
                    rt.insert("OnBuild".into(), json!([t]));
                }
            }
            state.history(epoch, format!("ONBUILD {t}"), true);
        }
    }
    Ok(())
}

fn copy_layer(
    df: &Dockerfile,
    inp: &Inputs,
    state: &State,
    line: usize,
    spec: &CopySpec,
) -> Result<LayerSpec> {
    let kw = if spec.add { "ADD" } else { "COPY" };
    let mut sources = Vec::new();
    for s in &spec.sources {
        let s = word(df, inp, state, line, s)?;
        let lower = s.to_ascii_lowercase();
        if ["http://", "https://", "git@", "git://", "ssh://"]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            return Err(at(
                inp,
                line,
                format!(
                    "{kw} {s}: archgate does not download at build time (the content would be unpinned and the build would need the network); fetch it in a CI step, check its checksum, and {kw} the file from the build context"
                ),
            ));
        }
        if s.is_empty() {
            return Err(at(inp, line, format!("{kw}: a source expands to nothing")));
        }
        sources.push(s);
    }
    let raw_dest = word(df, inp, state, line, &spec.dest)?;
    if raw_dest.is_empty() {
        return Err(at(
            inp,
            line,
            format!("{kw}: the destination expands to nothing"),
        ));
    }
    let workdir = state.workdir();
    let dest_dir =
        raw_dest.ends_with('/') || raw_dest.ends_with("/.") || raw_dest == "." || sources.len() > 1;
    let dest = join(&workdir, &raw_dest);
    let (uid, gid) = match &spec.chown {
        None => (0, 0),
        Some(c) => {
            let c = word(df, inp, state, line, c)?;
            parse_chown(&c).ok_or_else(|| {
                at(inp, line, format!("{kw} --chown={c}: archgate does not read the base image's /etc/passwd; use numeric ids (--chown=1000:1000) or root"))
            })?
        }
    };
    let chmod = match &spec.chmod {
        None => None,
        Some(c) => {
            let c = word(df, inp, state, line, c)?;
            match u32::from_str_radix(&c, 8) {
                Ok(m) if m <= 0o7777 => Some(m),
                _ => {
                    return Err(at(
                        inp,
                        line,
                        format!("{kw} --chmod={c}: write an octal mode such as 755"),
                    ));
                }
            }
        }
    };
    Ok(LayerSpec {
        line,
        add: spec.add,
        sources,
        dest,
        dest_dir,
        uid,
        gid,
        chown: spec.chown.is_some(),
        chmod,
        from: None,
    })
}

/// `COPY --from=X`: an earlier stage by number or `AS` name, else an image.
fn copy_from(
    df: &Dockerfile,
    inp: &Inputs,
    scope: &Scope,
    state: &State,
    line: usize,
    from: &str,
) -> Result<CopyFrom> {
    let x = word(df, inp, state, line, from)?;
    if x.is_empty() {
        return Err(at(
            inp,
            line,
            format!("COPY --from={from} expands to nothing: pass it with --build-arg"),
        ));
    }
    if let Ok(n) = x.parse::<usize>() {
        if n >= scope.stage {
            return Err(at(
                inp,
                line,
                format!(
                    "COPY --from={x}: stage {x} is not an earlier stage (this is stage {}; stages are numbered from 0)",
                    scope.stage
                ),
            ));
        }
        return Ok(CopyFrom::Stage(n));
    }
    let named = |range: std::ops::Range<usize>| {
        range
            .clone()
            .rev()
            .find(|&i| scope.names[i].is_some_and(|a| a.eq_ignore_ascii_case(&x)))
    };
    if let Some(i) = named(0..scope.stage) {
        return Ok(CopyFrom::Stage(i));
    }
    if named(scope.stage..scope.names.len()).is_some() {
        return Err(at(
            inp,
            line,
            format!(
                "COPY --from={x}: stage {x} comes at or after this one; a stage copies only from stages above it"
            ),
        ));
    }
    Ok(CopyFrom::Image(x))
}

/// `80`, `80/udp`, `8000-8002/tcp` into `port/proto` keys.
fn expose_ports(p: &str) -> std::result::Result<Vec<String>, String> {
    let (ports, proto) = match p.split_once('/') {
        Some((a, b)) => (a, b.to_ascii_lowercase()),
        None => (p, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("EXPOSE {p}: protocol must be tcp, udp or sctp"));
    }
    let bad = || format!("EXPOSE {p}: not a port or port range");
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let n = ports.parse::<u16>().map_err(|_| bad())?;
            (n, n)
        }
    };
    if lo > hi {
        return Err(bad());
    }
    Ok((lo..=hi).map(|n| format!("{n}/{proto}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::dockerfile::parse;

    fn inputs<'a>(
        args: &'a BTreeMap<String, String>,
        target: &'a Platform,
        build: &'a Platform,
    ) -> Inputs<'a> {
        Inputs {
            file: "Dockerfile",
            build_args: args,
            target,
            build,
            epoch: 0,
        }
    }

    fn copies(p: &Plan) -> Vec<LayerSpec> {
        p.steps
            .iter()
            .filter_map(|s| match s {
                Step::Copy(l) => Some(l.clone()),
                Step::Run(_) => None,
            })
            .collect()
    }

    #[test]
    fn proxy_build_args_reach_run_without_arg_and_stay_out_of_history() {
        let df = parse("FROM b\nRUN apt-get update\n").unwrap();
        let target = Platform::parse("linux/amd64").unwrap();
        let args = BTreeMap::from([
            (
                "https_proxy".to_string(),
                "http://u:secret@proxy:3128".to_string(),
            ),
            ("NO_PROXY".to_string(), "10.0.0.5".to_string()),
            ("OTHER".to_string(), "x".to_string()),
        ]);
        let inp = inputs(&args, &target, &target);
        let p = apply(
            &df,
            &inp,
            last_stage(&df, &inp).unwrap(),
            json!({"config": {"Env": ["PATH=/bin"]}}),
        )
        .unwrap();
        let Some(Step::Run(run)) = p.steps.first() else {
            panic!("no RUN step: {:?}", p.steps)
        };
        assert_eq!(
            run.env,
            [
                "PATH=/bin",
                "NO_PROXY=10.0.0.5",
                "https_proxy=http://u:secret@proxy:3128"
            ],
            "proxies pass; other build args need an ARG"
        );
        let history = serde_json::to_string(&p.config["history"]).unwrap();
        assert!(
            !history.contains("secret") && !history.contains("NO_PROXY"),
            "{history}"
        );
    }

    #[test]
    fn run_gets_the_stage_env_args_workdir_user_and_shell() {
        let p = plan_for(
            "FROM b\nARG TARGETARCH\nARG A=1\nENV A=env B=2\nWORKDIR /w\nUSER 1000:1000\nRUN echo $TARGETARCH > x\nSHELL [\"/bin/bash\", \"-ec\"]\nRUN [\"/bin/true\", \"$A\"]\nRUN b\n",
            &["PATH=/bin"],
            "linux/arm64",
        )
        .unwrap();
        let runs: Vec<&RunSpec> = p
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Run(r) => Some(r),
                Step::Copy(_) => None,
            })
            .collect();
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[0].line, 7);
        assert_eq!(runs[0].argv, ["/bin/sh", "-c", "echo $TARGETARCH > x"]);
        assert_eq!(
            runs[0].env,
            ["PATH=/bin", "A=env", "B=2", "TARGETARCH=arm64"],
            "ENV wins over ARG; declared ARGs are variables"
        );
        assert_eq!(runs[0].workdir, "/w");
        assert_eq!(runs[0].user, "1000:1000");
        assert_eq!(
            runs[1].argv,
            ["/bin/true", "$A"],
            "exec form is not expanded"
        );
        assert_eq!(runs[2].argv, ["/bin/bash", "-ec", "b"]);
        let history = p.config["history"].as_array().unwrap();
        let run = history
            .iter()
            .find(|h| h["created_by"].as_str().unwrap().starts_with("RUN |1"))
            .unwrap();
        assert_eq!(
            run["created_by"],
            json!("RUN |1 TARGETARCH=arm64 /bin/sh -c echo $TARGETARCH > x # buildkit")
        );
        assert!(run.get("empty_layer").is_none());
    }

    fn plan_for(text: &str, base_env: &[&str], arch: &str) -> Result<Plan> {
        let df = parse(text)
            .map_err(|e| Error::Invalid(format!("Dockerfile:{}: {}", e.line, e.message)))?;
        let target = Platform::parse(arch).unwrap();
        let build = Platform::parse("linux/amd64").unwrap();
        let args = BTreeMap::from([("GREETING".to_string(), "hi".to_string())]);
        let inp = inputs(&args, &target, &build);
        let config = json!({"architecture": target.architecture, "os": "linux", "config": {"Env": base_env, "Cmd": ["bash"]}, "rootfs": {"type": "layers", "diff_ids": ["sha256:00"]}, "history": [{"created_by": "base"}]});
        apply(&df, &inp, last_stage(&df, &inp).unwrap(), config)
    }

    fn rt(p: &Plan, key: &str) -> Value {
        p.config["config"][key].clone()
    }

    const ISSUE: &str = "FROM --platform=$TARGETPLATFORM registry.internal:5000/debian:bullseye-multiv1\nARG TARGETARCH\nWORKDIR /opt\nADD jdk8-${TARGETARCH} ./jdk\nENV JAVA_HOME /opt/jdk\nENV PATH $PATH:$JAVA_HOME/bin:$JAVA_HOME/jre/bin\nENV LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$JAVA_HOME/bin:$JAVA_HOME/jre/bin\n";

    #[test]
    fn the_issue_dockerfile_per_platform() {
        for (arch, dir) in [
            ("linux/amd64", "jdk8-amd64"),
            ("linux/arm64", "jdk8-arm64"),
            ("linux/mips64le", "jdk8-mips64le"),
        ] {
            let p = plan_for(ISSUE, &[&format!("PATH={DEFAULT_PATH}")], arch).unwrap();
            assert_eq!(
                rt(&p, "Env"),
                json!([
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/jdk/bin:/opt/jdk/jre/bin",
                    "JAVA_HOME=/opt/jdk",
                    "LD_LIBRARY_PATH=:/opt/jdk/bin:/opt/jdk/jre/bin"
                ])
            );
            assert_eq!(rt(&p, "WorkingDir"), json!("/opt"));
            assert_eq!(copies(&p).len(), 1);
            assert_eq!(copies(&p)[0].sources, vec![dir.to_string()]);
            assert_eq!(copies(&p)[0].dest, "/opt/jdk");
            assert!(!copies(&p)[0].dest_dir);
            let history = p.config["history"].as_array().unwrap();
            assert_eq!(history.len(), 7);
            let empties: Vec<bool> = history[1..]
                .iter()
                .map(|h| h["empty_layer"] == json!(true))
                .collect();
            assert_eq!(empties, vec![true, true, false, true, true, true]);
            assert_eq!(
                history[3]["created_by"],
                json!(format!("ADD {dir} ./jdk # buildkit"))
            );
            assert_eq!(p.config["created"], json!("1970-01-01T00:00:00Z"));
        }
    }

    #[test]
    fn base_resolution_and_arg_scoping() {
        let target = Platform::parse("linux/arm64").unwrap();
        let build = Platform::parse("linux/amd64").unwrap();
        let args = BTreeMap::from([("TAG".to_string(), "v2".to_string())]);
        let inp = inputs(&args, &target, &build);
        let df = parse("ARG TAG=v1\nARG REPO=127.0.0.1:5000/base\nFROM ${REPO}:${TAG}\n").unwrap();
        assert_eq!(
            base(&df, &inp, last_stage(&df, &inp).unwrap()).unwrap(),
            Base::Image {
                reference: "127.0.0.1:5000/base:v2".into(),
                platform: target.clone(),
                line: 3
            }
        );
        let df = parse("FROM --platform=$BUILDPLATFORM b AS x\nFROM x\n").unwrap();
        assert_eq!(
            base(&df, &inp, last_stage(&df, &inp).unwrap()).unwrap(),
            Base::Image {
                reference: "b".into(),
                platform: build.clone(),
                line: 1
            }
        );
        let df = parse("FROM scratch\n").unwrap();
        assert_eq!(
            base(&df, &inp, last_stage(&df, &inp).unwrap()).unwrap(),
            Base::Scratch
        );
        // A global ARG is not visible in a stage until redeclared.
        let df = parse("ARG V=1\nFROM scratch\nENV A=$V\nARG V\nENV B=$V\nARG W=${V}2\nENV C=$W\n")
            .unwrap();
        let p = apply(
            &df,
            &inp,
            last_stage(&df, &inp).unwrap(),
            scratch_config(&target),
        )
        .unwrap();
        assert_eq!(
            p.config["config"]["Env"],
            json!([format!("PATH={DEFAULT_PATH}"), "A=", "B=1", "C=12"])
        );
        assert_eq!(p.config["architecture"], json!("arm64"));
        let err = base(&parse("FROM $NOPE\n").unwrap(), &inp, 0).unwrap_err();
        assert!(
            err.to_string()
                .contains("Dockerfile:1: FROM `$NOPE` expands to nothing"),
            "{err}"
        );
        let err = base(&parse("FROM --platform=linux/sparc x\n").unwrap(), &inp, 0).unwrap_err();
        assert!(
            err.to_string().starts_with("Dockerfile:1: FROM --platform"),
            "{err}"
        );
    }

    #[test]
    fn automatic_platform_args() {
        let p = plan_for(
            "FROM b\nARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT\nENV T=$TARGETPLATFORM/$TARGETOS/$TARGETARCH/${TARGETVARIANT:-none} B=$BUILDPLATFORM/$BUILDOS/$BUILDARCH/${BUILDVARIANT:-none}\n",
            &[],
            "linux/arm/v7",
        )
        .unwrap();
        assert_eq!(
            rt(&p, "Env"),
            json!([
                "T=linux/arm/v7/linux/arm/v7",
                "B=linux/amd64/linux/amd64/none"
            ])
        );
        // Not declared in the stage: not visible.
        let p = plan_for("FROM b\nENV T=${TARGETARCH:-unset}\n", &[], "linux/arm64").unwrap();
        assert_eq!(rt(&p, "Env"), json!(["T=unset"]));
    }

    #[test]
    fn config_instructions() {
        let p = plan_for(
            "FROM b\nARG GREETING=no\nENV A=1 B=$A\nENV A=2\nLABEL \"x y\"=\"$GREETING there\" z=1\nUSER 10:10\nEXPOSE 80 53/udp 8000-8001\nVOLUME /data \"/with space\"\nVOLUME [\"/j\"]\nSTOPSIGNAL SIGINT\nWORKDIR app\nWORKDIR ../srv/./x\nMAINTAINER me\nONBUILD COPY . /\n",
            &["A=0"],
            "linux/amd64",
        )
        .unwrap();
        assert_eq!(rt(&p, "Env"), json!(["A=2", "B=0"]));
        assert_eq!(rt(&p, "Labels"), json!({"x y": "hi there", "z": "1"}));
        assert_eq!(rt(&p, "User"), json!("10:10"));
        assert_eq!(
            rt(&p, "ExposedPorts"),
            json!({"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}})
        );
        assert_eq!(
            rt(&p, "Volumes"),
            json!({"/data": {}, "/with space": {}, "/j": {}})
        );
        assert_eq!(rt(&p, "StopSignal"), json!("SIGINT"));
        assert_eq!(rt(&p, "WorkingDir"), json!("/srv/x"));
        assert_eq!(rt(&p, "OnBuild"), json!(["COPY . /"]));
        assert_eq!(p.config["author"], json!("me"));
        assert!(p.steps.is_empty());
        assert!(
            p.config["history"].as_array().unwrap()[1..]
                .iter()
                .all(|h| h["empty_layer"] == json!(true))
        );
    }

    #[test]
    fn entrypoint_cmd_shell_healthcheck() {
        let p = plan_for("FROM b\nENTRYPOINT [\"/e\"]\n", &[], "linux/amd64").unwrap();
        assert_eq!(rt(&p, "Entrypoint"), json!(["/e"]));
        assert_eq!(
            rt(&p, "Cmd"),
            Value::Null,
            "an inherited CMD is dropped by ENTRYPOINT"
        );
        let p = plan_for("FROM b\nCMD x\nENTRYPOINT run $HOME\n", &[], "linux/amd64").unwrap();
        assert_eq!(rt(&p, "Entrypoint"), json!(["/bin/sh", "-c", "run $HOME"]));
        assert_eq!(rt(&p, "Cmd"), json!(["/bin/sh", "-c", "x"]));
        let p = plan_for("FROM b\nSHELL [\"/bin/bash\", \"-xc\"]\nCMD echo hi\nHEALTHCHECK --interval=5s --retries=2 CMD [\"/ok\"]\n", &[], "linux/amd64").unwrap();
        assert_eq!(rt(&p, "Cmd"), json!(["/bin/bash", "-xc", "echo hi"]));
        assert_eq!(rt(&p, "Shell"), json!(["/bin/bash", "-xc"]));
        assert_eq!(
            rt(&p, "Healthcheck"),
            json!({"Test": ["CMD", "/ok"], "Interval": 5_000_000_000i64, "Retries": 2})
        );
        let p = plan_for("FROM b\nHEALTHCHECK CMD curl x\n", &[], "linux/amd64").unwrap();
        assert_eq!(
            rt(&p, "Healthcheck"),
            json!({"Test": ["CMD-SHELL", "curl x"]})
        );
        let p = plan_for("FROM b\nHEALTHCHECK NONE\n", &[], "linux/amd64").unwrap();
        assert_eq!(rt(&p, "Healthcheck"), json!({"Test": ["NONE"]}));
    }

    #[test]
    fn copy_forms() {
        let p = plan_for(
            "FROM b\nWORKDIR /w\nCOPY a b ./\nCOPY --chown=1000 --chmod=640 f /etc/f\nADD x.tar.gz /\nCOPY --chown=root:7 d sub/\n",
            &[],
            "linux/amd64",
        )
        .unwrap();
        let l = &copies(&p);
        assert_eq!((l[0].dest.as_str(), l[0].dest_dir), ("/w", true));
        assert_eq!(
            (
                l[1].dest.as_str(),
                l[1].dest_dir,
                l[1].uid,
                l[1].gid,
                l[1].chmod
            ),
            ("/etc/f", false, 1000, 1000, Some(0o640))
        );
        assert!(l[2].add && l[2].dest_dir);
        assert_eq!((l[3].dest.as_str(), l[3].uid, l[3].gid), ("/w/sub", 0, 7));
        for (text, why) in [
            ("ADD https://example.com/x.tgz /", "does not download"),
            ("COPY --chown=app a /", "numeric ids"),
            ("COPY --chmod=999 a /", "octal"),
            ("COPY $EMPTY /x", "expands to nothing"),
            ("EXPOSE 99999", "not a port"),
            ("EXPOSE 80/icmp", "protocol"),
            ("ENV A=${NOPE:?required}", "NOPE: required"),
        ] {
            let err = plan_for(&format!("FROM b\n{text}\n"), &[], "linux/amd64")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(why) && err.starts_with("Dockerfile:2: "),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn copy_from_names_an_earlier_stage_by_name_or_number_else_an_image() {
        let df = parse(
            "FROM scratch AS build\nCOPY a /a\nFROM scratch AS Tools\nFROM scratch\nARG SRC=build\nCOPY --from=build /a /x\nCOPY --from=1 /t /y\nCOPY --from=tools /t /z\nCOPY --from=${SRC} /a /w\nCOPY --from=oci:/l:v1 /b /v\n",
        )
        .unwrap();
        let t = Platform::parse("linux/amd64").unwrap();
        let args = BTreeMap::new();
        let inp = inputs(&args, &t, &t);
        let p = apply(&df, &inp, 1, scratch_config(&t)).unwrap();
        assert!(p.steps.is_empty(), "stage 1 has no steps of its own");
        let p = apply(
            &df,
            &inp,
            last_stage(&df, &inp).unwrap(),
            scratch_config(&t),
        )
        .unwrap();
        assert!(p.copies_from() && !p.runs());
        let froms: Vec<Option<CopyFrom>> = p
            .steps
            .iter()
            .map(|s| match s {
                Step::Copy(c) => c.from.clone(),
                Step::Run(_) => None,
            })
            .collect();
        assert_eq!(
            froms,
            vec![
                Some(CopyFrom::Stage(0)),
                Some(CopyFrom::Stage(1)),
                Some(CopyFrom::Stage(1)),
                Some(CopyFrom::Stage(0)),
                Some(CopyFrom::Image("oci:/l:v1".into())),
            ]
        );
        // Only earlier stages: by number or by name.
        for (text, want) in [
            (
                "FROM scratch\nCOPY --from=0 /a /b\n",
                "not an earlier stage",
            ),
            (
                "FROM scratch\nCOPY --from=later /a /b\nFROM scratch AS later\n",
                "comes at or after this one",
            ),
        ] {
            let df = parse(text).unwrap();
            let err = apply(&df, &inp, 0, scratch_config(&t)).unwrap_err();
            assert!(err.to_string().contains(want), "{text}: {err}");
            assert!(err.to_string().starts_with("Dockerfile:2:"), "{err}");
        }
    }

    #[test]
    fn onbuild_in_base_is_refused() {
        let df = parse("FROM b\n").unwrap();
        let t = Platform::parse("linux/amd64").unwrap();
        let args = BTreeMap::new();
        let err = apply(
            &df,
            &inputs(&args, &t, &t),
            0,
            json!({"config": {"OnBuild": ["RUN x"]}}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("ONBUILD"), "{err}");
        // Hostile configs are errors, not panics.
        for bad in [
            json!([]),
            json!("x"),
            json!({"config": "x"}),
            json!({"history": 3}),
            json!({"rootfs": {"diff_ids": "no"}}),
        ] {
            let err = apply(
                &df,
                &inputs(&args, &t, &t),
                last_stage(&df, &inputs(&args, &t, &t)).unwrap(),
                bad,
            )
            .unwrap_err();
            assert!(err.to_string().contains("not an image config"), "{err}");
        }
    }

    /// Property: any Dockerfile the parser accepts plans to a value or an
    /// error naming `Dockerfile:LINE`, never a panic; generated from pieces.
    #[test]
    fn total_on_generated_dockerfiles() {
        let pieces = [
            "ARG A=${B:-x}\n",
            "ARG B\n",
            "ENV A=$A:${A:+y} B=\"$B\"\n",
            "ENV P $PATH:/x\n",
            "WORKDIR ${A}/..\n",
            "WORKDIR\trel\n",
            "LABEL \"k $A\"=v\n",
            "USER $A\n",
            "EXPOSE ${P:-80}/udp\n",
            "VOLUME [\"$A\"]\n",
            "VOLUME $B\n",
            "CMD x\n",
            "ENTRYPOINT [\"a\"]\n",
            "SHELL [\"/bin/bash\"]\n",
            "HEALTHCHECK NONE\n",
            "STOPSIGNAL ${A:?x}\n",
            "COPY --chown=$A a b/\n",
            "ADD x ${A}\n",
            "FROM scratch AS s\n",
            "FROM s\n",
            "ONBUILD ENV A=1\n",
            "MAINTAINER $A\n",
        ];
        let t = Platform::parse("linux/arm64").unwrap();
        let args = BTreeMap::new();
        let inp = inputs(&args, &t, &t);
        let mut seed: u64 = 0x853c49e6748fea9b;
        for _ in 0..3000 {
            let mut text = String::from("FROM scratch\n");
            for _ in 0..(seed % 9) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            let Ok(df) = parse(&text) else { continue };
            if let Err(e) = last_stage(&df, &inp).and_then(|n| {
                base(&df, &inp, n).and_then(|_| apply(&df, &inp, n, scratch_config(&t)))
            }) {
                assert!(e.to_string().starts_with("Dockerfile:"), "{text}: {e}");
            }
        }
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
