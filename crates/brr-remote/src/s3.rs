//! S3-compatible object stores as remote caches (AWS S3, MinIO, Ceph,
//! moto…), behind the `s3` cargo feature.
//!
//! An S3 bucket is the HTTP cache protocol with other paths and signed
//! requests, so the [`HttpBackend`] serves it, with an [`S3Signer`] adding
//! AWS Signature Version 4 headers to every request:
//!
//! | URL | requests go to (path-style) |
//! |---|---|
//! | `s3://BUCKET[/PREFIX]` | `https://s3.<region>.amazonaws.com/BUCKET/PREFIX/{cas,ac}/<sha256>` |
//! | `s3+http://HOST:PORT/BUCKET[/PREFIX]` | `http://HOST:PORT/BUCKET/PREFIX/…` (a local or private server) |
//! | `s3+https://HOST/BUCKET[/PREFIX]` | `https://HOST/BUCKET/PREFIX/…` |
//!
//! Credentials come from the usual variables: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (optional), and the region
//! from `AWS_REGION` or `AWS_DEFAULT_REGION` (default `us-east-1`). Missing
//! objects answer 404 (`GET`, `HEAD`), as the HTTP protocol's do; 403 is a
//! refusal (bad credentials), 5xx a transient failure.
//!
//! Signing, per AWS's SigV4 description: the canonical request is `METHOD`,
//! the URI path, an empty query, the headers `host`, `x-amz-content-sha256`
//! (the payload's SHA-256) and `x-amz-date` (plus `x-amz-security-token`
//! with a session token), their names, and the payload hash; the string to
//! sign is `AWS4-HMAC-SHA256`, the time, the scope
//! `DATE/REGION/s3/aws4_request` and the canonical request's SHA-256; the
//! key is HMAC-SHA256 chained over `AWS4`+secret, date, region, `s3`,
//! `aws4_request`.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::http::{HttpBackend, Timeouts};
use crate::{RemoteError, hex, redact_url, sha256};

/// Credentials and region for SigV4. `Debug` hides the secrets.
#[derive(Clone)]
pub struct S3Signer {
    access_key: String,
    secret_key: String,
    session_token: Option<String>,
    region: String,
}

impl std::fmt::Debug for S3Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Signer").field("region", &self.region).finish_non_exhaustive()
    }
}

impl S3Signer {
    pub fn new(access_key: &str, secret_key: &str, session_token: Option<&str>, region: &str) -> Self {
        Self {
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            session_token: session_token.map(str::to_owned),
            region: region.to_owned(),
        }
    }

    /// From `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`
    /// and `AWS_REGION`/`AWS_DEFAULT_REGION`; `None` without the two keys.
    pub fn from_env() -> Option<Self> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".to_owned());
        Some(Self::new(
            &var("AWS_ACCESS_KEY_ID")?,
            &var("AWS_SECRET_ACCESS_KEY")?,
            var("AWS_SESSION_TOKEN").as_deref(),
            &region,
        ))
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The headers that sign `METHOD host path` with a payload whose SHA-256
    /// is `payload_sha256`, at `now`, also signing the (lowercase) headers
    /// `extra` the request carries: `x-amz-date`, `x-amz-content-sha256`,
    /// maybe `x-amz-security-token`, and `Authorization`.
    pub fn headers(
        &self,
        (method, host, path): (&str, &str, &str),
        extra: &[(&str, &str)],
        payload_sha256: &[u8; 32],
        now: SystemTime,
    ) -> Vec<(String, String)> {
        let (date, time) = amz_date(now);
        let payload = hex(payload_sha256);
        let mut signed: Vec<(&str, &str)> =
            vec![("host", host), ("x-amz-content-sha256", &payload), ("x-amz-date", &time)];
        if let Some(token) = &self.session_token {
            signed.push(("x-amz-security-token", token));
        }
        signed.extend_from_slice(extra);
        signed.sort_unstable();
        let names: Vec<&str> = signed.iter().map(|(n, _)| *n).collect();
        let names = names.join(";");
        let canonical_headers = signed.iter().fold(String::new(), |mut out, (n, v)| {
            let _ = writeln!(out, "{n}:{}", v.trim());
            out
        });
        let canonical = format!("{method}\n{path}\n\n{canonical_headers}\n{names}\n{payload}");
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let to_sign = format!("AWS4-HMAC-SHA256\n{time}\n{scope}\n{}", hex(&sha256(canonical.as_bytes())));
        let mut key = hmac_sha256(format!("AWS4{}", self.secret_key).as_bytes(), date.as_bytes());
        for part in [self.region.as_bytes(), b"s3", b"aws4_request"] {
            key = hmac_sha256(&key, part);
        }
        let signature = hex(&hmac_sha256(&key, to_sign.as_bytes()));
        let mut out: Vec<(String, String)> = signed
            .iter()
            .filter(|(n, _)| *n != "host" && !extra.iter().any(|(e, _)| e == n))
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        out.push((
            "Authorization".to_owned(),
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={names}, Signature={signature}",
                self.access_key
            ),
        ));
        out
    }
}

/// HMAC-SHA256 (RFC 2104 over SHA-256's 64-byte blocks).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(message);
    let mut outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&sha256(&inner));
    sha256(&outer)
}

/// `(YYYYMMDD, YYYYMMDDTHHMMSSZ)` in UTC.
fn amz_date(now: SystemTime) -> (String, String) {
    let secs = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = format!("{year:04}{month:02}{day:02}");
    let time = format!("{date}T{:02}{:02}{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60);
    (date, time)
}

/// Opens `s3://BUCKET[/PREFIX]`, `s3+http://HOST/BUCKET[/PREFIX]` or
/// `s3+https://…` with the credentials of the environment.
pub fn open(url: &str, timeouts: Timeouts) -> Result<HttpBackend, RemoteError> {
    let signer = S3Signer::from_env().ok_or_else(|| RemoteError::Refused {
        remote: redact_url(url),
        what: "the S3 credentials".to_owned(),
        message: "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_owned(),
    })?;
    open_with(url, timeouts, signer)
}

/// [`open`] with the given credentials.
pub fn open_with(url: &str, timeouts: Timeouts, signer: S3Signer) -> Result<HttpBackend, RemoteError> {
    let bad = || RemoteError::Url { url: redact_url(url) };
    let endpoint = if let Some(rest) = url.strip_prefix("s3://") {
        if rest.is_empty() || rest.contains(['@', '?', '#']) {
            return Err(bad());
        }
        format!("https://s3.{}.amazonaws.com/{rest}", signer.region())
    } else if let Some(rest) = url.strip_prefix("s3+http://").or_else(|| url.strip_prefix("s3+https://")) {
        let scheme = if url.starts_with("s3+https://") { "https" } else { "http" };
        // A bucket is needed after the host.
        if !rest.trim_end_matches('/').contains('/') {
            return Err(bad());
        }
        format!("{scheme}://{rest}")
    } else {
        return Err(bad());
    };
    let mut backend = HttpBackend::new(&endpoint, timeouts).map_err(|_| bad())?;
    backend.sign_with(signer, url);
    Ok(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test case 2.
    #[test]
    fn hmac_matches_the_rfc() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        let at = |s: u64| amz_date(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s));
        assert_eq!(at(0), ("19700101".to_owned(), "19700101T000000Z".to_owned()));
        // 2013-05-24T00:00:00Z, the date of AWS's SigV4 examples.
        assert_eq!(at(1_369_353_600).1, "20130524T000000Z");
        assert_eq!(at(951_825_599).1, "20000229T115959Z");
    }

    /// AWS's documented example of a signed `GET` of an object (S3's
    /// "Signature Calculations for the Authorization Header" page).
    #[test]
    fn signatures_match_the_documented_example() {
        let signer =
            S3Signer::new("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None, "us-east-1");
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_369_353_600);
        let request = ("GET", "examplebucket.s3.amazonaws.com", "/test.txt");
        let headers = signer.headers(request, &[("range", "bytes=0-9")], &sha256(b""), at);
        let auth = &headers.iter().find(|(n, _)| n == "Authorization").unwrap().1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert!(!format!("{signer:?}").contains("wJalr"));
    }
}
