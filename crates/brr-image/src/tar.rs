//! Layers as deterministic tar archives, written with the `tar` crate.
//!
//! Every entry is owned by uid/gid 0 with empty owner names, has [`MTIME`]
//! as its modification time, and one of three modes (0755 for folders and
//! executables, 0644 for files, 0777 for symlinks), so the bytes depend only
//! on the entries' paths, kinds and contents. GNU headers carry paths and
//! link targets longer than 100 bytes (`././@LongLink` entries), which every
//! OCI tool reads. The caller adds entries in a fixed order.

/// Modification time of every entry: the Unix epoch, as
/// `SOURCE_DATE_EPOCH=0` (brr's builds use the same fixed value).
pub const MTIME: u64 = 0;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    Executable,
    Symlink,
}

impl Kind {
    fn mode(self) -> u32 {
        match self {
            Self::Dir | Self::Executable => 0o755,
            Self::File => 0o644,
            Self::Symlink => 0o777,
        }
    }

    fn entry_type(self) -> ::tar::EntryType {
        match self {
            Self::Dir => ::tar::EntryType::Directory,
            Self::File | Self::Executable => ::tar::EntryType::Regular,
            Self::Symlink => ::tar::EntryType::Symlink,
        }
    }
}

/// A tar archive being written into memory.
pub struct Builder {
    inner: ::tar::Builder<Vec<u8>>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tar::Builder")
    }
}

impl Default for Builder {
    fn default() -> Self {
        let mut inner = ::tar::Builder::new(Vec::new());
        // Symlinks are written as links, never followed.
        inner.follow_symlinks(false);
        Self { inner }
    }
}

impl Builder {
    /// Adds an entry: `path` relative, without a leading `/` (folders get a
    /// trailing `/`), `data` the file's bytes or the symlink's target.
    pub fn append(&mut self, path: &str, kind: Kind, data: &[u8]) -> std::io::Result<()> {
        let mut header = ::tar::Header::new_gnu();
        header.set_entry_type(kind.entry_type());
        header.set_mode(kind.mode());
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        match kind {
            Kind::Dir => {
                header.set_size(0);
                let path = format!("{}/", path.trim_end_matches('/'));
                self.inner.append_data(&mut header, path, std::io::empty())
            }
            Kind::Symlink => {
                header.set_size(0);
                let target = String::from_utf8_lossy(data).into_owned();
                self.inner.append_link(&mut header, path, target)
            }
            Kind::File | Kind::Executable => {
                header.set_size(data.len() as u64);
                self.inner.append_data(&mut header, path, data)
            }
        }
    }

    /// The archive, with its two zero blocks at the end.
    pub fn finish(self) -> std::io::Result<Vec<u8>> {
        self.inner.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(bytes: &[u8]) -> Vec<(String, ::tar::EntryType, u32, u64, Vec<u8>)> {
        let mut archive = ::tar::Archive::new(bytes);
        archive
            .entries()
            .expect("entries")
            .map(|e| {
                let mut e = e.expect("entry");
                let h = e.header().clone();
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut body).expect("read");
                let path = e.path().expect("path").display().to_string();
                (path, h.entry_type(), h.mode().expect("mode"), h.mtime().expect("mtime"), body)
            })
            .collect()
    }

    #[test]
    fn entries_have_fixed_owners_times_and_modes() {
        let mut b = Builder::default();
        b.append("app", Kind::Dir, b"").unwrap();
        b.append("app/run", Kind::Executable, b"#!/bin/sh\n").unwrap();
        b.append("app/latest", Kind::Symlink, b"run").unwrap();
        let out = b.finish().unwrap();
        let got = entries(&out);
        assert_eq!(got[0].0, "app/");
        assert_eq!(
            (got[1].0.as_str(), got[1].2, got[1].3, got[1].4.as_slice()),
            ("app/run", 0o755, 0, &b"#!/bin/sh\n"[..])
        );
        assert_eq!(got[2].1, ::tar::EntryType::Symlink);
        let mut again = Builder::default();
        again.append("app", Kind::Dir, b"").unwrap();
        again.append("app/run", Kind::Executable, b"#!/bin/sh\n").unwrap();
        again.append("app/latest", Kind::Symlink, b"run").unwrap();
        assert_eq!(again.finish().unwrap(), out, "the same entries give the same bytes");
    }

    #[test]
    fn long_paths_survive() {
        let long = format!("d/{}", "f".repeat(120));
        let mut b = Builder::default();
        b.append(&long, Kind::File, b"x").unwrap();
        let got = entries(&b.finish().unwrap());
        assert_eq!((got[0].0.as_str(), got[0].4.as_slice()), (long.as_str(), &b"x"[..]));
    }
}
