//! `brr push`: a release's image into Debian's Distribution registry on
//! 127.0.0.1, uploading only the blobs the registry lacks.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use brr_test_support::{Registry, TestWorkspace};
use serde_json::Value;

use crate::shop;

const TOKEN: &str = "tok-push-81f3a9d0-secret";

fn push(ws: &TestWorkspace, service: &str, reference: &str) -> Value {
    crate::json_schema::valid("push", &ws.brr(["push", "staging", reference, "--service", service, "--json"]).success())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect()
}

/// Blob uploads the registry has completed, from its access log.
fn blob_puts(registry: &Registry) -> usize {
    registry.log().lines().filter(|l| l.contains("\"PUT /v2/") && l.contains("/blobs/uploads/")).count()
}

#[test]
fn push_uploads_only_missing_blobs() {
    let Some(registry) = Registry::start() else { return };
    let ws = shop();
    ws.brr_env("SHOP_API_TOKEN", TOKEN, ["release", "--env", "staging"]).success();
    let host = registry.host();

    let first = push(&ws, "api", &format!("{host}/shop/api:v1"));
    let digest = first["manifest_digest"].as_str().unwrap().to_owned();
    assert_eq!(first["reference"], format!("{host}/shop/api@{digest}").as_str());
    // libshop's layer, api's layer, the config.
    assert_eq!((strings(&first["uploaded"]).len(), strings(&first["present"]).len()), (3, 0), "{first}");
    assert_eq!(blob_puts(&registry), 3, "{}", registry.log());

    // The same image under another tag: nothing to upload.
    let again = push(&ws, "api", &format!("{host}/shop/api:v1-again"));
    assert_eq!(again["manifest_digest"], digest.as_str());
    assert!(strings(&again["uploaded"]).is_empty(), "{again}");
    assert_eq!(blob_puts(&registry), 3);

    // A config change: only the new config blob goes up; the layers are shared.
    let envs =
        ws.read("environments.ron").replace(r#"vars: {"LOG_LEVEL": "debug"}"#, r#"vars: {"LOG_LEVEL": "trace"}"#);
    ws.write("environments.ron", &envs);
    ws.brr_env("SHOP_API_TOKEN", TOKEN, ["release", "api", "--env", "staging"]).success();
    let changed = push(&ws, "api", &format!("{host}/shop/api:v2"));
    assert_ne!(changed["manifest_digest"], digest.as_str());
    assert_eq!(strings(&changed["present"]), strings(&first["uploaded"])[..2], "the layers were there: {changed}");
    assert_eq!(strings(&changed["uploaded"]).len(), 1, "{changed}");
    assert_eq!(blob_puts(&registry), 4, "{}", registry.log());

    // A second service on libshop: libshop's layer is mounted from
    // `shop/api` (where this store pushed it), not uploaded again; only
    // billing's own layer and config go up.
    let billing = push(&ws, "billing", &format!("{host}/shop/billing:v1"));
    assert_eq!(strings(&billing["mounted"]), strings(&first["uploaded"])[..1], "libshop's layer: {billing}");
    assert!(strings(&billing["present"]).is_empty(), "{billing}");
    assert_eq!(strings(&billing["uploaded"]).len(), 2, "{billing}");
    assert_eq!(blob_puts(&registry), 6, "{}", registry.log());

    // The registry serves what was pushed, by tag, under the same digest.
    let inspect = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{host}/shop/api:v1"))
        .output();
    let Ok(inspect) = inspect else {
        brr_test_support::require(false, "skopeo", "not installed", brr_test_support::REGISTRY_HINT);
        return;
    };
    assert!(inspect.status.success(), "skopeo: {}", String::from_utf8_lossy(&inspect.stderr));
    let inspect: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    assert!(!registry.log().contains(TOKEN));
}

const PASSWORD: &str = "pw-9c1d44e2-registry";
const BEARER: &str = "bearer-tok-61a7e0";

/// A front of a registry on 127.0.0.1 that wants a bearer token, as Docker
/// Hub and GHCR do: `/v2/…` without `Authorization: Bearer BEARER` gets a
/// 401 whose challenge names `/token` on this front; `/token` gives
/// `BEARER` for Basic `ci:PASSWORD` and 401 otherwise. The rest is passed
/// to the registry as it came, one connection per request.
struct TokenFront {
    port: u16,
    tokens: Arc<AtomicUsize>,
}

impl TokenFront {
    fn start(registry_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tokens = Arc::new(AtomicUsize::new(0));
        let issued = Arc::clone(&tokens);
        // Serves until the test binary exits.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let issued = Arc::clone(&issued);
                std::thread::spawn(move || serve(stream, port, registry_port, &issued));
            }
        });
        Self { port, tokens }
    }
}

fn serve(mut client: TcpStream, port: u16, registry_port: u16, issued: &AtomicUsize) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert!(header("transfer-encoding").is_none(), "the front reads Content-Length bodies only");
    let mut body = vec![0u8; header("content-length").map_or(0, |n| n.parse().unwrap())];
    client.read_exact(&mut body).unwrap();
    let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
    let answer = |client: &mut TcpStream, status: &str, extra: &str, body: &str| {
        let _ = write!(
            client,
            "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    };
    if path.starts_with("/token") {
        use base64::Engine as _;
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("ci:{PASSWORD}")));
        if header("authorization").as_deref() == Some(basic.as_str())
            && path.contains("scope=repository%3Ashop%2Fapi%3A")
        {
            issued.fetch_add(1, Ordering::SeqCst);
            answer(&mut client, "200 OK", "", &format!("{{\"token\":\"{BEARER}\"}}"));
        } else {
            answer(&mut client, "401 Unauthorized", "", "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}");
        }
        return;
    }
    if header("authorization").as_deref() != Some(format!("Bearer {BEARER}").as_str()) {
        let challenge = format!(
            "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"front\",scope=\"repository:shop/api:pull,push\"\r\n"
        );
        answer(&mut client, "401 Unauthorized", &challenge, "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}");
        return;
    }
    let mut upstream = TcpStream::connect(("127.0.0.1", registry_port)).unwrap();
    let mut forward = format!("{request_line}\r\n");
    for (k, v) in &headers {
        if k != "authorization" && k != "connection" {
            let _ = std::fmt::Write::write_fmt(&mut forward, format_args!("{k}: {v}\r\n"));
        }
    }
    forward.push_str("Connection: close\r\n\r\n");
    upstream.write_all(forward.as_bytes()).unwrap();
    upstream.write_all(&body).unwrap();
    let mut response = Vec::new();
    upstream.read_to_end(&mut response).unwrap();
    let _ = client.write_all(&response);
}

#[test]
fn push_gets_a_bearer_token_from_the_registrys_realm() {
    let Some(registry) = Registry::start() else { return };
    let registry_port: u16 = registry.host().rsplit_once(':').unwrap().1.parse().unwrap();
    let front = TokenFront::start(registry_port);
    let ws = shop();
    ws.brr_env("SHOP_API_TOKEN", TOKEN, ["release", "api", "--env", "staging"]).success();
    let reference = format!("127.0.0.1:{}/shop/api:v1", front.port);

    // No credentials: the realm refuses, and brr says what to set.
    let run = ws.brr(["push", "staging", &reference, "-s", "api"]).code(1);
    assert!(run.stderr.contains("/token") && run.stderr.contains("BRR_REGISTRY_USER"), "{}", run.stderr);
    assert_eq!(blob_puts(&registry), 0);

    let mut cmd = ws.command();
    cmd.args(["push", "staging", &reference, "-s", "api", "--json"])
        .env("BRR_REGISTRY_USER", "ci")
        .env("BRR_REGISTRY_PASSWORD", PASSWORD);
    let run = brr_test_support::Run::from(cmd.output().unwrap()).success();
    let pushed: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(strings(&pushed["uploaded"]).len(), 3, "{pushed}");
    assert_eq!(blob_puts(&registry), 3, "{}", registry.log());
    // One token, kept for every later request.
    assert_eq!(front.tokens.load(Ordering::SeqCst), 1);
    assert!(!run.stderr.contains(PASSWORD) && !run.stdout.contains(PASSWORD));

    // The same credentials from a Docker-style auth file.
    let docker = brr_test_support::temp_dir();
    let pair = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("ci:{PASSWORD}"));
    let config = format!("{{\"auths\": {{\"127.0.0.1:{}\": {{\"auth\": \"{pair}\"}}}}}}", front.port);
    std::fs::write(docker.path().join("config.json"), config).unwrap();
    let mut cmd = ws.command();
    cmd.args(["push", "staging", &format!("127.0.0.1:{}/shop/api:v2", front.port), "-s", "api", "--json"])
        .env("DOCKER_CONFIG", docker.path())
        .env_remove("BRR_REGISTRY_USER");
    let run = brr_test_support::Run::from(cmd.output().unwrap()).success();
    let again: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(again["manifest_digest"], pushed["manifest_digest"]);
    assert_eq!(front.tokens.load(Ordering::SeqCst), 2);
    assert!(!run.stderr.contains(&pair));

    // A broken auth file: exit 2, naming the file and where.
    std::fs::write(docker.path().join("config.json"), "{\"auths\": {\n  \"x\": oops }}").unwrap();
    let mut cmd = ws.command();
    cmd.args(["push", "staging", &reference, "-s", "api"]).env("DOCKER_CONFIG", docker.path());
    let run = brr_test_support::Run::from(cmd.output().unwrap()).code(2);
    assert!(run.stderr.contains("config.json") && run.stderr.contains("line 2"), "{}", run.stderr);
    assert!(!registry.log().contains(PASSWORD));
}
