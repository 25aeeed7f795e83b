//! S3-compatible object stores as remote caches (AWS S3, MinIO, Ceph,
//! moto…), behind the `s3` cargo feature.
//!
//! An S3 bucket is the HTTP cache protocol with other paths and signed
//! requests, so the [`HttpBackend`] serves it, sending every request to a
//! URL that a [`Presigner`] signs:
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
//! Signing is rusty-s3's: every request goes to a URL presigned with AWS
//! Signature Version 4 (the `X-Amz-*` query parameters, valid for
//! [`EXPIRES`], payload unsigned), so no `Authorization` header is sent.
//! Messages never show these URLs, only the remote's as given and the
//! request's path below it.

use std::time::{Duration, SystemTime};

use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};

use crate::http::{HttpBackend, Timeouts};
use crate::{RemoteError, redact_url};

/// How long a presigned URL stays valid: as long as the clock skew S3
/// tolerates for signed headers, so a client clock behind the server's by
/// less than that still works.
pub const EXPIRES: Duration = Duration::from_secs(15 * 60);

/// Credentials and region for SigV4. `Debug` hides the secrets.
#[derive(Clone)]
pub struct S3Signer {
    credentials: Credentials,
    region: String,
}

impl std::fmt::Debug for S3Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Signer").field("region", &self.region).finish_non_exhaustive()
    }
}

impl S3Signer {
    pub fn new(access_key: &str, secret_key: &str, session_token: Option<&str>, region: &str) -> Self {
        let credentials = match session_token {
            Some(token) => Credentials::new_with_token(access_key, secret_key, token),
            None => Credentials::new(access_key, secret_key),
        };
        Self { credentials, region: region.to_owned() }
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

    /// The URL of a `method` (`GET`, `HEAD` or `PUT`) request of the object
    /// `key` in `bucket`, presigned at `at` for `expires`.
    pub fn presign(&self, bucket: &Bucket, method: &str, key: &str, expires: Duration, at: SystemTime) -> String {
        // Before 1970 or after 9999: signed with the epoch, and refused.
        let at = jiff::Timestamp::try_from(at).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let creds = Some(&self.credentials);
        let url = match method {
            "GET" => bucket.get_object(creds, key).sign_with_time(expires, &at),
            "HEAD" => bucket.head_object(creds, key).sign_with_time(expires, &at),
            "PUT" => bucket.put_object(creds, key).sign_with_time(expires, &at),
            _ => unreachable!("S3 request method {method}"),
        };
        url.into()
    }
}

/// What [`HttpBackend`] needs to send a request to a bucket: where, as whom,
/// and the key prefix.
#[derive(Clone)]
pub struct Presigner {
    signer: S3Signer,
    bucket: Bucket,
    /// Prepended to the backend's paths (`/cas/…`); no `/` at its end.
    prefix: String,
}

impl Presigner {
    /// The presigned URL of a `method` request of `path` (`/cas/<sha256>`,
    /// `/ac/<id>`) below the prefix, valid from now for [`EXPIRES`].
    pub fn url(&self, method: &str, path: &str) -> String {
        let key = format!("{}{path}", self.prefix);
        self.signer.presign(&self.bucket, method, key.trim_start_matches('/'), EXPIRES, SystemTime::now())
    }
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
    // The endpoint, and the bucket with the prefix after it.
    let (endpoint, path) = if let Some(rest) = url.strip_prefix("s3://") {
        (format!("https://s3.{}.amazonaws.com", signer.region()), rest)
    } else if let Some(rest) = url.strip_prefix("s3+http://").or_else(|| url.strip_prefix("s3+https://")) {
        let scheme = if url.starts_with("s3+https://") { "https" } else { "http" };
        let (host, path) = rest.split_once('/').ok_or_else(bad)?;
        (format!("{scheme}://{host}"), path)
    } else {
        return Err(bad());
    };
    // Credentials come from the environment, never the URL.
    if endpoint.contains('@') || path.contains(['@', '?', '#']) {
        return Err(bad());
    }
    let path = path.trim_end_matches('/');
    let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
    if bucket.is_empty() {
        return Err(bad());
    }
    let mut backend = HttpBackend::new(&format!("{endpoint}/{path}"), timeouts).map_err(|_| bad())?;
    let endpoint = endpoint.parse::<url::Url>().map_err(|_| bad())?;
    let bucket =
        Bucket::new(endpoint, UrlStyle::Path, bucket.to_owned(), signer.region().to_owned()).map_err(|_| bad())?;
    backend.presign_with(Presigner { signer, bucket, prefix: prefix.to_owned() }, url);
    Ok(backend)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend as _;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    /// AWS's documented example of a presigned `GET` of an object (S3's
    /// "Authenticating Requests: Using Query Parameters" page), at
    /// 2013-05-24T00:00:00Z, valid for a day.
    #[test]
    fn signatures_match_the_documented_example() {
        let signer = S3Signer::new("AKIAIOSFODNN7EXAMPLE", SECRET, None, "us-east-1");
        let endpoint = "https://s3.amazonaws.com".parse().unwrap();
        let bucket = Bucket::new(endpoint, UrlStyle::VirtualHost, "examplebucket", "us-east-1").unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600);
        let url = signer.presign(&bucket, "GET", "test.txt", Duration::from_secs(86_400), at);
        assert_eq!(
            url,
            "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
        assert!(!format!("{signer:?}").contains("wJalr"));
    }

    fn presigner(url: &str, token: Option<&str>) -> Result<HttpBackend, RemoteError> {
        open_with(url, Timeouts::default(), S3Signer::new("AKIDEXAMPLE", SECRET, token, "eu-west-1"))
    }

    #[test]
    fn urls_name_a_bucket_and_keys_go_below_the_prefix() {
        let b = presigner("s3+http://127.0.0.1:9000/bkt/ci/cache/", Some("TOKEN")).unwrap();
        assert_eq!(b.url(), "s3+http://127.0.0.1:9000/bkt/ci/cache/");
        let get = b.presigner().unwrap().url("GET", "/cas/00ff");
        assert!(
            get.starts_with("http://127.0.0.1:9000/bkt/ci/cache/cas/00ff?X-Amz-Algorithm=AWS4-HMAC-SHA256&"),
            "{get}"
        );
        assert!(get.contains("X-Amz-Credential=AKIDEXAMPLE%2F") && get.contains("%2Feu-west-1%2Fs3%2Faws4_request"));
        assert!(get.contains("X-Amz-Security-Token=TOKEN") && !get.contains("wJalr"), "{get}");
        let b = presigner("s3://bkt", None).unwrap();
        let put = b.presigner().unwrap().url("PUT", "/ac/01");
        assert!(put.starts_with("https://s3.eu-west-1.amazonaws.com/bkt/ac/01?"), "{put}");
        assert!(!format!("{b:?}").contains("wJalr"));
        for bad in [
            "s3://",
            "s3:///prefix",
            "s3+http://host",
            "s3+http://host/",
            "s3+https://key:secret@host/bkt",
            "s3://bkt?x=1",
            "s3+http://ho st/bkt",
            "http://host/bkt",
        ] {
            let e = presigner(bad, None).unwrap_err();
            assert!(matches!(e, RemoteError::Url { .. }), "{bad}: {e}");
            assert!(!e.to_string().contains("secret"), "{e}");
        }
    }
}
