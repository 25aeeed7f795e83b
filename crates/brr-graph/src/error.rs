//! Errors of loading a workspace. Declaration mistakes carry a located
//! [`DeclError`]; everything else names its path.

use std::path::PathBuf;

use brr_schema::DeclError;
use miette::Diagnostic;

#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum GraphError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Decl(Box<DeclError>),
    #[error("dependency cycle: {}", cycle.join(" → "))]
    #[diagnostic(help("a package cannot depend on itself, directly or through others"))]
    Cycle { cycle: Vec<String> },
    #[error("no workspace `brr.ron` in `{}`", dir.display())]
    #[diagnostic(help("run brr in a workspace root or pass `-C DIR`"))]
    NoWorkspace { dir: PathBuf },
    #[error("unknown target `{name}`")]
    #[diagnostic(help("known targets: {known}"))]
    UnknownTarget { name: String, known: String },
    #[error("tool `{tool}` of package `{package}` is not on PATH")]
    #[diagnostic(help("install it, or fix the name in `{}`", manifest.display()))]
    ToolNotFound { tool: String, package: String, manifest: PathBuf },
    /// Looking at a `PATH` candidate failed otherwise than "not there".
    #[error("cannot look for tool `{tool}` at `{}`", path.display())]
    #[diagnostic(help("the file could not be examined; a tool is \"not on PATH\" only when it does not exist"))]
    ToolLookup {
        tool: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tool `{tool}`: `{}` did not answer `{question}` within 30 s", program.display())]
    #[diagnostic(help(
        "brr asks a tool's loader which libraries it maps, and a compiler driver which programs it runs; \
         check that the program works when run by hand"
    ))]
    ToolClosure { tool: String, program: PathBuf, question: String },
    #[error("declaration `{}` is not a regular file: it is {kind}", path.display())]
    #[diagnostic(help("a `brr.ron` must be a plain file (a symlink to one inside the workspace is fine)"))]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("declaration `{}` is larger than {} KiB", path.display(), limit / 1024)]
    #[diagnostic(help("split the workspace into more packages"))]
    DeclTooLarge { path: PathBuf, limit: u64 },
    #[error("declaration `{}` is not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("`{}` leads outside the workspace, to `{}`", path.display(), target.display())]
    #[diagnostic(help("symlinks are followed only within the workspace: copy the file in instead"))]
    OutsideWorkspace { path: PathBuf, target: PathBuf },
    #[error("input `{}` is not a regular file: it is {kind}", path.display())]
    #[diagnostic(help("inputs are files, or symlinks to files or folders inside the workspace"))]
    InputNotAFile { path: PathBuf, kind: &'static str },
    #[error("cannot read `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Hash(#[from] brr_hash::fs::FsError),
    #[error(transparent)]
    Store(#[from] brr_store::StoreError),
}

impl From<DeclError> for GraphError {
    fn from(e: DeclError) -> Self {
        Self::Decl(Box::new(e))
    }
}

impl From<Box<DeclError>> for GraphError {
    fn from(e: Box<DeclError>) -> Self {
        Self::Decl(e)
    }
}

impl GraphError {
    /// True for mistakes of the user (declarations, names), false for
    /// environment or internal failures: the CLI exits differently.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Self::Decl(_)
                | Self::Cycle { .. }
                | Self::NoWorkspace { .. }
                | Self::UnknownTarget { .. }
                | Self::ToolNotFound { .. }
                | Self::NotAFile { .. }
                | Self::DeclTooLarge { .. }
                | Self::NotUtf8 { .. }
                | Self::OutsideWorkspace { .. }
                | Self::InputNotAFile { .. }
        )
    }
}

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> GraphError {
    let path = path.into();
    move |source| GraphError::Io { path, source }
}

/// How a file type is named in messages.
pub(crate) fn kind_name(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_symlink() {
        "a symlink"
    } else {
        "a file"
    }
}
