//! The Dockerfile parser: parser directives (`# syntax=`, `# escape=`),
//! comments, line continuations, and every instruction that needs no
//! execution, into typed [`Instruction`]s with their line numbers.
//!
//! Words are kept unexpanded here: substitution depends on the platform and
//! on the stage's environment, so it happens in `plan`. `RUN` is parsed (its
//! command in exec or shell form; `build::run` executes it); heredocs and
//! `RUN --mount`/`--network`/`--security` flags are refused with the file and
//! line, pointing to the buildx driver. Total: any input gives a value or an
//! error, never a panic.

use std::collections::BTreeMap;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// The escape character (`\`, or `` ` `` with `# escape=`).
    pub escape: char,
    /// The `# syntax=` directive, when given (recorded, not interpreted).
    pub syntax: Option<String>,
    pub instructions: Vec<Line>,
}

/// One instruction and the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub line: usize,
    /// The instruction as written, continuations joined (for history `created_by`).
    pub text: String,
    pub instruction: Instruction,
}

/// `CMD`, `ENTRYPOINT`, `HEALTHCHECK CMD` and `SHELL` arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandForm {
    /// `["a", "b"]`: used as is.
    Exec(Vec<String>),
    /// `a b`: run through the stage's `SHELL`.
    Shell(String),
}

/// `ADD` or `COPY`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CopySpec {
    pub add: bool,
    /// Sources then destination, unexpanded.
    pub sources: Vec<String>,
    pub dest: String,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    /// `COPY --from=STAGE|IMAGE` (unexpanded): copy out of an earlier stage
    /// (its name or number) or an image instead of the build context.
    pub from: Option<String>,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq)]
pub enum Healthcheck {
    None,
    Check {
        test: CommandForm,
        /// `--interval`, `--timeout`, `--start-period`, `--start-interval`, in nanoseconds.
        durations: BTreeMap<String, i64>,
        retries: Option<i64>,
    },
}

/// The instructions archgate builds.
#[derive(Debug, Clone, PartialEq)]
pub enum Instruction {
    From {
        image: String,
        platform: Option<String>,
        alias: Option<String>,
    },
    /// `ARG NAME[=default] ...`.
    Arg(Vec<(String, Option<String>)>),
    /// `ENV k=v ...` or `ENV k v` (value unexpanded).
    Env(Vec<(String, String)>),
    Workdir(String),
    Copy(CopySpec),
    Label(Vec<(String, String)>),
    User(String),
    Expose(String),
    Volume(VolumeForm),
    Entrypoint(CommandForm),
    Cmd(CommandForm),
    StopSignal(String),
    Healthcheck(Healthcheck),
    Shell(Vec<String>),
    Maintainer(String),
    Onbuild(String),
    /// `RUN ["a", "b"]` or `RUN a b` (through `SHELL`), words unexpanded.
    Run(CommandForm),
}

/// `VOLUME ["/a"]` or `VOLUME /a /b`.
#[derive(Debug, Clone, PartialEq)]
pub enum VolumeForm {
    Json(Vec<String>),
    Words(String),
}

/// A parse error: the line and what is wrong (the caller adds the file name).
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        message: message.into(),
    })
}

/// The hint every refusal of what the native builder cannot do carries.
pub const BUILDX_HINT: &str = "archgate's native builder does not do this; build this Dockerfile with the buildx driver (`[build] driver = \"buildx\"`, docker buildx), or move the step into a base image";

/// Parses a Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    // A NUL byte cannot reach a process environment or a path: the file is
    // not a text Dockerfile (or was corrupted on the way).
    if let Some(n) = lines.iter().position(|l| l.contains('\0')) {
        return err(
            n + 1,
            "contains a NUL byte; a Dockerfile is text (was it saved in UTF-16 or corrupted?)",
        );
    }
    let mut escape = '\\';
    let mut syntax = None;
    let mut i = 0;
    // Parser directives: `# key=value` lines at the very top.
    while let Some(raw) = lines.get(i) {
        let Some(rest) = raw.trim_start().strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            break;
        }
        match key.as_str() {
            "escape" => {
                escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return err(
                            i + 1,
                            format!("invalid escape directive `{value}`: use `\\` or `` ` ``"),
                        );
                    }
                }
            }
            "syntax" => syntax = Some(value.to_string()),
            "check" => {}
            _ => break,
        }
        i += 1;
    }

    let mut instructions = Vec::new();
    while i < lines.len() {
        let start = i;
        let first = lines[i];
        i += 1;
        let trimmed = first.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut joined = String::new();
        let mut current = first.trim_start().to_string();
        loop {
            let t = current.trim_end();
            if let Some(body) = t.strip_suffix(escape) {
                joined.push_str(body);
                // Continuation: skip comment and empty lines, as Docker does.
                let mut next = None;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let lt = l.trim();
                    if lt.is_empty() || lt.starts_with('#') {
                        continue;
                    }
                    next = Some(l.to_string());
                    break;
                }
                match next {
                    Some(n) => current = n,
                    None => break,
                }
            } else {
                joined.push_str(t);
                break;
            }
        }
        let line = start + 1;
        let instruction = parse_instruction(&joined, line, escape)?;
        instructions.push(Line {
            line,
            text: joined.trim().to_string(),
            instruction,
        });
    }
    if !matches!(
        instructions.first().map(|l| &l.instruction),
        Some(Instruction::From { .. }) | Some(Instruction::Arg(_))
    ) {
        return err(
            instructions.first().map(|l| l.line).unwrap_or(1),
            "a Dockerfile must start with FROM (only ARG may come before it)",
        );
    }
    if !instructions
        .iter()
        .any(|l| matches!(l.instruction, Instruction::From { .. }))
    {
        return err(1, "no FROM instruction");
    }
    Ok(Dockerfile {
        escape,
        syntax,
        instructions,
    })
}

/// Splits `--name=value` flags off the front of an instruction's arguments.
/// `--name[=value]` flags, lower-cased names.
type Flags = Vec<(String, Option<String>)>;

fn flags(mut rest: &str, line: usize) -> Result<(Flags, &str), ParseError> {
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start();
        let Some(flag) = rest.strip_prefix("--") else {
            return Ok((out, rest));
        };
        let end = flag.find(char::is_whitespace).unwrap_or(flag.len());
        let word = &flag[..end];
        if word.is_empty() {
            return err(line, "empty flag `--`");
        }
        match word.split_once('=') {
            Some((k, v)) => out.push((k.to_ascii_lowercase(), Some(v.to_string()))),
            None => out.push((word.to_ascii_lowercase(), None)),
        }
        rest = &flag[end..];
    }
}

fn no_flags(f: &[(String, Option<String>)], keyword: &str, line: usize) -> Result<(), ParseError> {
    match f.first() {
        Some((k, _)) => err(line, format!("{keyword} takes no flag `--{k}`")),
        None => Ok(()),
    }
}

fn parse_instruction(text: &str, line: usize, escape: char) -> Result<Instruction, ParseError> {
    let text = text.trim();
    let (keyword, rest) = match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim_start()),
        None => (text, ""),
    };
    let kw = keyword.to_ascii_uppercase();
    if rest.contains("<<")
        && matches!(kw.as_str(), "RUN" | "COPY" | "ADD")
        && let Some(pos) = rest.find("<<")
    {
        let after = &rest[pos + 2..];
        if after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '-' || c == '"' || c == '\'')
        {
            return err(
                line,
                "heredocs (`<<`) are not supported by archgate's builder: put the content in a file of the build context and COPY it, or use `[build] driver = \"buildx\"`",
            );
        }
    }
    let (f, rest) = flags(rest, line)?;
    let need_args = |what: &str| -> Result<(), ParseError> {
        if rest.trim().is_empty() {
            err(line, format!("{kw} needs {what}"))
        } else {
            Ok(())
        }
    };
    match kw.as_str() {
        "FROM" => {
            let mut platform = None;
            for (k, v) in &f {
                match (k.as_str(), v) {
                    ("platform", Some(v)) => platform = Some(v.clone()),
                    _ => return err(line, format!("FROM takes `--platform=...`, not `--{k}`")),
                }
            }
            need_args("an image (or `scratch`)")?;
            let words: Vec<&str> = rest.split_whitespace().collect();
            match words.as_slice() {
                [image] => Ok(Instruction::From {
                    image: image.to_string(),
                    platform,
                    alias: None,
                }),
                [image, as_, alias] if as_.eq_ignore_ascii_case("as") => Ok(Instruction::From {
                    image: image.to_string(),
                    platform,
                    alias: Some(alias.to_ascii_lowercase()),
                }),
                _ => err(line, "FROM takes `IMAGE [AS NAME]`"),
            }
        }
        "ARG" => {
            no_flags(&f, "ARG", line)?;
            need_args("a name")?;
            let mut out = Vec::new();
            for word in split_raw_words(rest, escape) {
                let (name, default) = match word.split_once('=') {
                    Some((n, d)) => (n.to_string(), Some(d.to_string())),
                    None => (word.clone(), None),
                };
                if !valid_name(&name) {
                    return err(line, format!("ARG name `{name}` is not a valid name"));
                }
                out.push((name, default));
            }
            Ok(Instruction::Arg(out))
        }
        "ENV" | "LABEL" => {
            no_flags(&f, &kw, line)?;
            need_args("`KEY=VALUE`")?;
            let pairs = name_values(rest, escape, kw == "ENV", line, &kw)?;
            Ok(if kw == "ENV" {
                Instruction::Env(pairs)
            } else {
                Instruction::Label(pairs)
            })
        }
        "WORKDIR" | "USER" | "STOPSIGNAL" | "MAINTAINER" | "EXPOSE" | "ONBUILD" => {
            no_flags(&f, &kw, line)?;
            need_args("an argument")?;
            let r = rest.trim().to_string();
            Ok(match kw.as_str() {
                "WORKDIR" => Instruction::Workdir(r),
                "USER" => Instruction::User(r),
                "STOPSIGNAL" => Instruction::StopSignal(r),
                "MAINTAINER" => Instruction::Maintainer(r),
                "EXPOSE" => Instruction::Expose(r),
                _ => {
                    let inner = r
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    if matches!(inner.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                        return err(line, format!("ONBUILD {inner} is not allowed"));
                    }
                    Instruction::Onbuild(r)
                }
            })
        }
        "VOLUME" => {
            no_flags(&f, "VOLUME", line)?;
            need_args("a path")?;
            Ok(Instruction::Volume(match json_array(rest) {
                Some(v) => VolumeForm::Json(v),
                None => VolumeForm::Words(rest.to_string()),
            }))
        }
        "ENTRYPOINT" | "CMD" => {
            no_flags(&f, &kw, line)?;
            let form = command_form(rest);
            Ok(if kw == "CMD" {
                Instruction::Cmd(form)
            } else {
                Instruction::Entrypoint(form)
            })
        }
        "SHELL" => {
            no_flags(&f, "SHELL", line)?;
            match json_array(rest) {
                Some(v) if !v.is_empty() => Ok(Instruction::Shell(v)),
                _ => err(
                    line,
                    "SHELL takes a JSON array, e.g. SHELL [\"/bin/bash\", \"-c\"]",
                ),
            }
        }
        "HEALTHCHECK" => healthcheck(&f, rest, line),
        "ADD" | "COPY" => {
            let mut spec = CopySpec {
                add: kw == "ADD",
                ..Default::default()
            };
            for (k, v) in &f {
                match (k.as_str(), v) {
                    ("chown", Some(v)) => spec.chown = Some(v.clone()),
                    ("chmod", Some(v)) => spec.chmod = Some(v.clone()),
                    ("link", None) => spec.link = true,
                    ("link", Some(v)) => spec.link = v != "false",
                    ("from", Some(v)) if kw == "COPY" && !v.is_empty() => {
                        spec.from = Some(v.clone());
                    }
                    ("from", _) => {
                        return err(
                            line,
                            format!(
                                "{kw} --from needs a stage name, a stage number or an image (COPY --from=build /out /app); ADD takes no --from"
                            ),
                        );
                    }
                    ("keep-git-dir" | "checksum" | "exclude" | "parents", _) => {
                        return err(
                            line,
                            format!("{kw} --{k} is not supported by archgate's builder"),
                        );
                    }
                    _ => {
                        return err(
                            line,
                            format!(
                                "{kw} takes --from (COPY), --chown, --chmod and --link, not `--{k}`"
                            ),
                        );
                    }
                }
            }
            let words = match json_array(rest) {
                Some(v) => v,
                None => split_raw_words(rest, escape),
            };
            if words.len() < 2 {
                return err(
                    line,
                    format!("{kw} needs at least one source and a destination"),
                );
            }
            let (dest, sources) = words.split_last().expect("len >= 2");
            spec.dest = dest.clone();
            spec.sources = sources.to_vec();
            Ok(Instruction::Copy(spec))
        }
        "RUN" => {
            if let Some((k, _)) = f.first() {
                return err(
                    line,
                    format!("RUN --{k} is not supported by archgate's builder: {BUILDX_HINT}"),
                );
            }
            need_args("a command")?;
            Ok(Instruction::Run(command_form(rest)))
        }
        _ => err(line, format!("unknown instruction `{keyword}`")),
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Splits on unquoted, unescaped whitespace, keeping quotes and escapes in
/// the words (substitution removes them later), as Docker's `parseWords`.
fn split_raw_words(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            word.push(c);
            escaped = false;
            continue;
        }
        if c == escape && quote != Some('\'') {
            escaped = true;
            word.push(c);
            continue;
        }
        match quote {
            Some(q) if c == q => {
                quote = None;
                word.push(c);
            }
            Some(_) => word.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                word.push(c);
            }
            None if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            None => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// `KEY=VALUE ...`, or (ENV and LABEL legacy) `KEY VALUE` with the rest of the line as value.
fn name_values(
    rest: &str,
    escape: char,
    is_env: bool,
    line: usize,
    kw: &str,
) -> Result<Vec<(String, String)>, ParseError> {
    let words = split_raw_words(rest, escape);
    let first_has_eq = words.first().is_some_and(|w| w.contains('='));
    if !first_has_eq {
        // Legacy form: one pair, the value is the rest of the line.
        let rest = rest.trim();
        let (name, value) = match rest.find(char::is_whitespace) {
            Some(i) => (&rest[..i], rest[i..].trim()),
            None => {
                return err(
                    line,
                    format!("{kw} {rest}: missing a value (write `{kw} {rest}=VALUE`)"),
                );
            }
        };
        return Ok(vec![(name.to_string(), value.to_string())]);
    }
    let mut out = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return err(
                line,
                format!(
                    "{kw}: `{w}` is not KEY=VALUE (mixing `KEY VALUE` and `KEY=VALUE` is not allowed)"
                ),
            );
        };
        if k.is_empty() {
            return err(line, format!("{kw}: `{w}` has an empty name"));
        }
        if is_env && k.chars().any(char::is_whitespace) {
            return err(line, format!("ENV name `{k}` contains whitespace"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// A JSON array of strings, when `s` is one (else the shell form applies).
fn json_array(s: &str) -> Option<Vec<String>> {
    let t = s.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

fn command_form(rest: &str) -> CommandForm {
    match json_array(rest) {
        Some(v) => CommandForm::Exec(v),
        None => CommandForm::Shell(rest.trim().to_string()),
    }
}

/// Go duration syntax as HEALTHCHECK takes it (`30s`, `1m30s`, `500ms`), in nanoseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    if total > i64::MAX as f64 {
        return None;
    }
    Some(total as i64)
}

fn healthcheck(
    f: &[(String, Option<String>)],
    rest: &str,
    line: usize,
) -> Result<Instruction, ParseError> {
    let rest = rest.trim();
    let (word, args) = match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim()),
        None => (rest, ""),
    };
    match word.to_ascii_uppercase().as_str() {
        "NONE" => {
            if !f.is_empty() || !args.is_empty() {
                return err(line, "HEALTHCHECK NONE takes no flags or arguments");
            }
            Ok(Instruction::Healthcheck(Healthcheck::None))
        }
        "CMD" => {
            if args.is_empty() {
                return err(line, "HEALTHCHECK CMD needs a command");
            }
            let mut durations = BTreeMap::new();
            let mut retries = None;
            for (k, v) in f {
                let Some(v) = v else {
                    return err(line, format!("HEALTHCHECK --{k} needs a value"));
                };
                match k.as_str() {
                    "interval" | "timeout" | "start-period" | "start-interval" => {
                        let Some(ns) = parse_duration(v) else {
                            return err(
                                line,
                                format!(
                                    "HEALTHCHECK --{k}={v}: not a duration (write e.g. 30s, 1m30s)"
                                ),
                            );
                        };
                        durations.insert(k.clone(), ns);
                    }
                    "retries" => match v.parse::<i64>() {
                        Ok(n) if n >= 0 => retries = Some(n),
                        _ => return err(line, format!("HEALTHCHECK --retries={v}: not a count")),
                    },
                    _ => {
                        return err(
                            line,
                            format!(
                                "HEALTHCHECK takes --interval, --timeout, --start-period, --start-interval, --retries, not `--{k}`"
                            ),
                        );
                    }
                }
            }
            Ok(Instruction::Healthcheck(Healthcheck::Check {
                test: command_form(args),
                durations,
                retries,
            }))
        }
        _ => err(line, "HEALTHCHECK takes `NONE` or `[OPTIONS] CMD command`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Instruction {
        let df =
            parse(&format!("FROM scratch\n{text}\n")).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        df.instructions[1].instruction.clone()
    }

    fn fails(text: &str) -> ParseError {
        parse(text).unwrap_err()
    }

    #[test]
    fn the_issue_dockerfile() {
        let df = parse(
            "FROM --platform=$TARGETPLATFORM registry.internal:5000/debian:bullseye-multiv1\nARG TARGETARCH\nWORKDIR /opt\nADD jdk8-${TARGETARCH} ./jdk\nENV JAVA_HOME /opt/jdk\nENV PATH $PATH:$JAVA_HOME/bin:$JAVA_HOME/jre/bin\nENV LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$JAVA_HOME/bin:$JAVA_HOME/jre/bin\n",
        )
        .unwrap();
        assert_eq!(df.instructions.len(), 7);
        assert_eq!(
            df.instructions[0].instruction,
            Instruction::From {
                image: "registry.internal:5000/debian:bullseye-multiv1".into(),
                platform: Some("$TARGETPLATFORM".into()),
                alias: None
            }
        );
        assert_eq!(
            df.instructions[4].instruction,
            Instruction::Env(vec![("JAVA_HOME".into(), "/opt/jdk".into())])
        );
        assert_eq!(df.instructions[6].line, 7);
    }

    #[test]
    fn every_instruction() {
        assert_eq!(
            one("ARG A B=2 C=\"x y\""),
            Instruction::Arg(vec![
                ("A".into(), None),
                ("B".into(), Some("2".into())),
                ("C".into(), Some("\"x y\"".into()))
            ])
        );
        assert_eq!(
            one("ENV A=1 B=\"two words\""),
            Instruction::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "\"two words\"".into())
            ])
        );
        assert_eq!(
            one("ENV A  two words "),
            Instruction::Env(vec![("A".into(), "two words".into())])
        );
        assert_eq!(
            one("LABEL a=b \"c d\"=e"),
            Instruction::Label(vec![
                ("a".into(), "b".into()),
                ("\"c d\"".into(), "e".into())
            ])
        );
        assert_eq!(one("WORKDIR /opt"), Instruction::Workdir("/opt".into()));
        assert_eq!(one("USER 1000:1000"), Instruction::User("1000:1000".into()));
        assert_eq!(
            one("EXPOSE 80 53/udp"),
            Instruction::Expose("80 53/udp".into())
        );
        assert_eq!(
            one("VOLUME [\"/data\"]"),
            Instruction::Volume(VolumeForm::Json(vec!["/data".into()]))
        );
        assert_eq!(
            one("VOLUME /a /b"),
            Instruction::Volume(VolumeForm::Words("/a /b".into()))
        );
        assert_eq!(
            one("CMD [\"java\", \"-version\"]"),
            Instruction::Cmd(CommandForm::Exec(vec!["java".into(), "-version".into()]))
        );
        assert_eq!(
            one("CMD java -version"),
            Instruction::Cmd(CommandForm::Shell("java -version".into()))
        );
        assert_eq!(
            one("CMD [\"broken\""),
            Instruction::Cmd(CommandForm::Shell("[\"broken\"".into()))
        );
        assert_eq!(
            one("ENTRYPOINT [\"/e\"]"),
            Instruction::Entrypoint(CommandForm::Exec(vec!["/e".into()]))
        );
        assert_eq!(
            one("STOPSIGNAL SIGTERM"),
            Instruction::StopSignal("SIGTERM".into())
        );
        assert_eq!(
            one("SHELL [\"/bin/bash\", \"-c\"]"),
            Instruction::Shell(vec!["/bin/bash".into(), "-c".into()])
        );
        assert_eq!(one("MAINTAINER me"), Instruction::Maintainer("me".into()));
        assert_eq!(
            one("ONBUILD COPY . /app"),
            Instruction::Onbuild("COPY . /app".into())
        );
        assert_eq!(
            one("HEALTHCHECK NONE"),
            Instruction::Healthcheck(Healthcheck::None)
        );
        let Instruction::Healthcheck(Healthcheck::Check {
            test,
            durations,
            retries,
        }) = one("HEALTHCHECK --interval=1m30s --timeout=500ms --retries=3 CMD curl -f http://x/")
        else {
            panic!("not a check")
        };
        assert_eq!(test, CommandForm::Shell("curl -f http://x/".into()));
        assert_eq!(durations["interval"], 90_000_000_000);
        assert_eq!(durations["timeout"], 500_000_000);
        assert_eq!(retries, Some(3));
        assert_eq!(
            one("COPY --chown=1:2 --chmod=755 a b /dst/"),
            Instruction::Copy(CopySpec {
                add: false,
                sources: vec!["a".into(), "b".into()],
                dest: "/dst/".into(),
                chown: Some("1:2".into()),
                chmod: Some("755".into()),
                link: false,
                from: None,
            })
        );
        assert_eq!(
            one("COPY --from=build --chown=10 /out/ /app/"),
            Instruction::Copy(CopySpec {
                add: false,
                sources: vec!["/out/".into()],
                dest: "/app/".into(),
                chown: Some("10".into()),
                chmod: None,
                link: false,
                from: Some("build".into()),
            })
        );
        assert_eq!(
            one("ADD [\"a b\", \"/d\"]"),
            Instruction::Copy(CopySpec {
                add: true,
                sources: vec!["a b".into()],
                dest: "/d".into(),
                ..Default::default()
            })
        );
        assert_eq!(
            one("from --platform=linux/arm64 base AS Build"),
            Instruction::From {
                image: "base".into(),
                platform: Some("linux/arm64".into()),
                alias: Some("build".into())
            }
        );
    }

    #[test]
    fn directives_comments_continuations() {
        let df = parse("# syntax=docker/dockerfile:1\n# escape=`\n\n# a comment\nFROM scratch\nENV A=1 `\n  # inside\n\n  B=2\nLABEL x=y\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(
            df.instructions[1].instruction,
            Instruction::Env(vec![("A".into(), "1".into()), ("B".into(), "2".into())])
        );
        assert_eq!(df.instructions[1].line, 6);
        assert_eq!(df.instructions[2].line, 10);
        // A directive after a comment is a comment.
        let df = parse("# hello\n# escape=`\nFROM scratch\n").unwrap();
        assert_eq!(df.escape, '\\');
        // Backslash continuation with a trailing escape on the last line.
        let df = parse("FROM scratch\nENV A=1 \\\n").unwrap();
        assert_eq!(
            df.instructions[1].instruction,
            Instruction::Env(vec![("A".into(), "1".into())])
        );
    }

    #[test]
    fn run_in_shell_and_exec_form() {
        let df = parse("FROM b\nRUN echo $A \\\n  && id -u\nRUN [\"/bin/sh\", \"-c\", \"x\"]\n")
            .unwrap();
        assert_eq!(
            df.instructions[1].instruction,
            Instruction::Run(CommandForm::Shell("echo $A   && id -u".into()))
        );
        assert_eq!(
            df.instructions[2].instruction,
            Instruction::Run(CommandForm::Exec(vec![
                "/bin/sh".into(),
                "-c".into(),
                "x".into()
            ]))
        );
        assert_eq!(df.instructions[2].line, 4);
        assert!(
            fails("FROM b\nRUN\n")
                .message
                .contains("RUN needs a command")
        );
    }

    #[test]
    fn refusals_name_the_line() {
        let e = fails("FROM scratch\n\nRUN --mount=type=secret,id=k cat /run/secrets/k\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("RUN --mount"), "{}", e.message);
        assert!(e.message.contains("buildx"), "{}", e.message);
        let e = fails("FROM scratch\nCOPY <<EOF /x\nhi\nEOF\n");
        assert!(e.message.contains("heredoc"), "{}", e.message);
        assert!(
            fails("FROM scratch\nADD --from=build /a /b\n")
                .message
                .contains("ADD takes no --from")
        );
        assert!(
            fails("FROM scratch\nCOPY --from= /a /b\n")
                .message
                .contains("stage name")
        );
        assert!(
            fails("ENV A=1\nFROM scratch\n")
                .message
                .contains("must start with FROM")
        );
        assert!(fails("ARG A\n").message.contains("no FROM"));
        assert!(
            fails("FROM scratch\nBOGUS x\n")
                .message
                .contains("unknown instruction")
        );
        assert!(
            fails("FROM scratch\nENV A\n")
                .message
                .contains("missing a value")
        );
        assert!(
            fails("FROM scratch\nENV A=1 B 2\n")
                .message
                .contains("KEY=VALUE")
        );
        assert!(
            fails("FROM scratch\nSHELL /bin/sh\n")
                .message
                .contains("JSON")
        );
        assert!(
            fails("FROM scratch\nCOPY onlyone\n")
                .message
                .contains("destination")
        );
        assert!(
            fails("FROM scratch\nHEALTHCHECK --interval=soon CMD x\n")
                .message
                .contains("duration")
        );
        assert!(fails("FROM a b c d\n").message.contains("AS NAME"));
        assert!(
            fails("# escape=x\nFROM scratch\n")
                .message
                .contains("escape")
        );
        assert!(
            fails("FROM scratch\nARG 1A\n")
                .message
                .contains("valid name")
        );
    }

    #[test]
    fn durations() {
        for (s, ns) in [
            ("30s", 30_000_000_000),
            ("1m30s", 90_000_000_000),
            ("1.5s", 1_500_000_000),
            ("0", 0),
            ("2h", 7_200_000_000_000),
        ] {
            assert_eq!(parse_duration(s), Some(ns), "{s}");
        }
        for s in ["", "s", "10", "10x", "-1s"] {
            assert_eq!(parse_duration(s), None, "{s}");
        }
    }

    // -----------------------------------------------------------------------
    // Properties (proptest): the parser is total, every error names a line
    // of the input, and a generated valid Dockerfile parses back to exactly
    // the instructions it was rendered from, at the lines they were put on.

    use proptest::prelude::*;

    /// Renders one instruction in the plain form `parse` must read back.
    fn render(i: &Instruction) -> String {
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap();
        let form = |f: &CommandForm| match f {
            CommandForm::Exec(v) => json(v),
            CommandForm::Shell(s) => s.clone(),
        };
        let pairs = |p: &[(String, String)]| {
            p.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        match i {
            Instruction::From {
                image,
                platform,
                alias,
            } => {
                let platform = platform
                    .as_ref()
                    .map(|p| format!("--platform={p} "))
                    .unwrap_or_default();
                let alias = alias
                    .as_ref()
                    .map(|a| format!(" AS {a}"))
                    .unwrap_or_default();
                format!("FROM {platform}{image}{alias}")
            }
            Instruction::Arg(args) => {
                let words: Vec<String> = args
                    .iter()
                    .map(|(n, d)| match d {
                        Some(d) => format!("{n}={d}"),
                        None => n.clone(),
                    })
                    .collect();
                format!("ARG {}", words.join(" "))
            }
            Instruction::Env(p) => format!("ENV {}", pairs(p)),
            Instruction::Label(p) => format!("LABEL {}", pairs(p)),
            Instruction::Workdir(s) => format!("WORKDIR {s}"),
            Instruction::User(s) => format!("USER {s}"),
            Instruction::Expose(s) => format!("EXPOSE {s}"),
            Instruction::StopSignal(s) => format!("STOPSIGNAL {s}"),
            Instruction::Maintainer(s) => format!("MAINTAINER {s}"),
            Instruction::Onbuild(s) => format!("ONBUILD {s}"),
            Instruction::Volume(VolumeForm::Json(v)) => format!("VOLUME {}", json(v)),
            Instruction::Volume(VolumeForm::Words(s)) => format!("VOLUME {s}"),
            Instruction::Entrypoint(f) => format!("ENTRYPOINT {}", form(f)),
            Instruction::Cmd(f) => format!("CMD {}", form(f)),
            Instruction::Run(f) => format!("RUN {}", form(f)),
            Instruction::Shell(v) => format!("SHELL {}", json(v)),
            Instruction::Healthcheck(Healthcheck::None) => "HEALTHCHECK NONE".into(),
            Instruction::Healthcheck(Healthcheck::Check {
                test,
                durations,
                retries,
            }) => {
                let mut s = "HEALTHCHECK".to_string();
                for (k, ns) in durations {
                    s += &format!(" --{k}={}s", ns / 1_000_000_000);
                }
                if let Some(r) = retries {
                    s += &format!(" --retries={r}");
                }
                format!("{s} CMD {}", form(test))
            }
            Instruction::Copy(c) => {
                let mut s = if c.add { "ADD" } else { "COPY" }.to_string();
                if let Some(f) = &c.from {
                    s += &format!(" --from={f}");
                }
                if let Some(o) = &c.chown {
                    s += &format!(" --chown={o}");
                }
                if let Some(m) = &c.chmod {
                    s += &format!(" --chmod={m}");
                }
                if c.link {
                    s += " --link";
                }
                for w in c.sources.iter().chain([&c.dest]) {
                    s += " ";
                    s += w;
                }
                s
            }
        }
    }

    /// A word with no quote, escape, space or leading `-` (a flag).
    fn word() -> impl Strategy<Value = String> {
        "[a-z0-9_./:$][a-z0-9_./:$-]{0,7}"
    }

    fn name() -> impl Strategy<Value = String> {
        "[A-Za-z_][A-Za-z0-9_]{0,6}"
    }

    /// An unquoted value (may be empty, may hold `=`).
    fn value() -> impl Strategy<Value = String> {
        "[a-z0-9_./:$=-]{0,8}"
    }

    /// One to three words, single spaces.
    fn words() -> impl Strategy<Value = String> {
        prop::collection::vec(word(), 1..4).prop_map(|w| w.join(" "))
    }

    fn strings() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec("[ -~]{0,6}", 0..4)
    }

    fn command_form_strategy() -> impl Strategy<Value = CommandForm> {
        prop_oneof![
            strings().prop_map(CommandForm::Exec),
            words().prop_map(CommandForm::Shell),
        ]
    }

    fn from() -> impl Strategy<Value = Instruction> {
        (
            word(),
            prop::option::of(prop_oneof![
                Just("linux/amd64".to_string()),
                Just("linux/arm64/v8".to_string()),
                Just("$BUILDPLATFORM".to_string()),
            ]),
            prop::option::of("[a-z][a-z0-9_-]{0,6}"),
        )
            .prop_map(|(image, platform, alias)| Instruction::From {
                image,
                platform,
                alias,
            })
    }

    /// Every instruction archgate builds, in a form it must accept.
    fn instruction() -> impl Strategy<Value = Instruction> {
        let pairs = || prop::collection::vec((name(), value()), 1..4);
        let settings = prop_oneof![
            from(),
            prop::collection::vec((name(), prop::option::of(value())), 1..4)
                .prop_map(Instruction::Arg),
            pairs().prop_map(Instruction::Env),
            pairs().prop_map(Instruction::Label),
            words().prop_map(Instruction::Workdir),
            words().prop_map(Instruction::User),
            words().prop_map(Instruction::Expose),
            word().prop_map(Instruction::StopSignal),
            words().prop_map(Instruction::Maintainer),
        ];
        let commands = prop_oneof![
            prop_oneof![Just("COPY a b"), Just("ENV A=1"), Just("LABEL x=y")]
                .prop_map(|s| Instruction::Onbuild(s.to_string())),
            strings().prop_map(|v| Instruction::Volume(VolumeForm::Json(v))),
            words().prop_map(|s| Instruction::Volume(VolumeForm::Words(s))),
            command_form_strategy().prop_map(Instruction::Entrypoint),
            command_form_strategy().prop_map(Instruction::Cmd),
            prop::collection::vec("[ -~]{0,6}", 1..4).prop_map(Instruction::Shell),
            Just(Instruction::Healthcheck(Healthcheck::None)),
            (
                command_form_strategy(),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("interval".to_string()),
                        Just("timeout".to_string()),
                        Just("start-period".to_string()),
                        Just("start-interval".to_string()),
                    ],
                    (1i64..600).prop_map(|s| s * 1_000_000_000),
                    0..3,
                ),
                prop::option::of(0i64..10),
            )
                .prop_map(|(test, durations, retries)| {
                    Instruction::Healthcheck(Healthcheck::Check {
                        test,
                        durations,
                        retries,
                    })
                }),
            (
                any::<bool>(),
                prop::collection::vec(word(), 1..3),
                word(),
                prop::option::of(word()),
                prop::option::of("[0-7]{3,4}"),
                any::<bool>(),
                prop::option::of(word()),
            )
                .prop_map(|(add, sources, dest, chown, chmod, link, from)| {
                    Instruction::Copy(CopySpec {
                        add,
                        sources,
                        dest,
                        chown,
                        chmod,
                        link,
                        // ADD takes no --from.
                        from: from.filter(|_| !add),
                    })
                }),
        ];
        prop_oneof![settings, commands]
    }

    /// A generated valid Dockerfile: its text, what `parse` must return for
    /// it, and the index of its first instruction's line.
    #[derive(Debug, Clone)]
    struct Case {
        text: Vec<String>,
        want: Dockerfile,
        first_instruction: usize,
    }

    fn case() -> impl Strategy<Value = Case> {
        let filler = prop::collection::vec(
            prop_oneof![
                Just(""),
                Just("# a comment"),
                Just("   "),
                Just("\t# indented")
            ],
            0..3,
        );
        (
            prop_oneof![Just('\\'), Just('`')],
            prop::option::of(Just("docker/dockerfile:1".to_string())),
            from(),
            prop::collection::vec((filler, instruction(), any::<bool>()), 0..12),
        )
            .prop_map(|(escape, syntax, first, rest)| {
                let mut text = Vec::new();
                if let Some(s) = &syntax {
                    text.push(format!("# syntax={s}"));
                }
                if escape == '`' {
                    text.push("# escape=`".to_string());
                }
                let first_instruction = text.len();
                let mut instructions = Vec::new();
                let mut put = |text: &mut Vec<String>, i: Instruction, lower: bool| {
                    let mut line = render(&i);
                    if lower {
                        // Keywords are case-insensitive; the text keeps the case as written.
                        let end = line.find(' ').unwrap_or(line.len());
                        line = format!("{}{}", line[..end].to_ascii_lowercase(), &line[end..]);
                    }
                    text.push(line.clone());
                    instructions.push(Line {
                        line: text.len(),
                        text: line,
                        instruction: i,
                    });
                };
                put(&mut text, first, false);
                for (filler, i, lower) in rest {
                    text.extend(filler.iter().map(|f| f.to_string()));
                    put(&mut text, i, lower);
                }
                Case {
                    text,
                    want: Dockerfile {
                        escape,
                        syntax,
                        instructions,
                    },
                    first_instruction,
                }
            })
    }

    /// Dockerfile-ish soup: the pieces the parser treats specially, in any order.
    fn soup() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "FROM ",
            "scratch",
            "ARG ",
            "ENV ",
            "A=",
            "$A",
            "\\",
            "\n",
            "#",
            " ",
            "\"",
            "'",
            "[",
            "]",
            "COPY ",
            "--chown=",
            "<<",
            "HEALTHCHECK ",
            "CMD ",
            "`",
            "=",
            "escape=`",
            "VOLUME ",
            "ONBUILD ",
            "RUN ",
            "--",
            "\0",
            "\r\n",
            "é",
        ]);
        prop::collection::vec(pieces, 0..40).prop_map(|p| p.concat())
    }

    /// What holds for any input: no panic; instructions at increasing lines of
    /// the input; an error names a line of the input and says something.
    fn check_total(input: &str) -> Result<(), TestCaseError> {
        let lines = input.lines().count().max(1);
        match parse(input) {
            Ok(df) => {
                let at: Vec<usize> = df.instructions.iter().map(|l| l.line).collect();
                prop_assert!(at.windows(2).all(|w| w[0] < w[1]), "lines {at:?}");
                prop_assert!(at.iter().all(|l| (1..=lines).contains(l)), "lines {at:?}");
            }
            Err(e) => {
                prop_assert!(
                    (1..=lines).contains(&e.line),
                    "line {} of {lines}: {}",
                    e.line,
                    e.message
                );
                prop_assert!(!e.message.trim().is_empty());
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parse_is_total_on_any_text(input in "(?s).{0,300}") {
            check_total(&input)?;
        }

        #[test]
        fn parse_is_total_on_dockerfile_soup(input in soup()) {
            check_total(&input)?;
        }

        #[test]
        fn rendered_dockerfiles_parse_back_exactly(case in case()) {
            let text = case.text.join("\n") + "\n";
            let got = parse(&text).map_err(|e| {
                TestCaseError::fail(format!("line {}: {}\n{text}", e.line, e.message))
            })?;
            prop_assert_eq!(got, case.want, "{}", text);
        }

        #[test]
        fn a_run_anywhere_after_from_parses_at_its_line(
            case in case(),
            at in any::<prop::sample::Index>(),
        ) {
            let mut text = case.text.clone();
            // Anywhere after the first FROM, up to the very end.
            let slots = text.len() - case.first_instruction;
            let pos = case.first_instruction + 1 + at.index(slots);
            text.insert(pos, "RUN make install".to_string());
            let df = parse(&(text.join("\n") + "\n")).map_err(|e| {
                TestCaseError::fail(format!("line {}: {}", e.line, e.message))
            })?;
            let run = df
                .instructions
                .iter()
                .find(|l| matches!(l.instruction, Instruction::Run(_)))
                .ok_or_else(|| TestCaseError::fail("no RUN parsed"))?;
            prop_assert_eq!(run.line, pos + 1);
            prop_assert_eq!(
                &run.instruction,
                &Instruction::Run(CommandForm::Shell("make install".into()))
            );
        }
    }
}
