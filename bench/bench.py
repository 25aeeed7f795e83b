#!/usr/bin/env python3
"""brr against ninja, make and Nix on a synthetic monorepo (see bench/gen.py).

Nix runs twice: with its sandbox off (`nix-build`, Debian's default) and on
(`nix-build, sandboxed`), so that each of brr's modes has a like-for-like
peer: brr's sandbox against Nix's, `brr --no-sandbox` against plain Nix.

    python3 bench/bench.py [--quick | --size 550 | --size 10000] [--rounds N]
                           [--brr PATH] [--engines LIST] [--json]

Each round runs every engine, one after the other in a rotating order, on the
same tree through four scenarios: a cold build, a no-op, a one-file change in
a leaf library whose output changes, and a one-file change to a comment line
(the library rebuilds to the same bytes). Then brr's folder hashing is timed
against b3sum over the same files. The medians, brr's ratio to each peer,
how many actions each engine ran, and peak memory are printed as Markdown
tables (`--json`: one JSON document on stdout, tables on stderr).

Correctness is checked on every run: one library's and one service's outputs
must be byte-identical to what the declarations mean for every engine, and
brr's no-op must report every target cached. Exit code 1 if not (or if an
engine fails), 2 on a usage mistake; timings never fail the run.

Missing peers are installed with apt-get when running as root (`--no-install`
to never install; `--quick` installs none and uses whatever is present), and
skipped with a message when that is not possible. Python 3.11 standard
library only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

SIZES = {
    "quick": gen.Params(libs=5, services=50, files=10, bytes=4096),
    "550": gen.Params(libs=50, services=500, files=10, bytes=4096),
    "10000": gen.Params(libs=1000, services=9000, files=10, bytes=4096),
}

SCENARIOS = [
    ("cold", "cold build"),
    ("noop", "no-op"),
    ("edit", "one-file change, library output changes"),
    ("comment", "one-file change, library output unchanged"),
]

ENGINE_LABELS = {
    "brr": "brr",
    "brr-nosb": "brr --no-sandbox",
    "ninja": "ninja",
    "make": "make",
    "nix": "nix-build",
    "nix-sb": "nix-build, sandboxed",
}
PEERS = ["ninja", "make", "nix", "nix-sb"]
ALL_ENGINES = ["brr", "brr-nosb", "ninja", "make", "nix", "nix-sb"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ running


@dataclass
class Run:
    seconds: float
    rc: int
    maxrss_kib: int
    stdout: bytes
    stderr: bytes


def run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, gnu_time: bool = False) -> Run:
    """Runs argv to completion: wall time, and peak RSS through wait4.

    The peak RSS that wait4 reports for a child of this Python process counts
    Python's own pages (Linux keeps the high-water mark of the address space
    the child had before exec), so `gnu_time` runs argv under
    `/usr/bin/time -f %M` instead, whose child starts small. Either way it is
    the largest single process (the engine or one of its children), not a sum.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile() as rss:
        if gnu_time:
            argv = ["/usr/bin/time", "-f", "%M", "-o", rss.name, *argv]
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        t1 = time.perf_counter()
        p.returncode = os.waitstatus_to_exitcode(status)
        maxrss = usage.ru_maxrss
        if gnu_time:
            lines = Path(rss.name).read_text().split()
            maxrss = int(lines[-1]) if lines and lines[-1].isdigit() else -1
        out.seek(0)
        err.seek(0)
        return Run(t1 - t0, p.returncode, maxrss, out.read(), err.read())


def tool_version(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "?"
    return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr).strip() else "?"


class Installer:
    """apt-get install for missing peers, when allowed and possible."""

    def __init__(self, allowed: bool) -> None:
        self.allowed = allowed
        self.updated = False

    def ensure(self, command: str, package: str) -> str | None:
        """None when `command` is available, else why it is not."""
        if shutil.which(command):
            return None
        if not self.allowed:
            return f"`{command}` not found (installing disabled)"
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            return f"`{command}` not found and cannot install `{package}` (needs root and apt-get)"
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if not self.updated:
            log("apt-get update")
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
            self.updated = True
        log(f"apt-get install {package}")
        r = subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, check=False, capture_output=True)
        if r.returncode != 0 or not shutil.which(command):
            return f"`apt-get install {package}` failed: {r.stderr.decode(errors='replace').strip()[-300:]}"
        return None


# ------------------------------------------------------------------ engines


class EngineError(Exception):
    pass


class Engine:
    key = ""

    def __init__(self, root: Path, jobs: int, env: dict[str, str]) -> None:
        self.root = root
        self.jobs = jobs
        self.env = env

    def prepare_cold(self, rnd: int) -> None:
        """Forgets everything built (outside the timing)."""

    def argv(self) -> list[str]:
        raise NotImplementedError

    def actions_run(self, r: Run) -> int:
        raise NotImplementedError

    def output(self, target: str) -> bytes:
        raise NotImplementedError

    def version(self) -> str:
        return "?"


class Brr(Engine):
    def __init__(self, root: Path, jobs: int, env: dict[str, str], brr: Path, sandbox: bool) -> None:
        super().__init__(root, jobs, env)
        self.key = "brr" if sandbox else "brr-nosb"
        self.brr = brr
        self.sandbox = sandbox
        self.store: Path | None = None
        self.last: dict | None = None

    def prepare_cold(self, rnd: int) -> None:
        if self.store is not None:
            shutil.rmtree(self.store, ignore_errors=True)
        self.store = self.root / "_brr" / f"{self.key}-{rnd}"
        shutil.rmtree(self.store, ignore_errors=True)

    def argv(self) -> list[str]:
        a = [str(self.brr), "-C", str(self.root), "--store", str(self.store), "build", "-j", str(self.jobs), "--json"]
        return a + ([] if self.sandbox else ["--no-sandbox"])

    def statuses(self, r: Run) -> dict[str, int]:
        try:
            self.last = json.loads(r.stdout)
        except json.JSONDecodeError as e:
            raise EngineError(f"{self.key}: `brr build --json` printed no JSON: {e}") from e
        counts: dict[str, int] = {}
        for t in self.last["targets"]:
            counts[t["status"]] = counts.get(t["status"], 0) + 1
        return counts

    def actions_run(self, r: Run) -> int:
        return self.statuses(r).get("built", 0)

    def show(self, h: str) -> Run:
        r = run([str(self.brr), "--store", str(self.store), "show", "--json", h], self.root, self.env)
        if r.rc != 0:
            raise EngineError(f"{self.key}: `brr show {h}` failed: {r.stderr.decode(errors='replace')}")
        return r

    def output(self, target: str) -> bytes:
        assert self.last is not None
        art = next(t["artifact"] for t in self.last["targets"] if t["name"] == target)
        tree = json.loads(self.show(art).stdout)["object"]["outputs"]
        entries = json.loads(self.show(tree).stdout)["object"]["entries"]
        blob = next(e["hash"] for e in entries if e["name"] == "out")
        r = run([str(self.brr), "--store", str(self.store), "show", blob], self.root, self.env)
        return r.stdout

    def version(self) -> str:
        return tool_version([str(self.brr), "--version"])


class Ninja(Engine):
    key = "ninja"

    def prepare_cold(self, rnd: int) -> None:
        shutil.rmtree(self.root / "_ninja", ignore_errors=True)

    def argv(self) -> list[str]:
        return ["ninja", "-C", str(self.root), "-j", str(self.jobs)]

    def actions_run(self, r: Run) -> int:
        # Without a terminal ninja prints one `[i/n] command` line per edge run.
        return len(re.findall(rb"^\[\d+/\d+\] ", r.stdout, re.M))

    def output(self, target: str) -> bytes:
        return (self.root / "_ninja" / f"{target}.out").read_bytes()

    def version(self) -> str:
        return "ninja " + tool_version(["ninja", "--version"])


class Make(Engine):
    key = "make"

    def prepare_cold(self, rnd: int) -> None:
        shutil.rmtree(self.root / "_make", ignore_errors=True)

    def argv(self) -> list[str]:
        return ["make", "-C", str(self.root), "-r", "-j", str(self.jobs), "--no-print-directory"]

    def actions_run(self, r: Run) -> int:
        return len(re.findall(rb"^(grep|cat) ", r.stdout, re.M))

    def output(self, target: str) -> bytes:
        return (self.root / "_make" / f"{target}.out").read_bytes()

    def version(self) -> str:
        return tool_version(["make", "--version"])


class Nix(Engine):
    key = "nix"

    def __init__(self, root: Path, jobs: int, env: dict[str, str]) -> None:
        super().__init__(root, jobs, env)
        # Unique per invocation and round: a cold build must not find
        # anything from an earlier benchmark in /nix/store.
        self.run_id = f"{time.time_ns():x}"
        self.salt = ""

    def base(self) -> list[str]:
        return [
            "nix-build", "--no-out-link", "--option", "substituters", "", *self.options(),
            "--max-jobs", str(self.jobs), "--cores", "1", "--argstr", "salt", self.salt,
        ]  # fmt: skip

    def prepare_cold(self, rnd: int) -> None:
        self.salt = f"{self.run_id}-{rnd}"

    def argv(self) -> list[str]:
        return [*self.base(), str(self.root / "default.nix")]

    def actions_run(self, r: Run) -> int:
        return len(re.findall(rb"^building '", r.stderr, re.M))

    def output(self, target: str) -> bytes:
        r = run([*self.base(), "-A", target, str(self.root / "default.nix")], self.root, self.env)
        if r.rc != 0:
            raise EngineError(f"nix: `nix-build -A {target}` failed: {r.stderr.decode(errors='replace')[-500:]}")
        return Path(r.stdout.decode().strip()).read_bytes()

    def version(self) -> str:
        return tool_version(["nix-build", "--version"])

    @classmethod
    def preflight(cls, env: dict[str, str]) -> str | None:
        """None when nix-build can build a trivial derivation here (in the
        sandbox, for the sandboxed engine)."""
        with tempfile.TemporaryDirectory() as d:
            expr = (
                'derivation { name = "brr-bench-preflight"; system = builtins.currentSystem; '
                f'builder = "/bin/sh"; args = ["-c" "echo {time.time_ns()} > $out"]; }}'
            )
            argv = ["nix-build", "--no-out-link", "--option", "substituters", "", *cls.options(), "-E", expr]
            try:
                r = subprocess.run(argv, cwd=d, env=env, capture_output=True, timeout=120, check=False)
            except (OSError, subprocess.TimeoutExpired) as e:
                return f"nix-build does not work here: {e}"
            if r.returncode != 0:
                return f"nix-build does not work here: {r.stderr.decode(errors='replace').strip()[-300:]}"
        return None

    @staticmethod
    def options() -> list[str]:
        """Nix options of this engine: Debian's nix.conf turns the sandbox off."""
        return ["--option", "sandbox", "false"]


class NixSandboxed(Nix):
    """nix-build with its sandbox on, as brr's is by default: each build in
    fresh namespaces, with the host folders the builders' tools live in
    (the generated expression names /bin/sh, /bin/grep, /bin/cat) made
    visible, as brr's builders see the host's files read-only."""

    key = "nix-sb"

    @staticmethod
    def options() -> list[str]:
        host = " ".join(d for d in ("/bin", "/usr", "/lib", "/lib64") if Path(d).exists())
        return ["--option", "sandbox", "true", "--option", "extra-sandbox-paths", host]


# ------------------------------------------------------------------ benchmark


@dataclass
class Sample:
    seconds: float
    maxrss_kib: int
    actions: int


@dataclass
class Results:
    samples: dict[str, dict[str, list[Sample]]] = field(default_factory=dict)
    hashing: dict[str, list[float]] = field(default_factory=dict)
    # scenario → engine → peak RSS in KiB, measured under /usr/bin/time
    memory: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, scenario: str, engine: str, s: Sample) -> None:
        self.samples.setdefault(scenario, {}).setdefault(engine, []).append(s)

    def median(self, scenario: str, engine: str, what: str = "seconds") -> float | None:
        xs = self.samples.get(scenario, {}).get(engine)
        if not xs:
            return None
        return statistics.median(getattr(s, what) for s in xs)


def check_outputs(engines: list[Engine], root: Path, p: gen.Params, res: Results, when: str) -> None:
    """Every engine's output of lib0 and svc0 must be what the graph means."""
    expected = gen.expected_outputs(root, p, 0, 0)
    for e in engines:
        for target, want in expected.items():
            try:
                got = e.output(target)
            except (EngineError, OSError, StopIteration, KeyError) as x:
                res.errors.append(f"{when}: {e.key}: cannot read the output of {target}: {x}")
                continue
            if got != want:
                res.errors.append(
                    f"{when}: {e.key}: output of {target} differs from the expected bytes "
                    f"({len(got)} bytes, expected {len(want)})"
                )


# A no-op is run this many times back to back per engine and round (the
# first right after the other engines' runs, the rest warm): what running
# the command again costs. On an idle VM the first run after a pause is
# slow for every engine (a no-op of ninja goes from 8 ms to 60 ms).
NOOP_REPEATS = 5


def measure(
    e: Engine, scenario: str, res: Results, rnd: int | str, targets: int, gnu_time: bool = False, sync: bool = True
) -> Run | None:
    # Start every run with nothing left to write back: the previous engine's
    # (or the generator's) dirty pages would otherwise slow this one's fsyncs.
    if sync:
        os.sync()
    r = run(e.argv(), e.root, e.env, gnu_time)
    if r.rc != 0:
        tail = (r.stderr or r.stdout).decode(errors="replace").strip()[-800:]
        res.errors.append(f"round {rnd} {scenario}: {e.key} failed with exit code {r.rc}:\n{tail}")
        return None
    try:
        n = e.actions_run(r)
    except EngineError as x:
        res.errors.append(str(x))
        return None
    if gnu_time:
        res.memory.setdefault(scenario, {})[e.key] = r.maxrss_kib
    else:
        res.add(scenario, e.key, Sample(r.seconds, r.maxrss_kib, n))
    if isinstance(e, Brr):
        counts = e.statuses(r)
        if scenario == "noop" and counts.get("cached", 0) != targets:
            res.errors.append(f"round {rnd}: {e.key} no-op did not report every target cached: {counts}")
        if e.sandbox and b"without namespaces" in r.stderr:
            note = "brr (sandboxed) ran without namespaces: " + r.stderr.decode(errors="replace").strip()[:200]
            if note not in res.notes:
                res.notes.append(note)
    log(f"  round {rnd} {scenario:8} {e.key:9} {r.seconds:8.3f} s  {r.maxrss_kib / 1024:7.1f} MiB  {n} run")
    return r


def bench_builds(
    engines: list[Engine], root: Path, p: gen.Params, rounds: int, res: Results, generated: float, gnu_time: bool
) -> None:
    lib_file = root / gen.package_dir("lib", gen.lib_name(0)) / gen.file_names(p)[0]
    edits = 0
    for rnd in range(rounds):
        order = engines[rnd % len(engines) :] + engines[: rnd % len(engines)]
        for e in engines:
            e.prepare_cold(rnd)
        # brr's stat cache trusts an entry only once the file is 2 s older
        # than the entry; a real tree is older than that.
        time.sleep(max(0.0, generated + 2.1 - time.time()))
        for scenario, _ in SCENARIOS:
            if scenario == "edit":
                edits += 1
                gen.edit_line(lib_file, 0, f"{gen.lib_name(0)} {lib_file.name} edit {edits}")
            elif scenario == "comment":
                edits += 1
                gen.edit_line(lib_file, 1, f"# comment edit {edits}")
            for e in order:
                for k in range(NOOP_REPEATS if scenario == "noop" else 1):
                    measure(e, scenario, res, rnd, p.actions, sync=k == 0)
            if scenario != "noop":
                check_outputs(engines, root, p, res, f"round {rnd} {scenario}")
        generated = time.time()
    if gnu_time:
        # One more cold build and no-op per engine, under /usr/bin/time, for
        # peak memory (the wrapper would add its own start-up to the timings).
        for e in engines:
            e.prepare_cold(rounds)
        time.sleep(max(0.0, generated + 2.1 - time.time()))
        for scenario in ("cold", "noop"):
            for e in engines:
                measure(e, scenario, res, "memory", p.actions, gnu_time=True)


def bench_hashing(root: Path, brr: Path, rounds: int, res: Results, env: dict[str, str], b3sum: bool) -> None:
    cmds = {"brr hash": [str(brr), "hash", "libs", "services"]}
    if b3sum:
        cmds["b3sum"] = ["sh", "-c", "find libs services -type f -print0 | xargs -0 b3sum > /dev/null"]
    for name, argv in cmds.items():  # warm-up: same page-cache state for both
        r = run(argv, root, env)
        if r.rc != 0:
            res.errors.append(f"{name} failed: {r.stderr.decode(errors='replace')[-500:]}")
            return
    for rnd in range(rounds):
        items = list(cmds.items())
        if rnd % 2:
            items.reverse()
        for name, argv in items:
            os.sync()
            r = run(argv, root, env)
            res.hashing.setdefault(name, []).append(r.seconds)
            log(f"  round {rnd} hashing  {name:9} {r.seconds:8.3f} s")


# ------------------------------------------------------------------ report


def machine() -> dict[str, str]:
    cpu = "?"
    mem = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {"cpus": str(os.cpu_count()), "cpu": cpu, "memory": mem, "kernel": platform.release()}


def fmt_s(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def fmt_ratio(a: float | None, b: float | None) -> str:
    if a is None or not b:
        return "—"
    # Three decimals below 0.2: 0.10× would not tell 9× from 11×.
    return f"{a / b:.3f}×" if a / b < 0.2 else f"{a / b:.2f}×"


def expected_actions(p: gen.Params) -> dict[str, str]:
    deps = len([j for j in range(p.services) if gen.lib_of(p, j) == 0])
    return {"cold": str(p.actions), "noop": "0", "edit": str(1 + deps), "comment": "1"}


def tables(res: Results, engines: list[str], p: gen.Params, rounds: int) -> str:
    cols = [ENGINE_LABELS[e] for e in engines]
    peers = [e for e in PEERS if e in engines]
    out = []
    head = ["scenario (median s)", *cols]
    head += [f"brr ÷ {ENGINE_LABELS[q]}" for q in peers if "brr" in engines]
    nosb_peers = [q for q in ("ninja", "nix") if "brr-nosb" in engines and q in engines]
    head += [f"no-sandbox ÷ {ENGINE_LABELS[q]}" for q in nosb_peers]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    for key, label in SCENARIOS:
        row = [label, *(fmt_s(res.median(key, e)) for e in engines)]
        if "brr" in engines:
            row += [fmt_ratio(res.median(key, "brr"), res.median(key, q)) for q in peers]
        row += [fmt_ratio(res.median(key, "brr-nosb"), res.median(key, q)) for q in nosb_peers]
        out.append("| " + " | ".join(row) + " |")

    out.append("")
    head = ["actions run (median)", *cols, "minimum"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    exp = expected_actions(p)
    for key, label in SCENARIOS:
        vals = [res.median(key, e, "actions") for e in engines]
        out.append("| " + " | ".join([label, *("—" if v is None else f"{v:.0f}" for v in vals), exp[key]]) + " |")

    out.append("")
    if res.memory:
        head = ["peak RSS, MiB", *cols]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for key, label in SCENARIOS[:2]:
            vals = [res.memory.get(key, {}).get(e) for e in engines]
            out.append("| " + " | ".join([label, *("—" if v is None else f"{v / 1024:.1f}" for v in vals)]) + " |")
    else:
        head = ["peak RSS, MiB (wait4, includes the harness's own pages)", *cols]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for key, label in SCENARIOS[:2]:
            vals = [res.median(key, e, "maxrss_kib") for e in engines]
            out.append("| " + " | ".join([label, *("—" if v is None else f"{v / 1024:.1f}" for v in vals)]) + " |")

    if res.hashing:
        out.append("")
        total = p.total_files * p.bytes
        out.append(f"| hashing {p.total_files} files ({total / 2**20:.1f} MiB + manifests) | median s | MiB/s |")
        out.append("|---|---|---|")
        for name, xs in res.hashing.items():
            m = statistics.median(xs)
            out.append(f"| {name} | {m:.3f} | {total / 2**20 / m:.0f} |")
        if len(res.hashing) == 2:
            b, t = (statistics.median(res.hashing[k]) for k in ("brr hash", "b3sum"))
            out.append(f"| brr throughput ÷ b3sum | {t / b:.2f}× | |")
    out.append("")
    out.append(
        f"{p.libs} libraries, {p.services} services ({p.actions} actions), {p.total_files} files of "
        f"{p.bytes} bytes; median of {rounds} round(s); ratios are brr's time ÷ the peer's (below 1: brr faster)."
    )
    return "\n".join(out)


def to_json(res: Results, engines: list[Engine], p: gen.Params, rounds: int, skipped: dict[str, str]) -> dict:
    keys = [e.key for e in engines]
    med = {
        s: {
            e: {
                "seconds": res.median(s, e),
                "actions": res.median(s, e, "actions"),
            }
            for e in keys
        }
        for s, _ in SCENARIOS
    }
    ratios: dict[str, dict[str, float]] = {}
    for s, _ in SCENARIOS:
        mine = med[s].get("brr", {}).get("seconds")
        ratios[s] = {q: mine / med[s][q]["seconds"] for q in keys if q != "brr" and mine and med[s][q]["seconds"]}
    return {
        "params": p.__dict__,
        "rounds": rounds,
        "machine": machine(),
        "versions": {e.key: e.version() for e in engines},
        "skipped": skipped,
        "medians": med,
        "ratios_brr_over_peer": ratios,
        "samples": {s: {e: [x.__dict__ for x in xs] for e, xs in d.items()} for s, d in res.samples.items()},
        "peak_rss_mib": {s: {e: v / 1024 for e, v in d.items()} for s, d in res.memory.items()},
        "hashing": {k: {"median_s": statistics.median(v), "samples": v} for k, v in res.hashing.items()},
        "expected_actions": expected_actions(p),
        "notes": res.notes,
        "errors": res.errors,
    }


# ------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="5 libraries × 50 services, 1 round (what CI runs)")
    g.add_argument("--size", choices=["550", "10000"], default=None, help="550 (default) or 10000 actions")
    ap.add_argument("--libs", type=int, help="override the number of libraries")
    ap.add_argument("--services", type=int, help="override the number of services")
    ap.add_argument("--files", type=int, help="override the files per package")
    ap.add_argument("--bytes", type=int, help="override the bytes per file")
    ap.add_argument("--rounds", type=int, help="rounds (default 3; --quick: 1)")
    ap.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1, help="parallel jobs for every engine")
    ap.add_argument("--brr", type=Path, help="brr binary (default: $CARGO_TARGET_DIR or target/, then release/brr)")
    ap.add_argument("--engines", help=f"comma-separated subset of {','.join(ALL_ENGINES)}")
    ap.add_argument("--no-hash", action="store_true", help="skip the hashing comparison")
    ap.add_argument("--no-install", action="store_true", help="never apt-get install a missing peer")
    ap.add_argument("--dir", type=Path, help="where to generate the tree (default: target/bench/SIZE)")
    ap.add_argument("--json", action="store_true", help="print JSON on stdout (tables go to stderr)")
    a = ap.parse_args()

    size = "quick" if a.quick else (a.size or "550")
    base = SIZES[size]
    p = gen.Params(
        libs=a.libs or base.libs,
        services=a.services or base.services,
        files=a.files or base.files,
        bytes=a.bytes or base.bytes,
    )
    if min(p.libs, p.services, p.files, p.bytes) < 1 or p.bytes < 64:
        ap.error("sizes must be positive (and --bytes at least 64)")
    rounds = a.rounds or (1 if a.quick else 3)
    if rounds < 1:
        ap.error("--rounds must be at least 1")

    target_dir = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    target_dir = target_dir if target_dir.is_absolute() else REPO / target_dir
    brr = a.brr or target_dir / "release" / "brr"
    if not a.brr and not brr.is_file() and (target_dir / "debug" / "brr").is_file():
        # What `cargo test` leaves behind (CI): the output checks still hold.
        brr = target_dir / "debug" / "brr"
        log(f"no release build: using {brr}; its timings are not representative")
    if not brr.is_file():
        ap.error(f"no brr binary at {brr}: run `cargo build --release -p brr-cli` or pass --brr")
    brr = brr.resolve()

    if a.engines:
        wanted = [e.strip() for e in a.engines.split(",") if e.strip()]
        unknown = [e for e in wanted if e not in ALL_ENGINES]
        if unknown:
            ap.error(f"unknown engine(s) {unknown}; choose from {ALL_ENGINES}")
    else:
        wanted = list(ALL_ENGINES)
        if size == "10000":
            wanted.remove("nix")
            wanted.remove("nix-sb")
            log("nix skipped at --size 10000 (minutes per round); add it with --engines to include it")

    env = dict(os.environ, LC_ALL="C", NO_COLOR="1")
    installer = Installer(allowed=not a.no_install and not a.quick)
    skipped: dict[str, str] = {}
    peers = [("ninja", "ninja", "ninja-build"), ("make", "make", "make")]
    peers += [("nix", "nix-build", "nix-bin"), ("nix-sb", "nix-build", "nix-bin")]
    for key, cmd, pkg in peers:
        if key in wanted:
            why = installer.ensure(cmd, pkg)
            nix = {"nix": Nix, "nix-sb": NixSandboxed}.get(key)
            if why is None and nix:
                why = nix.preflight(env)
            if why:
                skipped[key] = why
                wanted.remove(key)
    gnu_time = Path("/usr/bin/time").is_file() or installer.ensure("/usr/bin/time", "time") is None
    if not gnu_time:
        log("no /usr/bin/time: peak memory is read through wait4 and includes the harness's own pages")
    b3sum = not a.no_hash
    if b3sum:
        why = installer.ensure("b3sum", "b3sum")
        if why:
            skipped["b3sum"] = why
            b3sum = False
    for k, why in skipped.items():
        log(f"skipping {k}: {why}")

    root = (a.dir or REPO / "target" / "bench" / size).resolve()
    t0 = time.perf_counter()
    gen.generate(root, p)
    generated = time.time()
    log(f"generated {p.actions} actions, {p.total_files} files in {root} ({time.perf_counter() - t0:.1f} s)")

    engines: list[Engine] = []
    for key in wanted:
        if key in ("brr", "brr-nosb"):
            engines.append(Brr(root, a.jobs, env, brr, sandbox=key == "brr"))
        elif key == "ninja":
            engines.append(Ninja(root, a.jobs, env))
        elif key == "make":
            engines.append(Make(root, a.jobs, env))
        elif key == "nix":
            engines.append(Nix(root, a.jobs, env))
        elif key == "nix-sb":
            engines.append(NixSandboxed(root, a.jobs, env))

    res = Results()
    bench_builds(engines, root, p, rounds, res, generated, gnu_time)
    if not a.no_hash:
        bench_hashing(root, brr, max(rounds, 3), res, env, b3sum)

    table = tables(res, [e.key for e in engines], p, rounds)
    extra = [f"skipped {k}: {why}" for k, why in skipped.items()] + res.notes
    text = table + ("\n\n" + "\n".join(f"- {x}" for x in extra) if extra else "")
    if a.json:
        print(text, file=sys.stderr)
        print(json.dumps(to_json(res, engines, p, rounds, skipped), indent=2))
    else:
        print(text)
    if res.errors:
        log("\nFAILED: wrong or missing output:")
        for e in res.errors:
            log(f"- {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
