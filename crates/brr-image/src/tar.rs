//! A deterministic tar writer: POSIX ustar headers, with a PAX extended
//! header only for paths, link targets or sizes that do not fit.
//!
//! Every entry is owned by uid/gid 0 with empty owner names, has
//! [`MTIME`] as its modification time, and one of three modes (0755 for
//! folders and executables, 0644 for files, 0777 for symlinks), so the
//! bytes depend only on the entries' paths, kinds and contents. The caller
//! adds entries in a fixed order.

const BLOCK: usize = 512;

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
    fn mode(self) -> u64 {
        match self {
            Self::Dir | Self::Executable => 0o755,
            Self::File => 0o644,
            Self::Symlink => 0o777,
        }
    }

    fn flag(self) -> u8 {
        match self {
            Self::Dir => b'5',
            Self::File | Self::Executable => b'0',
            Self::Symlink => b'2',
        }
    }
}

/// A tar archive being written into memory.
#[derive(Debug, Default)]
pub struct Builder {
    out: Vec<u8>,
}

impl Builder {
    /// Adds an entry: `path` relative, without a leading `/` (folders get a
    /// trailing `/`), `data` the file's bytes or the symlink's target.
    pub fn append(&mut self, path: &str, kind: Kind, data: &[u8]) {
        let path = if kind == Kind::Dir { format!("{}/", path.trim_end_matches('/')) } else { path.to_owned() };
        let (link, body): (&[u8], &[u8]) = if kind == Kind::Symlink { (data, &[]) } else { (&[], data) };
        let size = body.len() as u64;
        let mut pax = Vec::new();
        let (prefix, name) = split_path(&path).unwrap_or_else(|| {
            pax_record(&mut pax, "path", path.as_bytes());
            ("", "")
        });
        let name = if name.is_empty() { truncated(&path, 100) } else { name };
        if link.len() > 100 {
            pax_record(&mut pax, "linkpath", link);
        }
        let size_fits = size < 0o77_777_777_777;
        if !size_fits {
            pax_record(&mut pax, "size", size.to_string().as_bytes());
        }
        if !pax.is_empty() {
            let header = header("PaxHeader", "", pax.len() as u64, 0o644, b'x', b"");
            self.out.extend_from_slice(&header);
            self.push_padded(&pax);
        }
        let link = if link.len() > 100 { &link[..100] } else { link };
        let header = header(name, prefix, if size_fits { size } else { 0 }, kind.mode(), kind.flag(), link);
        self.out.extend_from_slice(&header);
        self.push_padded(body);
    }

    /// The archive, with its two zero blocks at the end.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&[0; 2 * BLOCK]);
        self.out
    }

    fn push_padded(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
        let rem = data.len() % BLOCK;
        if rem != 0 {
            self.out.resize(self.out.len() + BLOCK - rem, 0);
        }
    }
}

/// `path` as ustar's (prefix, name), or `None` when it needs a PAX path.
fn split_path(path: &str) -> Option<(&str, &str)> {
    if path.len() <= 100 {
        return Some(("", path));
    }
    // The name may keep a folder's trailing `/`: split before it.
    let search = path.strip_suffix('/').unwrap_or(path);
    search
        .char_indices()
        .filter(|&(_, c)| c == '/')
        .map(|(i, _)| (&path[..i], &path[i + 1..]))
        .find(|(prefix, name)| prefix.len() <= 155 && name.len() <= 100 && !name.is_empty())
}

/// The longest prefix of `s` of at most `max` bytes on a char boundary.
fn truncated(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Appends `"<len> key=value\n"`, where len counts the whole record.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = key.len() + value.len() + 3; // space, `=`, newline
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn header(name: &str, prefix: &str, size: u64, mode: u64, flag: u8, link: &[u8]) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    put(&mut h[0..100], name.as_bytes());
    octal(&mut h[100..108], mode);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], MTIME);
    h[156] = flag;
    put(&mut h[157..257], link);
    put(&mut h[257..263], b"ustar\0");
    put(&mut h[263..265], b"00");
    octal(&mut h[329..337], 0);
    octal(&mut h[337..345], 0);
    put(&mut h[345..500], prefix.as_bytes());
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    let digits = format!("{sum:06o}\0 ");
    put(&mut h[148..156], digits.as_bytes());
    h
}

fn put(field: &mut [u8], bytes: &[u8]) {
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
}

/// Zero-padded octal filling the field but its last byte (a NUL).
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    put(field, text.as_bytes());
    field[width] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_fixed_and_checksummed() {
        let mut b = Builder::default();
        b.append("app", Kind::Dir, b"");
        b.append("app/run", Kind::Executable, b"#!/bin/sh\n");
        let out = b.finish();
        assert_eq!(out.len(), 512 + 512 + 512 + 1024);
        let h = &out[512..1024];
        assert_eq!(&h[0..8], b"app/run\0");
        assert_eq!(&h[100..108], b"0000755\0");
        assert_eq!(&h[136..148], b"00000000000\0");
        let mut copy = h.to_vec();
        copy[148..156].fill(b' ');
        let sum: u64 = copy.iter().map(|&b| u64::from(b)).sum();
        assert_eq!(std::str::from_utf8(&h[148..154]).unwrap(), format!("{sum:06o}"));
    }

    #[test]
    fn long_paths_get_a_pax_record() {
        let long = format!("d/{}", "f".repeat(120));
        let mut b = Builder::default();
        b.append(&long, Kind::File, b"x");
        let out = b.finish();
        assert_eq!(out[156], b'x');
        let record = format!(" path={long}\n");
        let text = String::from_utf8_lossy(&out[512..1024]);
        let len: usize = text.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(len, len.to_string().len() + record.len());
        assert!(text.contains(&record));
    }

    #[test]
    fn pax_length_counts_its_own_digits() {
        let mut out = Vec::new();
        pax_record(&mut out, "path", &[b'a'; 92]); // 92 + 7 = 99 → "101 " crosses to 3 digits
        let text = String::from_utf8(out.clone()).unwrap();
        let len: usize = text.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(len, out.len());
    }
}
