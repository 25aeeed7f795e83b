#!/usr/bin/env bash
# Installs what the tests need beyond a Rust toolchain, idempotently:
# a C toolchain and python3 (the example monorepo), nginx (the Bazel HTTP
# cache the remote-cache tests run against), BuildGrid (the Remote
# Execution API server) in a venv under target/, Redis (where that
# BuildGrid keeps its action cache), PostgreSQL (its execution scheduler), skopeo and umoci (OCI image checks),
# docker-registry (the Distribution registry), busybox-static (a base
# image's userland), podman with runc (running an image) and diffoscope
# (verify --diffoscope). The tests start and stop these servers
# themselves, on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v cc >/dev/null || need+=(build-essential)
# The jobserver tests run GNU make as a builder.
command -v make >/dev/null || need+=(make)
command -v python3 >/dev/null || need+=(python3)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || need+=(redis-server)
# The remote-execution tests run BuildGrid's scheduler on a private
# PostgreSQL cluster (BuildGrid 0.4.4 refuses SQLite for it).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# The image tests check `brr image` output with skopeo (inspect) and umoci
# (unpack); the push tests run Debian's Distribution registry.
command -v skopeo >/dev/null || need+=(skopeo)
command -v umoci >/dev/null || need+=(umoci)
command -v docker-registry >/dev/null || need+=(docker-registry)
# The base-image tests build a base from a static busybox; the container
# test runs an image with podman. crun (podman's default runtime) refuses a
# host whose cgroup v2 hierarchy has controllers while v1 ones are mounted
# ("hybrid mode"), so the test uses runc.
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
# The sandbox tests run brr as `nobody` (setpriv) and look for leftover
# processes (pgrep); the full-disk test mounts a tmpfs (unshare).
command -v setpriv >/dev/null || need+=(util-linux)
command -v unshare >/dev/null || need+=(util-linux)
command -v pgrep >/dev/null || need+=(procps)
# `brr verify --diffoscope` writes diffoscope's report to the store.
command -v diffoscope >/dev/null || need+=(diffoscope-minimal)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "missing: ${need[*]} (install them with apt-get as root)" >&2
        exit 1
    fi
    apt-get update -qq
    # Keep Debian from starting the system nginx (port 80), Redis (6379)
    # and PostgreSQL (5432) as it installs them.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
    rm -f /usr/sbin/policy-rc.d
fi

scripts/buildgrid/setup.sh

# moto (an S3 server, for the S3 remote-cache tests): the system python3's
# if it has it, else a venv under target/ (`MotoServer` looks in both).
if ! python3 -c 'import moto.server' 2>/dev/null && [ ! -x target/moto-venv/bin/python3 ]; then
    python3 -m venv target/moto-venv
    target/moto-venv/bin/pip install -q 'moto[server]'
fi

# The fetch tests serve registry files on 127.0.0.1: two PyPI wheels (the
# pyshop example's pinned dependencies) and lupa's source distribution,
# which bundles Lua 5.4's C sources (the third-party build test). The sdist
# is taken from PyPI's simple index and checked against the index's SHA-256
# (`pip download` would build its metadata first, which takes minutes). The
# files stay in target/fetch-fixtures/.
fixtures=target/fetch-fixtures
mkdir -p "$fixtures"
[ -f "$fixtures/six-1.16.0-py2.py3-none-any.whl" ] && [ -f "$fixtures/idna-3.7-py3-none-any.whl" ] ||
    python3 -m pip download -q --no-deps --only-binary :all: -d "$fixtures" six==1.16.0 idna==3.7
[ -f "$fixtures/lupa-2.8.tar.gz" ] || python3 - "$fixtures/lupa-2.8.tar.gz" <<'PY'
import hashlib, os, re, sys, urllib.request
index = urllib.request.urlopen("https://pypi.org/simple/lupa/", timeout=120).read().decode()
url, sha = re.search(r'href="([^"#]*/lupa-2\.8\.tar\.gz)#sha256=([0-9a-f]{64})"', index).groups()
data = urllib.request.urlopen(url, timeout=600).read()
if hashlib.sha256(data).hexdigest() != sha:
    sys.exit(f"lupa-2.8.tar.gz from {url} does not have the index's SHA-256 {sha}")
with open(sys.argv[1] + ".part", "wb") as f:
    f.write(data)
os.rename(sys.argv[1] + ".part", sys.argv[1])
PY
