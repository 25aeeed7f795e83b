//! Pushing an [`Image`] to a registry over the OCI Distribution API:
//! `HEAD` each blob; a missing one is mounted from another repository of
//! the registry this store pushed it to (`POST ?mount=&from=`), or else
//! uploaded (`POST` an upload, then one monolithic `PUT ?digest=`); then
//! `PUT` the manifest by tag.
//!
//! Plain HTTP is used only for `localhost`, `127.0.0.1` and `[::1]`, or
//! when the caller asks for it; everything else is HTTPS. Credentials come
//! from `BRR_REGISTRY_USER` and `BRR_REGISTRY_PASSWORD`, or else from a
//! Docker-style auth file (`$REGISTRY_AUTH_FILE`,
//! `$DOCKER_CONFIG/config.json`, `~/.docker/config.json`), and are never
//! part of a message. They are sent as HTTP Basic, or, when the registry
//! answers 401 with `WWW-Authenticate: Bearer realm=…` (Docker Hub, GHCR),
//! to that realm (HTTPS, or HTTP on this machine) for a token, which the
//! requests then carry.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use ureq::Body;
use ureq::http::Response;

use crate::{Blob, Image, ImageError, OciDigest};

/// `HOST[:PORT]/REPO[:TAG]`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub host: String,
    pub repo: String,
    pub tag: String,
    /// `sha256:<hex>` when the reference names the image by digest
    /// (`HOST/REPO@sha256:…`).
    pub digest: Option<String>,
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.digest {
            Some(d) => write!(f, "{}/{}@{d}", self.host, self.repo),
            None => write!(f, "{}/{}:{}", self.host, self.repo, self.tag),
        }
    }
}

impl Reference {
    /// Parses `HOST[:PORT]/REPO[:TAG]` (tag default `latest`) or
    /// `HOST[:PORT]/REPO@sha256:<hex>`.
    pub fn parse(reference: &str) -> Result<Self, ImageError> {
        let bad =
            |reason: &str| ImageError::BadReference { reference: reference.to_owned(), reason: reason.to_owned() };
        let (reference_tagged, digest) = match reference.split_once('@') {
            Some((r, d)) => {
                let hex = d.strip_prefix("sha256:").unwrap_or("");
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                    return Err(bad("a digest is `sha256:` and 64 lowercase hex digits"));
                }
                (r, Some(d.to_owned()))
            }
            None => (reference, None),
        };
        let (host, rest) = reference_tagged.split_once('/').ok_or_else(|| bad("it names no registry host"))?;
        if host.is_empty() || host.contains(['@', '?', '#']) {
            return Err(bad("the registry host is malformed"));
        }
        let (repo, tag) = match rest.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ => (rest, "latest"),
        };
        let repo_ok = !repo.is_empty()
            && repo.split('/').all(|part| {
                !part.is_empty()
                    && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            });
        if !repo_ok {
            return Err(bad("a repository is lowercase letters, digits, `.`, `_`, `-` and `/`"));
        }
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            && !tag.starts_with(['.', '-']);
        if !tag_ok {
            return Err(bad("a tag is up to 128 letters, digits, `.`, `_` and `-`"));
        }
        Ok(Self { host: host.to_owned(), repo: repo.to_owned(), tag: tag.to_owned(), digest })
    }

    /// Whether the host is this machine, where plain HTTP is allowed.
    pub fn is_local(&self) -> bool {
        let name = self.host.rsplit_once(':').map_or(self.host.as_str(), |(h, _)| h);
        matches!(name, "localhost" | "127.0.0.1" | "[::1]") || self.host == "[::1]"
    }
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// `HOST/REPO@sha256:…`: the image by digest.
    pub reference: String,
    pub digest: OciDigest,
    /// Blobs uploaded, blobs mounted from another repository of the
    /// registry (no upload), and blobs the repository already had.
    pub uploaded: Vec<OciDigest>,
    pub mounted: Vec<OciDigest>,
    pub present: Vec<OciDigest>,
}

/// Pushes `image` to `to`; `plain_http` allows HTTP to a host that is not
/// this machine. `seen` is a file of the blobs pushed before (`HOST REPO
/// DIGEST` lines; a hint, missing or stale is fine): a blob the target
/// repository lacks is first mounted from a repository it was pushed to,
/// so services that share a layer upload it once per registry (repositories
/// do not see each other's blobs without a mount).
pub fn push(image: &Image, to: &Reference, plain_http: bool, seen: Option<&Path>) -> Result<Pushed, ImageError> {
    if to.digest.is_some() {
        return Err(ImageError::BadReference {
            reference: to.to_string(),
            reason: "a push names the image by a tag, not a digest".to_owned(),
        });
    }
    let client = Client::new(to, plain_http)?;
    let known = seen.map(read_seen).unwrap_or_default();
    let (mut uploaded, mut mounted, mut present) = (Vec::new(), Vec::new(), Vec::new());
    for blob in image.layers.iter().chain([&image.config]) {
        if client.has_blob(&blob.digest)? {
            present.push(blob.digest.clone());
            continue;
        }
        let digest = blob.digest.to_string();
        let from = known.iter().rev().filter(|(h, r, d)| *h == to.host && *r != to.repo && *d == digest);
        let mut done = false;
        for (_, repo, _) in from {
            if client.mount(&blob.digest, repo)? {
                mounted.push(blob.digest.clone());
                done = true;
                break;
            }
        }
        if !done {
            client.upload(blob)?;
            uploaded.push(blob.digest.clone());
        }
    }
    client.put_manifest(&image.manifest, &to.tag)?;
    if let Some(path) = seen {
        let mut lines = String::new();
        for b in image.layers.iter().chain([&image.config]) {
            let _ = writeln!(lines, "{} {} {}", to.host, to.repo, b.digest);
        }
        // Only a hint for later pushes: failing to keep it loses nothing.
        let _ = path.parent().map(std::fs::create_dir_all);
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, lines.as_bytes()));
    }
    let digest = image.manifest.digest.clone();
    Ok(Pushed { reference: format!("{}/{}@{digest}", to.host, to.repo), digest, uploaded, mounted, present })
}

/// The `HOST REPO DIGEST` lines of a `seen` file; malformed lines are skipped.
fn read_seen(path: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split(' ');
            let (h, r, d) = (parts.next()?, parts.next()?, parts.next()?);
            Some((h.to_owned(), r.to_owned(), d.to_owned()))
        })
        .collect()
}

/// `Basic …` for `host`: from `BRR_REGISTRY_USER` and
/// `BRR_REGISTRY_PASSWORD`, or else from a Docker-style auth file (the
/// first of `$REGISTRY_AUTH_FILE`, `$DOCKER_CONFIG/config.json` and
/// `~/.docker/config.json` that exists) whose `auths` name the host.
fn basic_auth(host: &str) -> Result<Option<String>, ImageError> {
    use base64::Engine as _;
    if let Ok(user) = std::env::var("BRR_REGISTRY_USER") {
        let password = std::env::var("BRR_REGISTRY_PASSWORD").unwrap_or_default();
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        return Ok(Some(format!("Basic {pair}")));
    }
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(std::path::PathBuf::from);
    let candidates = [
        var("REGISTRY_AUTH_FILE"),
        var("DOCKER_CONFIG").map(|d| d.join("config.json")),
        var("HOME").map(|h| h.join(".docker/config.json")),
    ];
    let Some(path) = candidates.into_iter().flatten().find(|p| p.is_file()) else { return Ok(None) };
    auth_from_file(&path, host)
}

/// The `Basic …` an auth file holds for `host` (`auths.HOST.auth`, the
/// base64 of `user:password`, or `username` and `password`).
fn auth_from_file(path: &Path, host: &str) -> Result<Option<String>, ImageError> {
    use base64::Engine as _;
    let bad = |message: String| ImageError::AuthFile { path: path.to_path_buf(), message };
    let text = std::fs::read_to_string(path).map_err(|source| ImageError::Io { path: path.to_path_buf(), source })?;
    let file: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| bad(format!("not JSON (line {}, column {}): {e}", e.line(), e.column())))?;
    let auths = file.get("auths").and_then(|a| a.as_object());
    let entry = auths.and_then(|a| {
        [host.to_owned(), format!("https://{host}"), format!("http://{host}")].iter().find_map(|k| a.get(k))
    });
    let Some(entry) = entry else { return Ok(None) };
    if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()).filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD.decode(auth).ok();
        if !decoded.is_some_and(|d| d.contains(&b':')) {
            // The value is a credential: never in the message.
            return Err(bad(format!("`auths.\"{host}\".auth` is not the base64 of `user:password`")));
        }
        return Ok(Some(format!("Basic {auth}")));
    }
    match (entry.get("username").and_then(|u| u.as_str()), entry.get("password").and_then(|p| p.as_str())) {
        (Some(user), Some(password)) => {
            let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            Ok(Some(format!("Basic {pair}")))
        }
        _ => Err(bad(format!("`auths.\"{host}\"` has neither `auth` nor `username` and `password`"))),
    }
}

fn with_auth<B>(auth: Option<&str>, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
    match auth {
        Some(a) => request.header("Authorization", a),
        None => request,
    }
}

/// The `key="value"` (or `key=value`) pairs of a challenge, in order.
fn challenge_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_owned();
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.split_once('"') {
                Some((v, next)) => (v.to_owned(), next),
                None => (quoted.to_owned(), ""),
            },
            None => match after.split_once(',') {
                Some((v, next)) => (v.trim().to_owned(), next),
                None => (after.trim().to_owned(), ""),
            },
        };
        out.push((key, value));
        rest = next.trim_start().trim_start_matches(',');
    }
    out
}

/// `s` for a query string: unreserved characters kept, the rest `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

pub(crate) struct Client {
    /// `scheme://host[:port]`.
    origin: String,
    repo: String,
    registry: String,
    /// What requests carry: Basic credentials, or the bearer token got
    /// with them.
    authorization: Mutex<Option<String>>,
    basic: Option<String>,
    plain_http: bool,
    agent: ureq::Agent,
}

impl Client {
    /// A client of `to`'s registry and repository.
    pub(crate) fn new(to: &Reference, plain_http: bool) -> Result<Self, ImageError> {
        let scheme = if plain_http || to.is_local() { "http" } else { "https" };
        let basic = basic_auth(&to.host)?;
        Ok(Client {
            origin: format!("{scheme}://{}", to.host),
            repo: to.repo.clone(),
            registry: to.host.clone(),
            authorization: Mutex::new(basic.clone()),
            basic,
            plain_http,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(Duration::from_secs(10)))
                .timeout_global(Some(Duration::from_secs(600)))
                .user_agent(concat!("brr/", env!("CARGO_PKG_VERSION")))
                .build()
                .new_agent(),
        })
    }

    /// `GET /v2/<repo>/<path>` (`manifests/REF` or `blobs/DIGEST`), with
    /// `accept` as the media types wanted: the body and its content type.
    pub(crate) fn get(&self, path: &str, accept: &str, limit: u64) -> Result<(Vec<u8>, String), ImageError> {
        let what = format!("GET /v2/{}/{path}", self.repo);
        let url = format!("{}/v2/{}/{path}", self.origin, self.repo);
        let mut response = self.send(&what, |a| with_auth(a, self.agent.get(&url)).header("Accept", accept).call())?;
        if response.status() != 200 {
            return Err(self.refused(&what, &mut response));
        }
        let kind = response
            .headers()
            .get("Content-Type")
            .and_then(|c| c.to_str().ok())
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_owned())
            .unwrap_or_default();
        let body = response.body_mut().with_config().limit(limit).read_to_vec().map_err(|e| self.failed(&what, &e))?;
        Ok((body, kind))
    }

    fn error(&self, message: String) -> ImageError {
        ImageError::Registry { registry: self.registry.clone(), message }
    }

    /// Sends the request `make` builds with the current `Authorization`;
    /// on a 401 with a `Bearer` challenge, gets a token from the challenge's
    /// realm (with the Basic credentials, if any), keeps it and sends again.
    fn send(
        &self,
        what: &str,
        make: impl Fn(Option<&str>) -> Result<Response<Body>, ureq::Error>,
    ) -> Result<Response<Body>, ImageError> {
        let current = self.authorization.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let response = make(current.as_deref()).map_err(|e| self.failed(what, &e))?;
        if response.status() != 401 {
            return Ok(response);
        }
        let challenge = response.headers().get_all("WWW-Authenticate").iter().find_map(|h| {
            let h = h.to_str().ok()?;
            h.get(..7).filter(|p| p.eq_ignore_ascii_case("bearer ")).map(|_| h[7..].to_owned())
        });
        let Some(challenge) = challenge else { return Ok(response) };
        let bearer = format!("Bearer {}", self.token(what, &challenge)?);
        *self.authorization.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(bearer.clone());
        make(Some(&bearer)).map_err(|e| self.failed(what, &e))
    }

    /// A token from a `Bearer realm="…",service="…",scope="…"` challenge.
    fn token(&self, what: &str, challenge: &str) -> Result<String, ImageError> {
        let params = challenge_params(challenge);
        let param = |k: &str| params.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str());
        let realm = param("realm").ok_or_else(|| self.error(format!("{what}: a Bearer challenge without a realm")))?;
        let local = ureq::http::Uri::try_from(realm)
            .ok()
            .and_then(|u| u.host().map(|h| matches!(h, "localhost" | "127.0.0.1" | "[::1]" | "::1")))
            .unwrap_or(false);
        if !realm.starts_with("https://") && !(realm.starts_with("http://") && (local || self.plain_http)) {
            return Err(self.error(format!("{what}: the token realm `{realm}` is not HTTPS")));
        }
        let mut url = realm.to_owned();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        for key in ["service", "scope"] {
            if let Some(v) = param(key) {
                url.push(sep);
                url.push_str(key);
                url.push('=');
                url.push_str(&percent_encode(v));
                sep = '&';
            }
        }
        let token_what = format!("GET token from `{realm}`");
        let mut response =
            with_auth(self.basic.as_deref(), self.agent.get(&url)).call().map_err(|e| self.failed(&token_what, &e))?;
        if response.status() != 200 {
            return Err(self.refused(&token_what, &mut response));
        }
        let body =
            response.body_mut().with_config().limit(1 << 20).read_to_vec().map_err(|e| self.failed(&token_what, &e))?;
        let body: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| self.error(format!("{token_what} answered no JSON: {e}")))?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| self.error(format!("{token_what} answered no `token`")))
    }

    fn failed(&self, what: &str, e: &ureq::Error) -> ImageError {
        self.error(format!("{what} failed: {e}"))
    }

    fn refused(&self, what: &str, response: &mut ureq::http::Response<ureq::Body>) -> ImageError {
        let status = response.status();
        let body = response.body_mut().with_config().limit(4096).read_to_string().unwrap_or_default();
        let hint =
            if status == 401 || status == 403 { " (set BRR_REGISTRY_USER and BRR_REGISTRY_PASSWORD)" } else { "" };
        self.error(format!("{what} answered {status}{hint}: {}", body.trim()))
    }

    fn has_blob(&self, digest: &OciDigest) -> Result<bool, ImageError> {
        let what = format!("HEAD /v2/{}/blobs/{digest}", self.repo);
        let url = format!("{}/v2/{}/blobs/{digest}", self.origin, self.repo);
        let mut response = self.send(&what, |a| with_auth(a, self.agent.head(&url)).call())?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.refused(&what, &mut response)),
        }
    }

    /// Asks the registry to mount `digest` from repository `from`: true
    /// when it did (201); false when it would not (it then starts an upload,
    /// left to expire).
    fn mount(&self, digest: &OciDigest, from: &str) -> Result<bool, ImageError> {
        let what = format!("POST /v2/{}/blobs/uploads/?mount={digest}&from={from}", self.repo);
        let url =
            format!("{}/v2/{}/blobs/uploads/?mount=sha256%3A{}&from={from}", self.origin, self.repo, digest.hex());
        let mut response = self.send(&what, |a| with_auth(a, self.agent.post(&url)).send_empty())?;
        match response.status().as_u16() {
            201 => Ok(true),
            202 | 404 => Ok(false),
            _ => Err(self.refused(&what, &mut response)),
        }
    }

    fn upload(&self, blob: &Blob) -> Result<(), ImageError> {
        let what = format!("POST /v2/{}/blobs/uploads/", self.repo);
        let url = format!("{}/v2/{}/blobs/uploads/", self.origin, self.repo);
        let mut response = self.send(&what, |a| with_auth(a, self.agent.post(&url)).send_empty())?;
        if response.status() != 202 {
            return Err(self.refused(&what, &mut response));
        }
        let location = response
            .headers()
            .get("Location")
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| self.error(format!("{what} answered 202 without a Location")))?;
        let mut target = if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            format!("{}{location}", self.origin)
        };
        target.push(if target.contains('?') { '&' } else { '?' });
        target.push_str("digest=sha256%3A");
        target.push_str(blob.digest.hex());
        let what = format!("PUT blob {}", blob.digest);
        let mut response = self.send(&what, |a| {
            with_auth(a, self.agent.put(&target))
                .header("Content-Type", "application/octet-stream")
                .send(&blob.bytes[..])
        })?;
        if response.status() != 201 {
            return Err(self.refused(&what, &mut response));
        }
        Ok(())
    }

    fn put_manifest(&self, manifest: &Blob, tag: &str) -> Result<(), ImageError> {
        let what = format!("PUT /v2/{}/manifests/{tag}", self.repo);
        let url = format!("{}/v2/{}/manifests/{tag}", self.origin, self.repo);
        let mut response = self.send(&what, |a| {
            with_auth(a, self.agent.put(&url)).header("Content-Type", &manifest.media_type).send(&manifest.bytes[..])
        })?;
        if response.status() != 201 {
            return Err(self.refused(&what, &mut response));
        }
        let answered = response.headers().get("Docker-Content-Digest").and_then(|d| d.to_str().ok());
        if let Some(d) = answered
            && d != manifest.digest.to_string()
        {
            return Err(self.error(format!("stored the manifest as `{d}`, not `{}`", manifest.digest)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let got = challenge_params(
            r#"realm="https://auth.example/token",service="registry",scope="repository:a/b:pull,push""#,
        );
        let want =
            [("realm", "https://auth.example/token"), ("service", "registry"), ("scope", "repository:a/b:pull,push")];
        assert_eq!(got, want.map(|(k, v)| (k.to_owned(), v.to_owned())));
        assert_eq!(percent_encode("repository:a/b:pull,push"), "repository%3Aa%2Fb%3Apull%2Cpush");
    }

    #[test]
    fn references_parse() {
        let r = Reference::parse("127.0.0.1:5000/shop/api:v1").unwrap();
        assert_eq!((r.host.as_str(), r.repo.as_str(), r.tag.as_str()), ("127.0.0.1:5000", "shop/api", "v1"));
        assert!(r.is_local());
        let r = Reference::parse("registry.example.com/api").unwrap();
        assert_eq!(r.tag, "latest");
        assert!(!r.is_local());
        assert!(Reference::parse("api:v1").is_err());
        assert!(Reference::parse("host/API:v1").is_err());
        assert!(Reference::parse("host/api:-x").is_err());
    }
}
