//! Errors of executing builds. A builder that exits non-zero is not an error
//! here but a failed outcome (see `Outcome`); these are failures to run it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("`{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::ProcessError),
    #[error(transparent)]
    Store(#[from] brr_store::StoreError),
    #[error(transparent)]
    Hash(#[from] brr_hash::fs::FsError),
    #[error(transparent)]
    Graph(#[from] brr_graph::GraphError),
}

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ExecError {
    let path = path.into();
    move |source| ExecError::Io { path, source }
}
