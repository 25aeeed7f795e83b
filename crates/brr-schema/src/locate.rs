//! Finding a value in a declaration by its path (`environments` → `"staging"`
//! → `services` → `"api"`), to point a semantic error at it.
//!
//! Searching the text for a quoted name is not enough once a file repeats
//! names (every environment declares `"api"` and `"LOG_LEVEL"`): the error
//! would point at the first environment whatever its subject. So the text is
//! cut into tokens (strings, names, brackets; comments skipped) with their
//! nesting depth, and each step of a path is looked up inside the value the
//! step before found. The file already parsed, so the tokens are well
//! formed; anything not found leaves the span of the deepest step that was.

use miette::SourceSpan;

use crate::error::SourceFile;

/// One step of a path into a RON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// A struct field (`vars:`).
    Field(&'a str),
    /// A map key (`"staging":`).
    Key(&'a str),
    /// The `n`th (from 0) string item of a list equal to the value
    /// (`secrets: ["A", "A"]`: `Item("A", 1)` is the second one).
    Item(&'a str, usize),
    /// The string value of the field or key the step before found.
    Value,
}

#[derive(Debug, PartialEq)]
enum Kind {
    /// A string literal, decoded.
    Str(String),
    Ident,
    Open,
    Close,
    Colon,
    Comma,
    Other,
}

#[derive(Debug)]
struct Token {
    kind: Kind,
    start: usize,
    len: usize,
    /// Brackets open around it; a bracket counts as outside itself.
    depth: usize,
}

impl Token {
    fn span(&self) -> SourceSpan {
        (self.start, self.len).into()
    }

    fn is_str(&self, value: &str) -> bool {
        matches!(&self.kind, Kind::Str(s) if s == value)
    }
}

impl SourceFile {
    /// Span of the value at `path` (see [`Step`]); when a step is not found,
    /// the span of the deepest one that was, else the file start.
    pub fn locate(&self, path: &[Step<'_>]) -> SourceSpan {
        let tokens = tokens(&self.text);
        // The value being searched: tokens `lo..hi`; its own tokens (a
        // scalar, or a struct's or map's brackets) are at `depth`.
        let (mut lo, mut hi, mut depth) = (0, tokens.len(), 0);
        let mut found: SourceSpan = (0, 0).into();
        for step in path {
            let inner = |t: &Token| t.depth == depth + 1;
            let followed_by_colon = |i: usize| tokens.get(i + 1).is_some_and(|t| t.kind == Kind::Colon);
            let hit = match *step {
                Step::Field(name) => (lo..hi).find(|&i| {
                    let t = &tokens[i];
                    inner(t)
                        && t.kind == Kind::Ident
                        && &self.text[t.start..t.start + t.len] == name
                        && followed_by_colon(i)
                }),
                Step::Key(key) => {
                    (lo..hi).find(|&i| inner(&tokens[i]) && tokens[i].is_str(key) && followed_by_colon(i))
                }
                Step::Item(value, nth) => {
                    (lo..hi).filter(|&i| inner(&tokens[i]) && tokens[i].is_str(value) && !followed_by_colon(i)).nth(nth)
                }
                Step::Value => (lo..hi).find(|&i| tokens[i].depth == depth && matches!(tokens[i].kind, Kind::Str(_))),
            };
            let Some(i) = hit else { break };
            found = tokens[i].span();
            if matches!(step, Step::Field(_) | Step::Key(_)) {
                depth += 1;
                lo = i + 2;
                hi = (lo..hi)
                    .find(|&j| tokens[j].depth < depth || (tokens[j].depth == depth && tokens[j].kind == Kind::Comma))
                    .unwrap_or(hi);
            }
        }
        found
    }
}

/// The tokens of RON text, comments left out.
fn tokens(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let (kind, end) = match bytes[i] {
            b if b.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = text[i..].find('\n').map_or(bytes.len(), |n| i + n + 1);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = block_comment_end(bytes, i);
                continue;
            }
            b'"' => {
                let end = quoted_end(bytes, i, b'"');
                (Kind::Str(decode(&text[start..end])), end)
            }
            b'\'' => (Kind::Other, quoted_end(bytes, i, b'\'')),
            b'r' if is_raw_string(bytes, i) => {
                let end = raw_string_end(bytes, i);
                (Kind::Str(decode(&text[start..end])), end)
            }
            b if b.is_ascii_alphanumeric() || b == b'_' => {
                let len = bytes[i..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
                (Kind::Ident, i + len)
            }
            b'(' | b'[' | b'{' => (Kind::Open, i + 1),
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                (Kind::Close, i + 1)
            }
            b':' => (Kind::Colon, i + 1),
            b',' => (Kind::Comma, i + 1),
            _ => (Kind::Other, i + text[i..].chars().next().map_or(1, char::len_utf8)),
        };
        let opens = kind == Kind::Open;
        out.push(Token { kind, start, len: end - start, depth });
        if opens {
            depth += 1;
        }
        i = end;
    }
    out
}

/// A string literal's value (its text when it does not decode).
fn decode(literal: &str) -> String {
    ron::from_str::<String>(literal).unwrap_or_else(|_| literal.to_owned())
}

/// End (exclusive) of a literal opened by `quote` at `start`.
fn quoted_end(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Whether a raw string `r"…"` or `r#"…"#` starts at `start` (and not a
/// raw name `r#name`).
fn is_raw_string(bytes: &[u8], start: usize) -> bool {
    let hashes = bytes[start + 1..].iter().take_while(|b| **b == b'#').count();
    bytes.get(start + 1 + hashes) == Some(&b'"')
}

/// End (exclusive) of a raw string `r#"…"#` starting at `start`.
fn raw_string_end(bytes: &[u8], start: usize) -> usize {
    let hashes = bytes[start + 1..].iter().take_while(|b| **b == b'#').count();
    let mut i = start + 1 + hashes + 1;
    while i < bytes.len() {
        if bytes[i] == b'"' && bytes[i + 1..].iter().take(hashes).filter(|b| **b == b'#').count() == hashes {
            return (i + 1 + hashes).min(bytes.len());
        }
        i += 1;
    }
    bytes.len()
}

/// End (exclusive) of a block comment at `start`; RON nests them.
fn block_comment_end(bytes: &[u8], start: usize) -> usize {
    let mut level = 0usize;
    let mut i = start;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                level += 1;
                i += 2;
            }
            (b'*', b'/') => {
                level -= 1;
                i += 2;
                if level == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::Step::{Field, Item, Key, Value};
    use crate::SourceFile;

    const TEXT: &str = r##"// "staging": not this one
Environments(
    promotion: ["staging", "production"],
    environments: {
        "staging": Environment(vars: {"LOG": "debug"}, /* "api": nor this */ services: {
            "api": ServiceEnv(secrets: ["T", "T"]),
        }),
        "production": Environment(vars: {"LOG": r#"in"fo"#}, services: {"api": ServiceEnv()}),
    },
)
"##;

    fn at(path: &[super::Step<'_>]) -> (usize, usize, &'static str) {
        let file = SourceFile::new("e.ron", TEXT);
        let span = file.locate(path);
        let (line, col) = file.line_col(span.offset());
        (line, col, &TEXT[span.offset()..span.offset() + span.len()])
    }

    #[test]
    fn each_step_looks_inside_the_value_the_step_before_found() {
        assert_eq!(at(&[Field("promotion"), Item("production", 0)]), (3, 28, "\"production\""));
        assert_eq!(at(&[Field("environments"), Key("staging")]), (5, 9, "\"staging\""));
        assert_eq!(at(&[Field("environments"), Key("production"), Field("vars"), Key("LOG")]), (8, 42, "\"LOG\""));
        assert_eq!(
            at(&[Field("environments"), Key("production"), Field("vars"), Key("LOG"), Value]).2,
            "r#\"in\"fo\"#"
        );
        assert_eq!(at(&[Field("environments"), Key("staging"), Field("vars"), Key("LOG"), Value]).2, "\"debug\"");
        assert_eq!(at(&[Field("environments"), Key("production"), Field("services"), Key("api")]), (8, 73, "\"api\""));
        let second =
            [Field("environments"), Key("staging"), Field("services"), Key("api"), Field("secrets"), Item("T", 1)];
        assert_eq!(at(&second), (6, 46, "\"T\""));
    }

    #[test]
    fn a_missing_step_leaves_the_deepest_found() {
        assert_eq!(at(&[Field("environments"), Key("dev"), Field("vars")]), (4, 5, "environments"));
        // `secrets` is a field of the service, not of the environment.
        assert_eq!(at(&[Field("environments"), Key("staging"), Field("secrets")]), (5, 9, "\"staging\""));
        assert_eq!(at(&[Field("nope")]), (1, 1, ""));
    }
}
