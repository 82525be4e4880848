//! Step 1 of 3: text → lines of words, each with its file and line number.
//!
//! HAProxy's rules, which operators already know: words are separated by blanks; `#` starts a comment
//! unless quoted or escaped; double quotes group words and expand `${VAR}` from the environment; single
//! quotes group words literally; a backslash escapes the next character (`\ `, `\#`, `\\`, `\"`, `\'`),
//! and `\r`, `\n`, `\t`, `\xHH` stand for those bytes (as in `option httpchk`'s one-line headers).
//! No allocation tricks here: configs are small and read once.

use std::fmt;
use std::sync::Arc;

/// Where a line came from, for `file:line:` messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    pub file: Arc<str>,
    pub line: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One non-empty config line, split into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub pos: Pos,
    pub words: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{pos}: {msg}")]
pub struct LexError {
    pub pos: Pos,
    pub msg: String,
}

/// Splits a whole config text. `env` looks up `${VAR}` (a closure so tests need no real environment).
/// A line that cannot be split is reported and left out; the rest of the file is still read, so one
/// `-c` run shows every problem.
pub fn lex(
    file: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Vec<Line>, Vec<LexError>) {
    let file: Arc<str> = Arc::from(file);
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let pos = Pos {
            file: file.clone(),
            line: i + 1,
        };
        match split_line(raw, env) {
            Ok(words) if words.is_empty() => {}
            Ok(words) => out.push(Line { pos, words }),
            Err(msg) => errors.push(LexError { pos, msg }),
        }
    }
    (out, errors)
}

#[derive(Clone, Copy, PartialEq)]
enum Quote {
    None,
    Double,
    Single,
}

fn split_line(raw: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    // A word exists once anything (even an empty quoted string) was seen.
    let mut in_word = false;
    let mut quote = Quote::None;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Quote::None, '#') => break,
            (Quote::None, c) if c == ' ' || c == '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (Quote::None, '"') => {
                quote = Quote::Double;
                in_word = true;
            }
            (Quote::None, '\'') => {
                quote = Quote::Single;
                in_word = true;
            }
            (Quote::Double, '"') | (Quote::Single, '\'') => quote = Quote::None,
            (Quote::Single, c) => cur.push(c),
            (_, '\\') => {
                in_word = true;
                let Some(n) = chars.next() else {
                    return Err(
                        "line ends with a lone backslash; write '\\\\' for a backslash".into(),
                    );
                };
                match n {
                    'r' => cur.push('\r'),
                    'n' => cur.push('\n'),
                    't' => cur.push('\t'),
                    'x' => {
                        let h: String = chars.by_ref().take(2).collect();
                        // Config values are text: bytes above 0x7f would not be one byte each.
                        let b = u8::from_str_radix(&h, 16)
                            .ok()
                            .filter(u8::is_ascii)
                            .ok_or_else(|| {
                                format!("'\\x{h}' is not an ASCII hex escape; write \\x00 to \\x7f")
                            })?;
                        cur.push(char::from(b));
                    }
                    other => cur.push(other),
                }
            }
            (Quote::Double, '$') if chars.peek() == Some(&'{') => {
                chars.next();
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => {
                            return Err(format!(
                                "unterminated '${{{name}'; close the variable with '}}'"
                            ));
                        }
                    }
                }
                match env(&name) {
                    Some(v) => cur.push_str(&v),
                    None => {
                        return Err(format!(
                            "environment variable '{name}' is not set; set it or remove \"${{{name}}}\""
                        ));
                    }
                }
            }
            (_, c) => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    match quote {
        Quote::None => {}
        Quote::Double => return Err("unterminated double quote; add the closing '\"'".into()),
        Quote::Single => return Err("unterminated single quote; add the closing \"'\"".into()),
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "HOST").then(|| "gw1".to_string())
    }

    fn words(s: &str) -> Result<Vec<String>, String> {
        split_line(s, &env)
    }

    #[test]
    fn splitting_table() {
        let table: &[(&str, &[&str])] = &[
            ("", &[]),
            ("   # only a comment", &[]),
            ("bind :80", &["bind", ":80"]),
            (
                "  \tserver  s1\t10.0.0.1:80  ",
                &["server", "s1", "10.0.0.1:80"],
            ),
            (
                "acl a path_beg /x # trailing",
                &["acl", "a", "path_beg", "/x"],
            ),
            ("x \"a b\" c", &["x", "a b", "c"]),
            ("x 'a ${HOST} b'", &["x", "a ${HOST} b"]),
            ("x \"${HOST}-1\"", &["x", "gw1-1"]),
            ("x ${HOST}", &["x", "${HOST}"]),
            ("x a\\ b", &["x", "a b"]),
            ("x \\#notcomment", &["x", "#notcomment"]),
            ("x \"#notcomment\"", &["x", "#notcomment"]),
            ("x \"\"", &["x", ""]),
            ("x a\\r\\nb", &["x", "a\r\nb"]),
            ("x \\x41", &["x", "A"]),
            ("x \"q\\\"q\"", &["x", "q\"q"]),
            ("x a\"b c\"d", &["x", "ab cd"]),
        ];
        for (input, want) in table {
            let got = words(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(got, *want, "input {input:?}");
        }
    }

    #[test]
    fn errors_table() {
        for (input, needle) in [
            ("x \"open", "double quote"),
            ("x 'open", "single quote"),
            ("x trailing\\", "backslash"),
            ("x \"${NOPE}\"", "'NOPE' is not set"),
            ("x \"${HOST\"", "unterminated"),
            ("x \\xZZ", "hex"),
            ("x \\xff", "ASCII"),
        ] {
            let err = words(input).unwrap_err();
            assert!(err.contains(needle), "{input:?} gave {err:?}");
        }
    }

    #[test]
    fn positions_count_every_line() {
        let (lines, errs) = lex("a.cfg", "global\n\n  # c\n  maxconn 10\n", &env);
        assert!(errs.is_empty());
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].pos.to_string(), "a.cfg:4");
        // Both bad lines are reported, and the good line after them is kept.
        let (lines, errs) = lex("a.cfg", "global\n x \"y\n z 'q\n maxconn 1\n", &env);
        assert_eq!(errs.iter().map(|e| e.pos.line).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(lines.len(), 2);
    }
}
