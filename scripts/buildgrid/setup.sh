#!/usr/bin/env bash
# Installs BuildGrid (a Remote Execution API server) into a virtualenv at
# `target/buildgrid-venv` under the repository root, for brr-remote's gRPC
# tests. Idempotent: does nothing when the pinned version is already there
# with its Redis client (the `redis` extra: the test config keeps the action
# cache in Redis, see config.yml.in) and its PostgreSQL driver (the
# `database` extra: the remote-execution tests' scheduler, see
# execution.yml.in). Prints the path of `bgd` on its last line.
#
# BuildGrid 0.4.4 is the last release for Python 3.11 (newer ones need 3.12+).
set -euo pipefail

version=0.4.4
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/target/buildgrid-venv"
bgd="$venv/bin/bgd"

if [ -x "$bgd" ] && "$venv/bin/python" -c "import importlib.metadata as m, sys, redis, psycopg2; sys.exit(m.version('buildgrid') != '$version')" 2>/dev/null; then
    echo "buildgrid $version already installed" >&2
    echo "$bgd"
    exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "buildgrid[redis,database]==$version"
echo "$bgd"
