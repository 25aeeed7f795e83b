//! The closure of a host tool: every file it runs with. Its binary; for an
//! ELF program its loader (`PT_INTERP`) and the shared libraries that
//! loader maps; for a script (`#!`) its interpreter's closure; for a
//! compiler driver (`cc`, `gcc`, `g++`, `clang`, …) the programs it runs
//! (`cc1`, `cc1plus`, `collect2`, `as`, `ld`, `lto-wrapper`, the LTO plugin)
//! and *their* closures.
//!
//! Libraries are found by asking the tool's own loader (`LD.SO --list
//! FILE`, with an empty environment as a builder has) rather than by
//! parsing `DT_NEEDED` and resolving like ld.so: the loader applies
//! RPATH/RUNPATH with `$ORIGIN`, the `ld.so.cache`, hwcaps subfolders and
//! default folders exactly as it will when the builder runs, and there is no
//! second implementation of those rules to drift. Only `PT_INTERP` is read
//! from the ELF headers (the `object` crate), to know which loader to ask.
//!
//! Discovery spawns processes, so its result (the list of files, not their
//! digests) is saved per tool in a `cache_file`, keyed by the tool's name,
//! real path and stat fields, and trusted while every listed file still has
//! the stat fields it had; the files' digests then come from the stat cache
//! like any input. A no-op build spawns nothing and reads no library.
//! Not noticed: a library appearing earlier on the loader's search path
//! while every listed file stays the same.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use brr_process::{Command, Output};

use serde::{Deserialize, Serialize};

use crate::cache_file;

/// Bump when the layout below, or what discovery finds, changes.
const FORMAT: u32 = 1;

/// Programs a compiler driver runs, asked with `-print-prog-name=`.
const DRIVER_PROGRAMS: [&str; 6] = ["cc1", "cc1plus", "collect2", "as", "ld", "lto-wrapper"];

/// Files a compiler driver loads, asked with `-print-file-name=`.
const DRIVER_FILES: [&str; 1] = ["liblto_plugin.so"];

/// How long one question to a driver or loader may take: a tool named `cc`
/// that never answers must not hang every build.
const ANSWER_TIME: Duration = Duration::from_secs(30);

/// A tool's driver or loader did not answer a question in time.
#[derive(Debug)]
pub(crate) struct NoAnswer {
    pub(crate) program: PathBuf,
    pub(crate) question: String,
}

/// At most this many files in one closure: a bound on what a strange
/// installation can make discovery do.
const MAX_FILES: usize = 4096;

/// The stat fields a saved closure is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stat {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
}

impl Stat {
    fn of(p: &Path) -> Option<Self> {
        let m = std::fs::metadata(p).ok()?;
        Some(Self {
            size: m.len(),
            mtime_ns: m.mtime().saturating_mul(1_000_000_000).saturating_add(m.mtime_nsec()),
            ctime_ns: m.ctime().saturating_mul(1_000_000_000).saturating_add(m.ctime_nsec()),
            ino: m.ino(),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    tool: Stat,
    files: Vec<(PathBuf, Stat)>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    format: u32,
    /// (declared name, real path) → closure.
    tools: BTreeMap<(String, PathBuf), Entry>,
}

/// The saved closures of one workspace's tools.
pub(crate) struct Cache {
    path: PathBuf,
    saved: Saved,
    changed: bool,
}

impl Cache {
    pub(crate) fn load(cache_dir: &Path, root: &Path) -> Self {
        let path = cache_file::path_for(cache_dir, "tool-closures", root);
        let saved = cache_file::read::<Saved>(&path).filter(|s| s.format == FORMAT).unwrap_or_default();
        Self { path, saved, changed: false }
    }

    /// The files of the closure of tool `name`, whose real binary is `real`
    /// (canonical): `real` first, then the others sorted. Saved ones are
    /// reused while the tool and every file keep their stat fields.
    pub(crate) fn closure(
        &self,
        name: &str,
        real: &Path,
        host_path: &OsStr,
    ) -> Result<(Vec<PathBuf>, Option<Entry>), NoAnswer> {
        let key = (name.to_owned(), real.to_path_buf());
        if let Some(e) = self.saved.tools.get(&key)
            && Stat::of(real) == Some(e.tool)
            && e.files.iter().all(|(p, st)| Stat::of(p) == Some(*st))
        {
            return Ok((e.files.iter().map(|(p, _)| p.clone()).collect(), None));
        }
        let files = discover(name, real, host_path)?;
        let entry = Stat::of(real)
            .map(|tool| Entry { tool, files: files.iter().filter_map(|p| Some((p.clone(), Stat::of(p)?))).collect() });
        Ok((files, entry))
    }

    pub(crate) fn insert(&mut self, name: &str, real: &Path, entry: Entry) {
        self.saved.tools.insert((name.to_owned(), real.to_path_buf()), entry);
        self.changed = true;
    }

    /// Writes the file when a closure was discovered, keeping only the
    /// tools of `used` (closures of tools no longer declared go).
    pub(crate) fn save(mut self, used: &BTreeSet<(String, PathBuf)>) {
        if !self.changed {
            return;
        }
        self.saved.format = FORMAT;
        self.saved.tools.retain(|k, _| used.contains(k));
        cache_file::write(&self.path, &self.saved);
    }
}

/// The closure files of each tool (name → (found, real path)): saved ones
/// reused, the others discovered (in parallel) and saved.
pub(crate) fn of_tools<'a>(
    cache_dir: &Path,
    root: &Path,
    tools: &'a BTreeMap<String, (PathBuf, PathBuf)>,
    host_path: &OsStr,
) -> Result<BTreeMap<&'a str, Vec<PathBuf>>, (String, NoAnswer)> {
    use rayon::prelude::*;
    let mut cache = Cache::load(cache_dir, root);
    let found: Vec<(Vec<PathBuf>, Option<Entry>)> = tools
        .par_iter()
        .map(|(name, (_, real))| cache.closure(name, real, host_path).map_err(|e| (name.clone(), e)))
        .collect::<Result<_, _>>()?;
    let mut out = BTreeMap::new();
    for ((name, (_, real)), (files, entry)) in tools.iter().zip(found) {
        if let Some(entry) = entry {
            cache.insert(name, real, entry);
        }
        out.insert(name.as_str(), files);
    }
    cache.save(&tools.iter().map(|(n, (_, real))| (n.clone(), real.clone())).collect());
    Ok(out)
}

/// Finds the closure of a tool (see the module docs): `real` first, then
/// every other file sorted, each canonical. A file that cannot be examined
/// is left out of the closure (the build will then fail to run it, and say
/// so); discovery fails only when a driver or loader does not answer in
/// [`ANSWER_TIME`].
pub(crate) fn discover(name: &str, real: &Path, host_path: &OsStr) -> Result<Vec<PathBuf>, NoAnswer> {
    // Each path with whether its libraries are already in (what the
    // loader lists is its whole transitive closure: listing those again
    // would spawn once per library for nothing).
    let mut todo: Vec<(PathBuf, bool)> = Vec::new();
    if is_driver(name) || real.file_name().and_then(OsStr::to_str).is_some_and(is_driver) {
        todo.extend(driver_files(real, host_path)?.into_iter().map(|p| (p, false)));
    }
    todo.push((real.to_path_buf(), false));
    let mut found: BTreeSet<PathBuf> = BTreeSet::new();
    // The loader of the tool, asked for the libraries of files that name
    // none themselves (a plugin `.so`).
    let mut default_loader: Option<PathBuf> = None;
    while let Some((f, listed)) = todo.pop() {
        let Ok(f) = std::fs::canonicalize(&f) else { continue };
        if found.len() >= MAX_FILES || !f.is_file() || !found.insert(f.clone()) || listed {
            continue;
        }
        match kind(&f) {
            Kind::Elf { loader: Some(loader) } => {
                let loader = std::fs::canonicalize(&loader).unwrap_or(loader);
                todo.extend(loader_list(&loader, &f)?.into_iter().map(|p| (p, true)));
                default_loader.get_or_insert_with(|| loader.clone());
                todo.push((loader, true));
            }
            Kind::Elf { loader: None } => {
                if let Some(loader) = &default_loader {
                    todo.extend(loader_list(loader, &f)?.into_iter().map(|p| (p, true)));
                }
            }
            Kind::Script { interpreter, arg } => {
                // `#!/usr/bin/env python3`: python3 too, as PATH finds it.
                if interpreter.file_name() == Some(OsStr::new("env"))
                    && let Some(arg) = arg.filter(|a| !a.starts_with('-'))
                    && let Ok(Some(p)) = crate::which(&arg, host_path)
                {
                    todo.push((p, false));
                }
                todo.push((interpreter, false));
            }
            Kind::Other => {}
        }
    }
    let real = std::fs::canonicalize(real).unwrap_or_else(|_| real.to_path_buf());
    found.remove(&real);
    Ok(std::iter::once(real).chain(found).collect())
}

/// Whether a tool named so is a compiler driver that answers
/// `-print-prog-name=`: `cc`, `gcc`, `g++`, `c++`, `clang`, `clang++`,
/// also with a target prefix or version suffix (`x86_64-linux-gnu-gcc-12`).
pub(crate) fn is_driver(name: &str) -> bool {
    let base = match name.rsplit_once('-') {
        Some((base, v)) if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.') => base,
        _ => name,
    };
    let last = base.rsplit('-').next().unwrap_or(base);
    matches!(last, "cc" | "gcc" | "g++" | "c++" | "clang" | "clang++")
}

/// The programs and files a compiler driver runs, as it names them. A bare
/// name (`as`: the driver looks for it on PATH) is looked up on the host
/// PATH; names it does not know come back unchanged and are left out.
fn driver_files(driver: &Path, host_path: &OsStr) -> Result<Vec<PathBuf>, NoAnswer> {
    let asks = DRIVER_PROGRAMS
        .iter()
        .map(|p| (format!("-print-prog-name={p}"), *p))
        .chain(DRIVER_FILES.iter().map(|f| (format!("-print-file-name={f}"), *f)));
    let mut out = Vec::new();
    for (arg, name) in asks {
        let Some(answer) = ask(driver, &arg)? else { continue };
        let answer = PathBuf::from(answer);
        if answer.is_absolute() {
            out.push(answer);
        } else if answer.as_os_str() == name
            && DRIVER_PROGRAMS.contains(&name)
            && let Ok(Some(p)) = crate::which(name, host_path)
        {
            out.push(p);
        }
    }
    Ok(out)
}

/// The first line `program ARG` prints, run with an empty environment
/// (`None` when it fails or prints nothing).
fn ask(program: &Path, arg: &str) -> Result<Option<String>, NoAnswer> {
    let Some((true, out)) = answer(Command::new(program).arg(arg).env_clear().env("LC_ALL", "C"), program, arg)? else {
        return Ok(None);
    };
    let Ok(line) = String::from_utf8(out) else { return Ok(None) };
    let line = line.lines().next().unwrap_or_default().trim();
    Ok((!line.is_empty()).then(|| line.to_owned()))
}

/// Whether `command` exited 0 and what it printed on stdout, once it exits
/// within [`ANSWER_TIME`] (`None` when it cannot start); past that time it
/// is killed.
fn answer(command: Command, program: &Path, question: &str) -> Result<Option<(bool, Vec<u8>)>, NoAnswer> {
    let Ok(mut child) = command.stdout(Output::Pipe).spawn() else { return Ok(None) };
    let Some(mut stdout) = child.take_stdout() else { return Ok(None) };
    // Read while it runs: a long answer must not fill the pipe and stall it.
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).map(|_| out)
    });
    let status = match child.wait_timeout(ANSWER_TIME) {
        Ok(Some(status)) => status,
        Ok(None) => {
            let _ = child.terminate(Duration::ZERO);
            return Err(NoAnswer { program: program.to_path_buf(), question: question.to_owned() });
        }
        Err(_) => return Ok(None),
    };
    let out = reader.join().ok().and_then(Result::ok);
    Ok(out.map(|o| (status.success(), o)))
}

/// The files `loader --list file` says it maps (the loader itself
/// included), with an empty environment: no `LD_LIBRARY_PATH` of the user's
/// shell, as none reaches a builder.
fn loader_list(loader: &Path, file: &Path) -> Result<Vec<PathBuf>, NoAnswer> {
    let question = format!("--list {}", file.display());
    let out = answer(Command::new(loader).arg("--list").arg(file).env_clear(), loader, &question)?;
    // Its listing counts even when it exits non-zero (a library not found).
    Ok(out.map(|(_, o)| parse_list(&o)).unwrap_or_default())
}

/// The paths in `ld.so --list` output: `name => /path (0x…)` and
/// `/path (0x…)` lines; `linux-vdso.so.1 (0x…)` and `=> not found` have none.
pub(crate) fn parse_list(out: &[u8]) -> Vec<PathBuf> {
    out.split(|b| *b == b'\n')
        .filter_map(|line| {
            let line = line.trim_ascii();
            let path = match line.windows(4).position(|w| w == b" => ") {
                Some(at) => &line[at + 4..],
                None => line,
            };
            let end = path.windows(2).position(|w| w == b" (").unwrap_or(path.len());
            let path = &path[..end];
            path.starts_with(b"/").then(|| PathBuf::from(OsStr::from_bytes(path)))
        })
        .collect()
}

enum Kind {
    Elf { loader: Option<PathBuf> },
    Script { interpreter: PathBuf, arg: Option<String> },
    Other,
}

/// What `f` is, from its first bytes (and, for ELF, its program headers).
fn kind(f: &Path) -> Kind {
    let Ok(file) = std::fs::File::open(f) else { return Kind::Other };
    let mut head = [0u8; 4];
    let mut reader = BufReader::new(file);
    if reader.read_exact(&mut head).is_err() {
        return Kind::Other;
    }
    if head.starts_with(b"#!") {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).is_err() {
            return Kind::Other;
        }
        let mut text = head[2..].to_vec();
        text.extend_from_slice(&line);
        return shebang(&text);
    }
    if &head != b"\x7fELF" {
        return Kind::Other;
    }
    Kind::Elf { loader: elf_loader(reader.into_inner()) }
}

/// The interpreter and its first argument of a `#!` line (without `#!`).
fn shebang(text: &[u8]) -> Kind {
    let text = String::from_utf8_lossy(text);
    let mut words = text.lines().next().unwrap_or("").split_whitespace();
    match words.next() {
        Some(i) if i.starts_with('/') => {
            Kind::Script { interpreter: PathBuf::from(i), arg: words.next().map(str::to_owned) }
        }
        _ => Kind::Other,
    }
}

/// The `PT_INTERP` of an ELF file (`None`: static, or a shared library).
fn elf_loader(file: std::fs::File) -> Option<PathBuf> {
    let cache = object::ReadCache::new(file);
    match object::FileKind::parse(&cache).ok()? {
        object::FileKind::Elf64 => interp::<object::elf::FileHeader64<object::Endianness>>(&cache),
        object::FileKind::Elf32 => interp::<object::elf::FileHeader32<object::Endianness>>(&cache),
        _ => None,
    }
}

/// [`elf_loader`] for one ELF class.
fn interp<H: object::read::elf::FileHeader>(data: &object::ReadCache<std::fs::File>) -> Option<PathBuf> {
    use object::read::elf::ProgramHeader;
    let header = H::parse(data).ok()?;
    let endian = header.endian().ok()?;
    header.program_headers(endian, data).ok()?.iter().find_map(|ph| {
        let bytes = ph.interpreter(endian, data).ok()??;
        let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
        Some(PathBuf::from(OsStr::from_bytes(bytes)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drivers_are_told_by_name() {
        for d in ["cc", "gcc", "g++", "c++", "clang", "clang++", "gcc-12", "x86_64-linux-gnu-gcc-12", "clang-14.0"] {
            assert!(is_driver(d), "{d}");
        }
        for d in ["sh", "ld", "tcc1", "ccache", "python3", "cc1", "gccgo"] {
            assert!(!is_driver(d), "{d}");
        }
    }

    #[test]
    fn loader_output_is_parsed() {
        let out = b"\tlinux-vdso.so.1 (0x00007ffd)\n\tlibfoo.so => /opt/x/bin/../lib/libfoo.so (0x00007f)\n\
            \tlibbar.so => not found\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f3d)\n";
        assert_eq!(
            parse_list(out),
            [PathBuf::from("/opt/x/bin/../lib/libfoo.so"), PathBuf::from("/lib64/ld-linux-x86-64.so.2")]
        );
    }
}
