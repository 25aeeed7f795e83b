//! A `Procfile` beside a service's `brr.ron`: process types as Heroku and
//! foreman write them, one `name: command` a line. Blank lines and lines
//! starting with `#` are skipped; the command is the rest of the line,
//! run by `sh -c`. Names follow brr's rule for process types (lowercase
//! letters, digits, `-`, `_`), so a type is named the same wherever it is
//! declared. Whether a type is also in `brr.ron` is the graph layer's
//! check: it alone sees both files.

use miette::SourceSpan;

use crate::error::{DeclError, SourceFile};
use crate::parse::{cut, is_name};

/// File name of a Procfile, beside a package's `brr.ron`.
pub const PROCFILE: &str = "Procfile";

/// One process type of a Procfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcfileEntry {
    pub name: String,
    /// The command as written, for `sh -c`.
    pub command: String,
    /// Where the name is, to point errors at it.
    pub span: SourceSpan,
}

impl ProcfileEntry {
    /// The argv that runs it.
    pub fn argv(&self) -> Vec<String> {
        vec!["sh".to_owned(), "-c".to_owned(), self.command.clone()]
    }
}

/// The process types of a Procfile, in file order; a malformed line, a bad
/// name, an empty command or a type given twice is an error at its line.
pub fn parse_procfile(file: &SourceFile) -> Result<Vec<ProcfileEntry>, Box<DeclError>> {
    let mut entries: Vec<ProcfileEntry> = Vec::new();
    let mut offset = 0;
    for raw in file.text.split_inclusive('\n') {
        let start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let body = line.trim();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let whole: SourceSpan = (start + indent, body.len()).into();
        let Some((name, command)) = body.split_once(':') else {
            return Err(DeclError::at(file, whole, "a Procfile line must be `name: command`", "no `:`")
                .with_help("e.g. `worker: bin/worker --queue default`; comments start with `#`")
                .into());
        };
        let name_span: SourceSpan = (start + indent, name.len()).into();
        let name = name.trim_end();
        if !is_name(name) {
            return Err(DeclError::at(file, name_span, format!("invalid process type `{}`", cut(name)), "not a name")
                .with_help("process types use lowercase letters, digits, `-` and `_`")
                .into());
        }
        let command = command.trim();
        if command.is_empty() {
            return Err(DeclError::at(
                file,
                whole,
                format!("process `{}` has an empty command", cut(name)),
                "empty command",
            )
            .into());
        }
        if command.contains('\0') {
            return Err(DeclError::at(file, whole, format!("process `{}` holds a NUL byte", cut(name)), "NUL")
                .with_help("program arguments cannot hold NUL bytes")
                .into());
        }
        if let Some(first) = entries.iter().find(|e| e.name == name) {
            let (line, _) = file.line_col(first.span.offset());
            return Err(DeclError::at(
                file,
                name_span,
                format!("process type `{}` is given twice", cut(name)),
                "second one",
            )
            .with_help(format!("the first is on line {line}"))
            .into());
        }
        entries.push(ProcfileEntry { name: name.to_owned(), command: command.to_owned(), span: name_span });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<ProcfileEntry>, Box<DeclError>> {
        parse_procfile(&SourceFile::new("services/api/Procfile", text))
    }

    #[test]
    fn names_commands_comments_and_blank_lines() {
        let entries = parse("# the shop\n\nweb: bin/api serve --port $PORT\r\n  worker:bin/api work  \n").unwrap();
        let pairs: Vec<(&str, &str)> = entries.iter().map(|e| (e.name.as_str(), e.command.as_str())).collect();
        assert_eq!(pairs, [("web", "bin/api serve --port $PORT"), ("worker", "bin/api work")]);
        assert_eq!(entries[1].argv(), ["sh", "-c", "bin/api work"]);
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn mistakes_point_at_their_line() {
        let e = parse("web: a\n\nworker bin/work\n").unwrap_err();
        assert_eq!((e.line, e.col), (3, 1), "{e}");
        assert!(e.to_string().starts_with("services/api/Procfile:3:1: a Procfile line must be"), "{e}");
        let e = parse("web: a\n Web: b\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 2), "{e}");
        assert!(e.message.contains("invalid process type `Web`"), "{e}");
        let e = parse("web:   \n").unwrap_err();
        assert!(e.message.contains("`web` has an empty command"), "{e}");
        let e = parse("web: a\nworker: b\nweb: c\n").unwrap_err();
        assert_eq!((e.line, e.col), (3, 1), "{e}");
        assert_eq!(e.help.as_deref(), Some("the first is on line 1"));
    }
}
