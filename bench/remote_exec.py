#!/usr/bin/env python3
"""brr's remote execution against a local build, on the synthetic tree of
bench/gen.py (the 550-action tree by default).

    python3 bench/remote_exec.py [--quick | --size 550] [--rounds N]
                                 [--brr PATH] [--workers 2] [--slots S]
                                 [--jobs 8,16] [--local-jobs N] [--json]

It starts a private PostgreSQL cluster and BuildGrid
(`scripts/buildgrid/execution.yml.in`) on 127.0.0.1, then per round:

- a local cold build (`brr build -j LOCAL_JOBS`, sandboxed) into a fresh store;
- for each `-j` of `--jobs`: BuildGrid restarted with an empty CAS and action
  cache, `--workers` `brr worker --slots S` started, and a cold build with
  `BRR_REMOTE_EXEC` into a fresh store.

Each remote build must give every target the artifact the local build gave,
and its `--json` must say that every build ran on the executor (none here).
The per-action profile comes from `brr build --json`'s `remote_exec`: the
client's phases, BuildGrid's queue time and the workers' own phases (from
the `ExecutedActionMetadata` timestamps), and the CPU time per action of
the client, the workers' own threads and BuildGrid.

Needs PostgreSQL and BuildGrid (`scripts/test-deps.sh`). Exit code 1 on a
wrong artifact, a failed build or a local fallback. Python 3.11 standard
library only.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SIZES = {
    "quick": gen.Params(libs=5, services=50, files=10, bytes=4096),
    "550": gen.Params(libs=50, services=500, files=10, bytes=4096),
}
INSTALL_HINT = "run `scripts/test-deps.sh` (PostgreSQL and BuildGrid with its `database` extra)"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


class Postgres:
    """A throwaway cluster as user `postgres` (PostgreSQL refuses root)."""

    def __init__(self, tmp: Path) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            raise SystemExit(f"no PostgreSQL server (/usr/lib/postgresql/*/bin/initdb): {INSTALL_HINT}")
        self.bin = Path(bins[-1]).parent
        self.as_user = os.geteuid() == 0
        self.data = tmp / "pg"
        self.data.mkdir()
        if self.as_user:
            os.chmod(tmp, 0o755)
            subprocess.run(["chown", "postgres:", str(self.data)], check=True)
        self.cmd("initdb", "-U", "postgres", "--auth=trust", "--no-sync", "-D", str(self.data))
        self.port = free_port()
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data} -c fsync=off"
        self.cmd("pg_ctl", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.data / "log"), "-o", opts, "start")
        self.cmd("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "brr")

    def cmd(self, program: str, *args: str) -> None:
        argv = [str(self.bin / program), *args]
        if self.as_user:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        try:
            self.cmd("pg_ctl", "-w", "-m", "immediate", "-D", str(self.data), "stop")
        except subprocess.CalledProcessError:
            pass


class Cluster:
    """BuildGrid (Execution, Bots, CAS) on the cluster above, and workers."""

    def __init__(self, tmp: Path, bgd: Path, pg: Postgres, brr: Path) -> None:
        self.tmp, self.bgd, self.pg, self.brr = tmp, bgd, pg, brr
        url = f"postgresql+psycopg2://postgres@127.0.0.1:{pg.port}/brr"
        subprocess.run([str(bgd), "migrate", "apply", url], check=True, cwd=tmp, capture_output=True)
        self.server: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.port = 0
        self.generation = 0

    def start(self, workers: int, slots: int) -> str:
        """A fresh BuildGrid (empty CAS and action cache) and its workers."""
        self.stop()
        self.generation += 1
        gen_dir = self.tmp / f"bgd-{self.generation}"
        (gen_dir / "cas").mkdir(parents=True)
        template = (REPO / "scripts/buildgrid/execution.yml.in").read_text()
        self.port = free_port()
        config = template.replace("@STORAGE@", str(gen_dir / "cas")).replace("@POSTGRES@", str(self.pg.port))
        (gen_dir / "bgd.yml").write_text(config.replace("@PORT@", str(self.port)))
        out = open(gen_dir / "bgd.log", "wb")
        self.server = subprocess.Popen(
            [str(self.bgd), "server", "start", str(gen_dir / "bgd.yml")], cwd=gen_dir, stdout=out, stderr=out
        )
        if not wait_port(self.port, self.server, 60):
            raise SystemExit(f"BuildGrid did not start: see {gen_dir / 'bgd.log'}")
        url = f"grpc://127.0.0.1:{self.port}"
        for w in range(workers):
            wlog = open(gen_dir / f"worker-{w}.log", "wb")
            argv = [str(self.brr), "worker", "--server", url, "--slots", str(slots)]
            argv += ["--work-dir", str(gen_dir / f"work-{w}")]
            self.workers.append(subprocess.Popen(argv, stdout=wlog, stderr=wlog))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            logs = [(gen_dir / f"worker-{w}.log").read_text(errors="replace") for w in range(workers)]
            if all(x.count(": session ") >= slots for x in logs):
                return url
            time.sleep(0.1)
        raise SystemExit(f"workers did not open their sessions: see {gen_dir}")

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU so far of BuildGrid and of the workers' own
        threads (not the builders they wait for)."""
        tick = os.sysconf("SC_CLK_TCK")

        def own(pid: int) -> float:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick

        assert self.server is not None
        return {"buildgrid": own(self.server.pid), "workers": sum(own(w.pid) for w in self.workers)}

    def stop(self) -> None:
        for p in self.workers:
            p.terminate()
        for p in self.workers:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        self.workers = []
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
            self.server = None


def build(brr: Path, root: Path, store: Path, jobs: int, remote: str | None) -> tuple[float, float, dict]:
    """Wall seconds, the CPU seconds of brr and what it waited for, and the
    `--json` document of a cold build."""
    shutil.rmtree(store, ignore_errors=True)
    env = dict(os.environ, LC_ALL="C", NO_COLOR="1")
    env.pop("BRR_REMOTE_EXEC", None)
    if remote:
        env["BRR_REMOTE_EXEC"] = remote
    argv = [str(brr), "-C", str(root), "--store", str(store), "build", "-j", str(jobs), "--json"]
    before = os.times()
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, capture_output=True)
    took = time.perf_counter() - t0
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    if r.returncode != 0:
        raise SystemExit(f"`{' '.join(argv)}` failed ({r.returncode}):\n{r.stderr.decode(errors='replace')[-3000:]}")
    for line in r.stderr.decode(errors="replace").splitlines():
        if line.startswith("warning:"):
            log(f"  {line}")
    doc = json.loads(r.stdout)
    shutil.rmtree(store, ignore_errors=True)
    return took, cpu, doc


def artifacts(doc: dict) -> dict[str, str]:
    return {t["name"]: t["artifact"] for t in doc["targets"]}


PHASES = [
    ("prepare_ms", "client: input root read and hashed"),
    ("upload_ms", "client: FindMissingBlobs and uploads"),
    ("queued_ms", "BuildGrid: queued until a worker took it"),
    ("input_fetch_ms", "worker: inputs fetched and written"),
    ("execution_ms", "worker: tool check and builder run"),
    ("output_upload_ms", "worker: outputs uploaded"),
    ("worker_other_ms", "worker: lease hand-over and reporting"),
    ("notify_ms", "BuildGrid: completion to the client's stream"),
    ("download_ms", "client: outputs fetched and written"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="55 actions, 1 round")
    g.add_argument("--size", choices=["550"], default="550")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--brr", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--slots", type=int, default=8, help="bot sessions per worker")
    ap.add_argument("--jobs", default="16", help="comma-separated -j values for the remote builds")
    ap.add_argument("--local-jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--dir", type=Path)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    size = "quick" if a.quick else a.size
    p = SIZES[size]
    rounds = a.rounds or (1 if a.quick else 3)
    jobs = [int(j) for j in a.jobs.split(",") if j.strip()]
    brr = a.brr or REPO / "target/release/brr"
    if not a.brr and not brr.is_file() and (REPO / "target/debug/brr").is_file():
        # What `cargo test` leaves behind (CI): the checks still hold.
        brr = REPO / "target/debug/brr"
        log(f"no release build: using {brr}; its timings are not representative")
    if not brr.is_file():
        ap.error(f"no brr binary at {brr}: build it or pass --brr")
    brr = brr.resolve()
    bgd = Path(os.environ.get("BRR_BGD") or REPO / "target/buildgrid-venv/bin/bgd")
    if not bgd.is_file():
        raise SystemExit(f"no BuildGrid at {bgd}: {INSTALL_HINT}")

    root = (a.dir or REPO / "target/bench" / f"remote-{size}").resolve()
    gen.generate(root, p)
    time.sleep(2)  # the stat cache distrusts files changed in the last 2 s
    tmp = Path(tempfile.mkdtemp(prefix="brr-bench-rx-"))
    pg = Postgres(tmp)
    cluster = Cluster(tmp, bgd, pg, brr)
    samples: dict[str, list[float]] = {"local": []}
    profiles: dict[str, list[dict]] = {}
    cpu_ms: dict[str, list[dict]] = {}
    errors: list[str] = []
    try:
        for rnd in range(rounds):
            took, cpu, local = build(brr, root, root / "_brr" / "local", a.local_jobs, None)
            samples["local"].append(took)
            cpu_ms.setdefault("local", []).append({"brr and builders": cpu * 1000 / p.actions})
            log(f"round {rnd + 1}: local -j {a.local_jobs}: {took:.2f} s")
            for j in jobs:
                url = cluster.start(a.workers, a.slots)
                before = cluster.cpu_seconds()
                took, cpu, doc = build(brr, root, root / "_brr" / f"remote-{j}", j, url)
                after = cluster.cpu_seconds()
                key = f"remote -j {j}"
                cpu_ms.setdefault(key, []).append(
                    {"brr client": cpu * 1000 / p.actions}
                    | {k: (after[k] - before[k]) * 1000 / p.actions for k in after}
                )
                samples.setdefault(key, []).append(took)
                rx = doc.get("remote_exec") or {}
                profiles.setdefault(key, []).append(rx)
                log(f"round {rnd + 1}: {key}: {took:.2f} s, {rx.get('ran', 0)} ran remotely, "
                    f"{rx.get('fell_back', 0)} fell back")
                if artifacts(doc) != artifacts(local):
                    errors.append(f"round {rnd + 1} {key}: artifacts differ from the local build's")
                if rx.get("ran") != p.actions or rx.get("fell_back"):
                    errors.append(f"round {rnd + 1} {key}: {rx.get('ran')} of {p.actions} ran remotely, "
                                  f"{rx.get('fell_back')} fell back")
    finally:
        cluster.stop()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    local_median = statistics.median(samples["local"])
    lines = [f"## Remote execution, {p.actions} actions ({a.workers} workers × {a.slots} slots, {rounds} rounds)", ""]
    lines += ["| build | median (s) | ÷ local |", "|---|---|---|"]
    for k, xs in samples.items():
        m = statistics.median(xs)
        lines.append(f"| {k} | {m:.2f} | {m / local_median:.1f}× |")
    result = {
        "actions": p.actions,
        "rounds": rounds,
        "samples": samples,
        "profiles": profiles,
        "cpu_ms_per_action": cpu_ms,
        "errors": errors,
    }
    lines += ["", "CPU per action (user + system, median over rounds, ms):", ""]
    lines += ["| build | process | ms |", "|---|---|---|"]
    for k, docs in cpu_ms.items():
        for proc in docs[0]:
            lines.append(f"| {k} | {proc} | {statistics.median(d[proc] for d in docs):.1f} |")
    for k, docs in profiles.items():
        per = {}
        for name, _ in PHASES:
            vals = [d["per_action"][name] for d in docs if d.get("per_action") and name in d["per_action"]]
            if vals:
                per[name] = statistics.median(vals)
        result.setdefault("per_action_ms", {})[k] = per
        lines += ["", f"Per action, {k} (median over rounds of the mean, ms):", ""]
        lines += ["| phase | ms |", "|---|---|"]
        lines += [f"| {label} | {per[name]:.1f} |" for name, label in PHASES if name in per]
    text = "\n".join(lines)
    if a.json:
        print(text, file=sys.stderr)
        print(json.dumps(result, indent=2))
    else:
        print(text)
    for e in errors:
        log(f"FAILED: {e}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
