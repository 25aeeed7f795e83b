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
        )
    }
}

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> GraphError {
    let path = path.into();
    move |source| GraphError::Io { path, source }
}
