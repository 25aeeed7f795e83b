//! Resolving a hex prefix (at least 8 characters) to the one object it names.

use brr_hash::{DIGEST_LEN, Digest};

use crate::{Store, StoreError};

/// Shortest prefix accepted.
pub const MIN_PREFIX_LEN: usize = 8;

/// How many candidates an ambiguity error lists.
const MAX_CANDIDATES: usize = 10;

/// The smallest and largest 32-byte digests starting with the hex `prefix`.
/// An odd-length prefix fixes the high nibble of its last byte only.
fn bounds(prefix: &str) -> Option<([u8; DIGEST_LEN], [u8; DIGEST_LEN])> {
    let mut lo = [0u8; DIGEST_LEN];
    let mut hi = [0xffu8; DIGEST_LEN];
    for (i, c) in prefix.bytes().enumerate() {
        let nibble = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        let byte = i / 2;
        if i % 2 == 0 {
            lo[byte] = nibble << 4;
            hi[byte] = (nibble << 4) | 0x0f;
        } else {
            lo[byte] |= nibble;
            hi[byte] = lo[byte];
        }
    }
    Some((lo, hi))
}

impl Store {
    /// The unique object whose hex digest starts with `prefix` (lowercase
    /// hex, at least 8 characters). Errors list the candidates when several
    /// objects match.
    pub fn resolve_prefix(&self, prefix: &str) -> Result<Digest, StoreError> {
        if prefix.len() > DIGEST_LEN * 2 {
            return Err(StoreError::InvalidPrefix { prefix: prefix.to_owned() });
        }
        let (lo, hi) = bounds(prefix).ok_or_else(|| StoreError::InvalidPrefix { prefix: prefix.to_owned() })?;
        if prefix.len() < MIN_PREFIX_LEN {
            return Err(StoreError::PrefixTooShort { prefix: prefix.to_owned() });
        }
        // SQLite compares BLOBs with memcmp, so this is a range scan of the
        // primary key.
        let mut found: Vec<Digest> = self.db.read(|tx| {
            let mut stmt =
                tx.prepare_cached("SELECT hash FROM objects WHERE hash >= ?1 AND hash <= ?2 ORDER BY hash LIMIT ?3")?;
            let limit = i64::try_from(MAX_CANDIDATES + 1).unwrap_or(i64::MAX);
            let rows = stmt.query_map(rusqlite::params![lo, hi, limit], |r| r.get::<_, [u8; DIGEST_LEN]>(0))?;
            Ok(rows.map(|r| r.map(Digest::from_bytes)).collect::<Result<_, _>>()?)
        })?;
        match found.as_slice() {
            [] => Err(StoreError::PrefixNotFound { prefix: prefix.to_owned() }),
            [one] => Ok(*one),
            _ => {
                found.truncate(MAX_CANDIDATES);
                Err(StoreError::AmbiguousPrefix { prefix: prefix.to_owned(), candidates: found })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_cover_exactly_the_prefix() {
        let (lo, hi) = bounds("abc").unwrap_or_default();
        assert_eq!(&lo[..3], &[0xab, 0xc0, 0x00]);
        assert_eq!(&hi[..3], &[0xab, 0xcf, 0xff]);
        let (lo, hi) = bounds("0a1b").unwrap_or_default();
        assert_eq!(&lo[..3], &[0x0a, 0x1b, 0x00]);
        assert_eq!(&hi[..3], &[0x0a, 0x1b, 0xff]);
        assert!(bounds("ABCD").is_none());
        assert!(bounds("xyz").is_none());
    }
}
