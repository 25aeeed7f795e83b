//! `brr image`: a release as an OCI image, the same from any store, with no
//! secret in it, that skopeo and umoci accept.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use brr_test_support::{Registry, TestWorkspace, require};
use serde_json::Value;

use crate::shop;

const TOKEN: &str = "tok-image-5b0c7f1e-secret";
const TOOLS_HINT: &str =
    "run `scripts/test-deps.sh` as root: it installs Debian's `skopeo`, `umoci` and `busybox-static` with apt-get";
/// Debian's `busybox-static`: a base image's userland.
const BUSYBOX: &str = "/bin/busybox";

/// A copy of the shop with `api` released to staging.
fn released_shop() -> TestWorkspace {
    let ws = shop();
    ws.brr_env("SHOP_API_TOKEN", TOKEN, ["release", "api", "--env", "staging"]).success();
    ws
}

/// `brr image staging` of `ws` into `out`, as JSON (checked against its schema).
fn image(ws: &TestWorkspace, out: &Path, format: &str) -> Value {
    let out = out.to_str().unwrap();
    crate::json_schema::valid(
        "image",
        &ws.brr(["image", "staging", "--service", "api", "-o", out, "--format", format, "--json"]).success(),
    )
}

fn field(v: &Value, name: &str) -> String {
    v[name].as_str().unwrap_or_else(|| panic!("no `{name}` in {v}")).to_owned()
}

/// Every blob of an OCI layout, by file name.
fn blobs(layout: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn an_image_is_a_function_of_the_release_and_holds_no_secret() {
    let (a, b) = (released_shop(), released_shop());
    let out = brr_test_support::temp_dir();
    let (dir_a, dir_b) = (out.path().join("a"), out.path().join("b"));
    let (img_a, img_b) = (image(&a, &dir_a, "oci-layout"), image(&b, &dir_b, "oci-layout"));
    assert_eq!(field(&img_a, "release"), field(&img_b, "release"));
    assert_eq!(field(&img_a, "manifest_digest"), field(&img_b, "manifest_digest"), "same release, two stores");
    assert_eq!(blobs(&dir_a), blobs(&dir_b));
    // An archive is as reproducible as the layout it holds.
    let (tar_a, tar_b) = (out.path().join("a.tar"), out.path().join("b.tar"));
    image(&a, &tar_a, "oci-archive");
    image(&b, &tar_b, "oci-archive");
    assert_eq!(std::fs::read(&tar_a).unwrap(), std::fs::read(&tar_b).unwrap());

    // Each blob is named by its SHA-256, and none holds the secret's value.
    for (name, bytes) in blobs(&dir_a) {
        let digest = brr_image::OciDigest::of(&bytes).hex().to_owned();
        assert_eq!(name, digest, "blob named by another digest");
        assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()), "the secret's value is in blob {name}");
    }
    let config = std::fs::read(dir_a.join("blobs/sha256").join(&field(&img_a, "config_digest")[7..])).unwrap();
    let config: Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["config"]["Labels"]["org.brr.secrets"], "SHOP_API_TOKEN", "{config}");
    assert_eq!(config["config"]["Labels"]["org.brr.release"], field(&img_a, "release").as_str());
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/app/bin/api", "serve"]));
    let env: Vec<&str> = config["config"]["Env"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(env, ["DATABASE_PATH=shop-staging.sqlite", "LOG_LEVEL=debug"]);

    // Mistakes exit 2 and say what to do.
    let o = out.path().join("x").to_str().unwrap().to_owned();
    let run = a.brr(["image", "staging", "-s", "api", "--process", "cron", "-o", &o]).code(2);
    assert!(run.stderr.contains("no process type `cron`") && run.stderr.contains("web, worker"), "{}", run.stderr);
    let run = a.brr(["push", "staging", "api:v1", "-s", "api"]).code(2);
    assert!(run.stderr.contains("names no registry host"), "{}", run.stderr);

    // A changed config var: a new config (and manifest), the same layers.
    let envs = b.read("environments.ron").replace(r#"vars: {"LOG_LEVEL": "debug"}"#, r#"vars: {"LOG_LEVEL": "trace"}"#);
    b.write("environments.ron", &envs);
    b.brr_env("SHOP_API_TOKEN", TOKEN, ["release", "api", "--env", "staging"]).success();
    let img_c = image(&b, &out.path().join("c"), "oci-layout");
    assert_ne!(field(&img_c, "release"), field(&img_a, "release"));
    assert_eq!(field(&img_c, "build"), field(&img_a, "build"));
    assert_ne!(field(&img_c, "config_digest"), field(&img_a, "config_digest"));
    assert_ne!(field(&img_c, "manifest_digest"), field(&img_a, "manifest_digest"));
    assert_eq!(img_c["layers"], img_a["layers"]);

    // libshop's artifact is a layer of its own, below the service's, and
    // the same layer in every service built on it.
    let layers = |v: &Value| -> Vec<String> {
        v["layers"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(layers(&img_a).len(), 2, "libshop's layer, then api's: {img_a}");
    b.brr(["release", "billing", "--env", "staging"]).success();
    let billing =
        b.brr(["image", "staging", "-s", "billing", "-o", out.path().join("billing").to_str().unwrap(), "--json"]);
    let billing: Value = serde_json::from_str(&billing.success().stdout).unwrap();
    assert_eq!(layers(&billing).len(), 2, "{billing}");
    assert_eq!(layers(&billing)[0], layers(&img_a)[0], "services on libshop share its layer");
    assert_ne!(layers(&billing)[1], layers(&img_a)[1]);
}

#[test]
fn skopeo_and_umoci_accept_the_image() {
    let tools = have("skopeo") && have("umoci");
    if !require(tools, "skopeo and umoci", "not installed", TOOLS_HINT) {
        return;
    }
    let ws = released_shop();
    let out = brr_test_support::temp_dir();
    let layout = out.path().join("oci");
    let img = image(&ws, &layout, "oci-layout");

    let inspect =
        Command::new("skopeo").arg("inspect").arg(format!("oci:{}:latest", layout.display())).output().unwrap();
    assert!(inspect.status.success(), "skopeo: {}", String::from_utf8_lossy(&inspect.stderr));
    let inspect: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect["Digest"], field(&img, "manifest_digest").as_str());
    assert_eq!(inspect["Layers"], img["layers"]);

    let bundle = out.path().join("bundle");
    let unpack = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(unpack.status.success(), "umoci: {}", String::from_utf8_lossy(&unpack.stderr));
    let binary: PathBuf = bundle.join("rootfs/app/bin/api");
    let release = field(&img, "release");
    let released = ws.store().join("releases").join(&release).join("bin/api");
    assert_eq!(std::fs::read(&binary).unwrap(), std::fs::read(released).unwrap(), "the service binary at /app/bin/api");
    assert_eq!(std::fs::metadata(&binary).unwrap().permissions().mode() & 0o777, 0o755);
    assert!(!bundle.join("rootfs/app/.env").exists(), "the config is in Env, not in a layer");
    // libshop's outputs, where api's builder saw them as $DEPS/libshop.
    assert!(bundle.join("rootfs/deps/libshop/lib/libshop.a").is_file());
    assert!(bundle.join("rootfs/deps/libshop/include/shop.h").is_file());
    let runtime: Value = serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(runtime["process"]["args"], serde_json::json!(["/app/bin/api", "serve"]));
    assert_eq!(runtime["process"]["cwd"], "/app");
}

/// `cmd` run to success: its stdout.
fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Pushes a base image to `registry` as `base:1` and returns its
/// reference: a static busybox as `/bin/sh`, the C library and loader
/// `binary` links to (from `ldd`) at their host paths, `PATH` and one var
/// of its own in `Env`. Built with umoci, pushed with skopeo.
fn push_base(registry: &Registry, binary: &Path) -> String {
    let dir = brr_test_support::temp_dir();
    let (layout, bundle) = (dir.path().join("oci"), dir.path().join("bundle"));
    let image = format!("{}:base", layout.display());
    run_ok(Command::new("umoci").args(["init", "--layout"]).arg(&layout));
    run_ok(Command::new("umoci").args(["new", "--image", &image]));
    run_ok(Command::new("umoci").args(["unpack", "--rootless", "--image", &image]).arg(&bundle));
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    for line in run_ok(Command::new("ldd").arg(binary)).lines() {
        let path = line.rsplit("=>").next().unwrap().split_whitespace().next().unwrap_or("");
        if let Some(rel) = path.strip_prefix('/') {
            let to = rootfs.join(rel);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(path, &to).unwrap();
        }
    }
    run_ok(Command::new("umoci").args(["repack", "--image", &image]).arg(&bundle));
    run_ok(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--config.env",
        "PATH=/usr/bin:/bin",
        "--config.env",
        "LOG_LEVEL=from-base",
        "--config.env",
        "BASE_ONLY=yes",
    ]));
    let reference = format!("{}/base:1", registry.host());
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("oci:{image}"))
            .arg(format!("docker://{reference}")),
    );
    reference
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}")).iter().map(|s| s.as_str().unwrap().to_owned()).collect()
}

/// api's binary in `ws`'s store, from an image of it without a base.
fn api_binary(ws: &TestWorkspace, out: &Path) -> PathBuf {
    let plain = image(ws, out, "oci-layout");
    ws.store().join("releases").join(field(&plain, "release")).join("bin/api")
}

#[test]
fn a_release_on_a_base_image_from_a_registry() {
    let tools = have("skopeo") && have("umoci") && Path::new(BUSYBOX).is_file();
    if !require(tools, "skopeo, umoci and a static busybox", "not installed", TOOLS_HINT) {
        return;
    }
    let Some(registry) = Registry::start() else { return };
    let (a, b) = (released_shop(), released_shop());
    let out = brr_test_support::temp_dir();
    let base = push_base(&registry, &api_binary(&a, &out.path().join("plain")));
    let plain = image(&a, &out.path().join("plain"), "oci-layout");

    let on_base = |ws: &TestWorkspace, dir: &Path| -> Value {
        let args = ["image", "staging", "-s", "api", "--base", &base, "-o", dir.to_str().unwrap(), "--json"];
        crate::json_schema::valid("image", &ws.brr(args).success())
    };
    let (x, y) = (on_base(&a, &out.path().join("x")), on_base(&b, &out.path().join("y")));
    assert_eq!(field(&x, "manifest_digest"), field(&y, "manifest_digest"), "same base, same release, two stores");
    let by_digest = field(&x, "base");
    assert!(by_digest.starts_with(&format!("{}/base@sha256:", registry.host())), "{x}");
    // The base's layers, then the release's as without a base.
    let (with, without) = (strings(&x["layers"]), strings(&plain["layers"]));
    assert!(with.len() > without.len(), "{x}");
    assert_eq!(with[with.len() - without.len()..], without[..]);

    let config = std::fs::read(out.path().join("x/blobs/sha256").join(&field(&x, "config_digest")[7..])).unwrap();
    let config: Value = serde_json::from_slice(&config).unwrap();
    // The base's PATH and vars stay; a var the release sets wins.
    let env = strings(&config["config"]["Env"]);
    assert_eq!(env, ["PATH=/usr/bin:/bin", "LOG_LEVEL=debug", "BASE_ONLY=yes", "DATABASE_PATH=shop-staging.sqlite"]);
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.base.digest"], &by_digest[by_digest.find('@').unwrap() + 1..]);
    assert_eq!(labels["org.brr.secrets"], "SHOP_API_TOKEN");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), with.len());

    // Both the base's files and the release's are in the unpacked root.
    let bundle = out.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:latest", out.path().join("x").display()))
            .arg(&bundle),
    );
    let rootfs = bundle.join("rootfs");
    assert_eq!(std::fs::read(rootfs.join("bin/busybox")).unwrap(), std::fs::read(BUSYBOX).unwrap());
    assert!(rootfs.join("app/bin/api").is_file() && rootfs.join("deps/libshop/lib/libshop.a").is_file());

    // A base that is not there: exit 1, naming it.
    let missing = format!("{}/nothing:1", registry.host());
    let run =
        a.brr(["image", "staging", "-s", "api", "--base", &missing, "-o", out.path().join("z").to_str().unwrap()]);
    let run = run.code(1);
    assert!(run.stderr.contains("nothing/manifests/1") && run.stderr.contains("404"), "{}", run.stderr);
}

/// podman with its own storage and state under a temporary folder (the
/// host's container store is not touched), removing its containers on drop.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn command(&self) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]);
        // crun refuses a cgroup v2 hierarchy with controllers beside v1 ones.
        if Command::new("runc").arg("--version").output().is_ok_and(|o| o.status.success()) {
            cmd.args(["--runtime", "runc"]);
        }
        cmd
    }

    /// `podman run` with what this machine allows: a root without
    /// CAP_SYS_RESOURCE cannot raise rlimits to podman's defaults.
    fn run(&self) -> Command {
        let mut cmd = self.command();
        cmd.args(["run", "--network", "host", "--ipc", "host", "--ulimit", "nofile=1024:1024"]);
        cmd.args(["--ulimit", "nproc=1024:1024"]);
        cmd
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.command().args(["rm", "--force", "--all", "--time", "2"]).output();
    }
}

/// `GET path` on 127.0.0.1:`port`: the whole answer, or `None` while
/// nothing listens.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    Some(answer)
}

#[test]
fn the_web_process_of_an_image_answers_http_in_podman() {
    let tools = have("skopeo") && have("umoci") && have("podman") && Path::new(BUSYBOX).is_file();
    let hint = "run `scripts/test-deps.sh` as root: it installs Debian's `skopeo`, `umoci`, `busybox-static`, `podman` and `runc`";
    if !require(tools, "skopeo, umoci, a static busybox and podman", "not installed", hint) {
        return;
    }
    let Some(registry) = Registry::start() else { return };
    let ws = released_shop();
    let out = brr_test_support::temp_dir();
    let base = push_base(&registry, &api_binary(&ws, &out.path().join("plain")));
    let reference = format!("{}/shop/api:run", registry.host());
    let pushed = ws.brr(["push", "staging", &reference, "-s", "api", "--base", &base, "--json"]).success();
    let pushed: Value = serde_json::from_str(&pushed.stdout).unwrap();

    let podman = Podman { dir: brr_test_support::temp_dir() };
    let id =
        run_ok(podman.command().args(["pull", "--quiet", "--tls-verify=false"]).arg(format!("docker://{reference}")));
    let id = id.trim().to_owned();
    let inspect = run_ok(podman.command().args(["image", "inspect", "--format", "{{.Digest}}", &id]));
    assert_eq!(inspect.trim(), pushed["manifest_digest"].as_str().unwrap());

    // Can this machine run a container at all? If not, say why.
    let probe = podman.run().args(["--rm", "--entrypoint", "/bin/sh", &id, "-c", "exit 0"]).output().unwrap();
    let why = String::from_utf8_lossy(&probe.stderr).trim().to_owned();
    let hint = "podman needs a root that may create namespaces and mounts, and runc (crun refuses hybrid cgroups)";
    if !require(probe.status.success(), "running containers", &why, hint) {
        return;
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = run_ok(
        podman
            .run()
            .args(["--detach", "-e", &format!("PORT={port}"), "-e"])
            .arg(format!("SHOP_API_TOKEN={TOKEN}"))
            .arg(&id),
    );
    let container = started.trim().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let health = loop {
        match http_get(port, "/health") {
            Some(answer) => break answer,
            None if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(100)),
            None => {
                let logs = podman.command().args(["logs", &container]).output().unwrap();
                panic!("the web process never answered on {port}: {}", String::from_utf8_lossy(&logs.stderr));
            }
        }
    };
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let home = http_get(port, "/").unwrap();
    assert!(home.starts_with("HTTP/1.1 200") && home.contains("Today's special"), "{home}");
    run_ok(podman.command().args(["stop", "--time", "5", &container]));
}

#[test]
fn an_imported_release_whose_dependencies_are_unknown_is_refused() {
    let ws = released_shop();
    let out = brr_test_support::temp_dir();
    let release = field(&image(&ws, &out.path().join("here"), "oci-layout"), "release");
    let archive = out.path().join("api.brrx");
    ws.brr(["export", &release, "-o", archive.to_str().unwrap()]).success();
    let there = TestWorkspace::new(crate::BRR).file("brr.ron", "Workspace(packages: [])\n");
    there.brr(["import", archive.to_str().unwrap()]).success();
    // The archive holds api's artifact but not the build that made it from
    // libshop's: an image without libshop's layer would be another image.
    let run = there.brr(["image", &release, "-o", out.path().join("there").to_str().unwrap()]).code(2);
    assert!(
        run.stderr.contains("does not record which dependencies") && run.stderr.contains("brr build"),
        "{}",
        run.stderr
    );
    assert!(!out.path().join("there").exists(), "nothing written");
}

#[test]
fn a_kept_release_can_still_be_imaged_after_gc_outside_the_workspace() {
    let ws = released_shop();
    let out = brr_test_support::temp_dir();
    let before = image(&ws, &out.path().join("before"), "oci-layout");
    // `billing`, built but never released, is what gc may take.
    ws.brr(["build"]).success();
    // Outside the workspace gc keeps no target's latest build: only the
    // release, and through it the key its build was made with.
    let elsewhere = brr_test_support::temp_dir();
    let gc = Command::new(crate::BRR)
        .arg("-C")
        .arg(elsewhere.path())
        .arg("--store")
        .arg(ws.store())
        .args(["gc", "--json"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(gc.status.success(), "{}", String::from_utf8_lossy(&gc.stderr));
    let freed: Value = serde_json::from_slice(&gc.stdout).unwrap();
    assert!(freed["freed"].as_u64().is_some_and(|n| n > 0), "gc freed nothing: {freed}");
    let after = image(&ws, &out.path().join("after"), "oci-layout");
    assert_eq!(field(&before, "manifest_digest"), field(&after, "manifest_digest"), "the same image after gc");
    ws.brr(["store", "verify"]).success();
}
