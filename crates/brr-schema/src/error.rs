//! Declaration errors that point into the file: `file:line:column` with a
//! labelled snippet, rendered by miette.

use std::path::PathBuf;
use std::sync::Arc;

use miette::{Diagnostic, NamedSource, SourceSpan};

/// A declaration file's text and the name it is shown under.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path as shown to the user (workspace-relative where possible).
    pub path: PathBuf,
    pub text: Arc<str>,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Self {
        Self { path: path.into(), text: text.into() }
    }

    /// Byte offset of a 1-based line and column.
    pub fn offset(&self, line: usize, col: usize) -> usize {
        let mut off = 0;
        for (i, l) in self.text.split_inclusive('\n').enumerate() {
            if i + 1 == line {
                let col_bytes: usize = l.chars().take(col.saturating_sub(1)).map(char::len_utf8).sum();
                return (off + col_bytes).min(self.text.len());
            }
            off += l.len();
        }
        self.text.len()
    }

    /// 1-based line and column of a byte offset. The column counts bytes,
    /// as the snippet header that miette prints does, so the two agree.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, str::len) + 1;
        (line, col)
    }

    /// Span of the first occurrence of `"value"` (quoted, as RON writes
    /// strings) at or after `after`, else of the bare text, else the file start.
    pub fn find_value(&self, value: &str, after: usize) -> SourceSpan {
        let quoted = format!("\"{value}\"");
        let from = after.min(self.text.len());
        let hit = self.text[from..]
            .find(&quoted)
            .map(|i| (from + i, quoted.len()))
            .or_else(|| self.text.find(&quoted).map(|i| (i, quoted.len())))
            .or_else(|| self.text.find(value).map(|i| (i, value.len())));
        match hit {
            Some((start, len)) => (start, len).into(),
            None => (0, 0).into(),
        }
    }

    /// Span of the string literal that follows `key` (a map key's value),
    /// else `key` itself.
    pub fn string_after(&self, key: SourceSpan) -> SourceSpan {
        let from = (key.offset() + key.len()).min(self.text.len());
        let rest = &self.text[from..];
        let Some(open) = rest.find('"') else { return key };
        let body = &rest[open + 1..];
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => return (from + open, i + 2).into(),
                _ => escaped = false,
            }
        }
        key
    }

    /// Offset of the first `key:` field, to anchor errors about a field.
    pub fn find_field(&self, key: &str) -> usize {
        self.text.find(&format!("{key}:")).unwrap_or(0)
    }
}

/// Longest line (and span) shown in a snippet, in bytes.
const SNIPPET_LINE_MAX: usize = 1000;

/// A mistake in a declaration file, located in it.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{path}:{line}:{col}: {message}", path = file.display())]
pub struct DeclError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
    /// None when the line is too long to show (a hostile file could make
    /// the snippet megabytes long).
    #[source_code]
    pub src: Option<NamedSource<Arc<str>>>,
    #[label("{label}")]
    pub span: Option<SourceSpan>,
    pub label: String,
    #[help]
    pub help: Option<String>,
}

impl DeclError {
    pub fn at(file: &SourceFile, span: SourceSpan, message: impl Into<String>, label: impl Into<String>) -> Self {
        let (line, col) = file.line_col(span.offset());
        let text = &file.text;
        let start = text[..span.offset().min(text.len())].rfind('\n').map_or(0, |i| i + 1);
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let shown = end - start <= SNIPPET_LINE_MAX && span.len() <= SNIPPET_LINE_MAX;
        Self {
            file: file.path.clone(),
            line,
            col,
            message: message.into(),
            src: shown.then(|| NamedSource::new(file.path.display().to_string(), Arc::clone(&file.text))),
            span: shown.then_some(span),
            label: label.into(),
            help: None,
        }
    }

    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}
