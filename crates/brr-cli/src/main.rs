//! `brr`: build → release → run.
//!
//! Three stages, as in cargo and uv: clap types ([`cli`]) → resolved
//! [`settings::Settings`] → `commands/<name>.rs` calling the library crates.
//! The [`printer`] owns all terminal output: data on stdout, progress and
//! diagnostics on stderr. Every `--json` document is a type in [`output`],
//! whose JSON Schemas are kept in `schemas/output/`.

mod cli;
mod commands;
mod output;
mod printer;
mod settings;

use std::process::ExitCode;

use clap::Parser;

// A build walks and hashes hundreds of thousands of paths: most of its time
// outside the kernel is spent allocating small strings, which mimalloc does
// markedly faster than glibc's allocator (see BENCHMARKS.md). Built with
// `no_thp`: it would otherwise ask for transparent huge pages, and each first
// touch of a 2 MiB region made the kernel zero all of it. (Turning huge
// pages off for the whole process instead cannot work: builders start on
// brr's own memory until they exec, so turning them back on for a builder
// turned them back on for brr.)
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes: distinct for user mistakes and internal failures.
pub mod exit {
    /// A build, verification or check failed.
    pub const FAILED: u8 = 1;
    /// The user's input is wrong: declarations, arguments, unknown names.
    pub const USER: u8 = 2;
    /// brr itself or its environment failed (I/O, store corruption, bugs).
    pub const INTERNAL: u8 = 70;
}

/// A failure that already carries its exit code and has been reported or
/// should be reported as a diagnostic.
#[derive(Debug)]
pub enum Failure {
    /// Report nothing more; exit with this code.
    Exit(u8),
    /// A user mistake, printed as a diagnostic.
    User(miette::Report),
    /// An internal failure, printed with its causes.
    Internal(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Self::Internal(e.into())
    }
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    printer::install_miette_hook();
    printer::install_closed_stdout_hook();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // `brr show HASH | head`: the reader has all it wanted. End quietly
        // with success, as `cat` and `ls` do.
        Err(Failure::Internal(e)) if printer::is_closed_stdout(&e) => ExitCode::SUCCESS,
        Err(Failure::Exit(code)) => ExitCode::from(code),
        Err(Failure::User(report)) => {
            eprintln!("{report:?}");
            ExitCode::from(exit::USER)
        }
        Err(Failure::Internal(e)) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  Caused by: {cause}");
            }
            let corrupt = e.chain().any(|c| {
                matches!(c.downcast_ref::<brr_store::StoreError>(), Some(brr_store::StoreError::Corrupt { .. }))
            });
            if corrupt {
                eprintln!(
                    "hint: run `brr store verify --repair` to drop the damaged object and what depends on it; the \
                     next build writes it again"
                );
            }
            ExitCode::from(exit::INTERNAL)
        }
    }
}
