//! Variable substitution exactly as Docker's Dockerfile shell lexer does it:
//! `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`,
//! `${VAR+alt}`, `${VAR:?message}`, `${VAR?message}`; single quotes are
//! literal, double quotes expand, the escape character (`\` or the one set by
//! `# escape=`) quotes the next character. Quotes and escapes are removed from
//! the result. Pure and total: every input gives a value or an error message.

/// Looks a variable up; `None` when it is not set.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Expands one word (an `ENV` value, a `WORKDIR` path, ...).
pub fn expand_word(word: &str, escape: char, vars: Lookup<'_>) -> Result<String, String> {
    Ok(lex(word, escape, vars)?
        .into_iter()
        .map(|(c, _)| c)
        .collect())
}

fn lex(word: &str, escape: char, vars: Lookup<'_>) -> Result<Out, String> {
    let chars: Vec<char> = word.chars().collect();
    Lexer {
        chars: &chars,
        pos: 0,
        escape,
        vars,
    }
    .process(None)
}

/// Expands and splits into words on whitespace that is neither quoted nor
/// escaped (Docker splits *after* expansion, so `$A` with `A="a b"` is two words).
pub fn expand_words(word: &str, escape: char, vars: Lookup<'_>) -> Result<Vec<String>, String> {
    let out = lex(word, escape, vars)?;
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    for (c, splittable) in out {
        if splittable && c.is_whitespace() {
            if in_word {
                words.push(std::mem::take(&mut current));
                in_word = false;
            }
        } else {
            current.push(c);
            in_word = true;
        }
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

struct Lexer<'a, 'v> {
    chars: &'a [char],
    pos: usize,
    escape: char,
    vars: Lookup<'v>,
}

/// A character of output and whether it may split words (unquoted).
type Out = Vec<(char, bool)>;

impl Lexer<'_, '_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes until the end, or until an unquoted, unescaped `stop` (consumed).
    fn process(&mut self, stop: Option<char>) -> Result<Out, String> {
        let mut out = Out::new();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok(out);
            }
            if c == self.escape {
                self.pos += 1;
                match self.next() {
                    Some(n) => out.push((n, false)),
                    // A trailing escape stays as it is, as Docker keeps it.
                    None => out.push((c, false)),
                }
            } else if c == '\'' {
                self.pos += 1;
                self.single_quoted(&mut out)?;
            } else if c == '"' {
                self.pos += 1;
                self.double_quoted(&mut out)?;
            } else if c == '$' {
                self.pos += 1;
                let value = self.dollar()?;
                out.extend(value.chars().map(|v| (v, true)));
            } else {
                self.pos += 1;
                out.push((c, true));
            }
        }
        match stop {
            Some(s) => Err(format!("missing `{s}` in variable substitution")),
            None => Ok(out),
        }
    }

    fn single_quoted(&mut self, out: &mut Out) -> Result<(), String> {
        loop {
            match self.next() {
                Some('\'') => return Ok(()),
                Some(c) => out.push((c, false)),
                None => return Err("unmatched single quote".into()),
            }
        }
    }

    fn double_quoted(&mut self, out: &mut Out) -> Result<(), String> {
        loop {
            match self.next() {
                Some('"') => return Ok(()),
                Some('$') => {
                    let value = self.dollar()?;
                    out.extend(value.chars().map(|v| (v, false)));
                }
                Some(c) if c == self.escape => match self.peek() {
                    // Inside double quotes only these are escapable, as in Docker.
                    Some(n @ ('"' | '$')) => {
                        self.pos += 1;
                        out.push((n, false));
                    }
                    Some(n) if n == self.escape => {
                        self.pos += 1;
                        out.push((n, false));
                    }
                    _ => out.push((c, false)),
                },
                Some(c) => out.push((c, false)),
                None => return Err("unmatched double quote".into()),
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    /// After a `$`: the value it stands for.
    fn dollar(&mut self) -> Result<String, String> {
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok((self.vars)(&name).unwrap_or_default());
        }
        self.pos += 1;
        let name = self.name();
        if name.is_empty() {
            return Err("bad substitution: `${` must be followed by a variable name".into());
        }
        let value = (self.vars)(&name);
        let c = self.next();
        match c {
            Some('}') => Ok(value.unwrap_or_default()),
            Some(':') | Some('-') | Some('+') | Some('?') => {
                let colon = c == Some(':');
                let op = if colon { self.next() } else { c };
                let word: String = self
                    .process(Some('}'))?
                    .into_iter()
                    .map(|(c, _)| c)
                    .collect();
                // With `:` an empty value counts as unset.
                let set = match &value {
                    Some(v) => !colon || !v.is_empty(),
                    None => false,
                };
                match op {
                    Some('-') => Ok(if set { value.unwrap_or_default() } else { word }),
                    Some('+') => Ok(if set { word } else { String::new() }),
                    Some('?') if set => Ok(value.unwrap_or_default()),
                    Some('?') => Err(if word.is_empty() {
                        format!("{name}: is not allowed to be unset")
                    } else {
                        format!("{name}: {word}")
                    }),
                    _ => Err(format!(
                        "unsupported modifier in `${{{name}:...}}`: use `:-`, `:+` or `:?`"
                    )),
                }
            }
            Some(other) => Err(format!(
                "unsupported modifier `{other}` in `${{{name}...}}`: archgate supports `}}`, `:-`, `-`, `:+`, `+`, `:?`, `?`"
            )),
            None => Err(format!("missing `}}` after `${{{name}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("a".into()),
            "EMPTY" => Some(String::new()),
            "SP" => Some("x y".into()),
            "PATH" => Some("/usr/bin:/bin".into()),
            _ => None,
        }
    }

    fn w(s: &str) -> String {
        expand_word(s, '\\', &env).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn every_form() {
        let rows = [
            ("$A", "a"),
            ("${A}", "a"),
            ("$A$A", "aa"),
            ("${A}b", "ab"),
            ("$Ab", ""),
            ("$UNSET", ""),
            ("${UNSET:-d}", "d"),
            ("${EMPTY:-d}", "d"),
            ("${EMPTY-d}", ""),
            ("${UNSET-d}", "d"),
            ("${A:-d}", "a"),
            ("${A:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET:+alt}", ""),
            ("${UNSET:-$A}", "a"),
            ("${UNSET:-${A:+n}}", "n"),
            ("${A:?boom}", "a"),
            ("$PATH:/opt/jdk/bin", "/usr/bin:/bin:/opt/jdk/bin"),
            ("'$A'", "$A"),
            ("\"$A\"", "a"),
            ("\"\\$A\"", "$A"),
            ("\\$A", "$A"),
            ("a\\ b", "a b"),
            ("$", "$"),
            ("$-", "$-"),
            ("100%", "100%"),
            ("\"a\\b\"", "a\\b"),
            ("trailing\\", "trailing\\"),
        ];
        for (input, want) in rows {
            assert_eq!(w(input), want, "{input}");
        }
    }

    #[test]
    fn escape_directive_backtick() {
        let got = expand_word("C:\\dir`$A", '`', &env).unwrap();
        assert_eq!(got, "C:\\dir$A");
    }

    #[test]
    fn errors_are_messages() {
        for (input, why) in [
            ("${UNSET:?must be set}", "UNSET: must be set"),
            ("${UNSET?}", "not allowed to be unset"),
            ("${A", "missing `}`"),
            ("${}", "variable name"),
            ("${A#x}", "unsupported modifier"),
            ("'open", "single quote"),
            ("\"open", "double quote"),
            ("${A:-x", "missing `}`"),
        ] {
            let err = expand_word(input, '\\', &env).unwrap_err();
            assert!(err.contains(why), "{input}: {err}");
        }
    }

    #[test]
    fn words_split_after_expansion() {
        let got = expand_words("$SP \"$SP\" 'q r' a\\ b", '\\', &env).unwrap();
        assert_eq!(got, vec!["x", "y", "x y", "q r", "a b"]);
        assert!(expand_words("   ", '\\', &env).unwrap().is_empty());
    }

    /// Property: any string of the lexer's special characters gives a value or
    /// an error, never a panic; and text without `$ ' " \` comes back as is.
    #[test]
    fn total_on_generated_input() {
        let alphabet = [
            '$', '{', '}', ':', '-', '+', '?', '\'', '"', '\\', 'A', 'x', ' ', '`',
        ];
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..5000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 12) as usize;
            let s: String = (0..len)
                .map(|i| alphabet[((seed >> (i * 4)) % alphabet.len() as u64) as usize])
                .collect();
            let _ = expand_word(&s, '\\', &env);
            let _ = expand_words(&s, '`', &env);
            let plain: String = s
                .chars()
                .filter(|c| !matches!(c, '$' | '\'' | '"' | '\\'))
                .collect();
            assert_eq!(w(&plain), plain);
        }
    }
}
