#!/usr/bin/env python3
"""The release stage's speed: what `brr release`, `brr promote`, `brr releases`
and `brr diff` cost on top of the work they hand to other programs.

    python3 bench/release.py [--quick] [--rounds N] [--brr PATH] [--json]

A generated workspace of 50 services (builders and release commands are
`sh -c`) with `staging` and `production` is built once, then:

- release: `brr release svc0 --env staging` of the already built service,
  against running its release command alone; the difference is brr's cost;
- promote: `brr promote --from staging --to production` of all 50 services,
  which have no release command here, so the time is brr's alone;
- ledger: the ledger is filled to 10,000 entries (`--quick`: 1,000) by
  releasing every service again and again; then `brr releases --env staging`,
  `brr releases --env staging svc0` and `brr diff staging@v1 staging -s svc0`
  are timed.

Targets (issue 16): release at most 50 ms over its release command, promote
of 50 services under 1 s, releases and diff under 50 ms with 10,000 entries.
Medians are printed with the target each is held to; every run is also
checked (exit codes, versions, a verifying ledger), so the bench fails when
the commands break. Exit 1 on such a failure, never on a timing. Python 3.11
standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SERVICES = 50
RELEASE_COMMAND = "true"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def write_services(root: Path, with_release: bool, mark: str = "") -> None:
    for i in range(SERVICES):
        d = root / "svc" / f"svc{i}"
        d.mkdir(parents=True, exist_ok=True)
        release = f'\n    release: ["sh", "-c", "{RELEASE_COMMAND}"],' if with_release and i == 0 else ""
        (d / "brr.ron").write_text(
            f'Service(\n    name: "svc{i}",\n    tools: ["sh"],\n'
            f'    builder: ["sh", "-c", "echo svc{i}{mark} > $OUT/app"],\n    outputs: ["app"],\n'
            f'    processes: {{"web": Process(command: ["sh", "-c", "cat app"])}},{release}\n)\n'
        )


def generate(root: Path, with_release: bool) -> None:
    (root / "brr.ron").write_text('Workspace(packages: ["svc/*"])\n')
    envs = []
    for env, level in (("staging", "debug"), ("production", "info")):
        envs.append(f'"{env}": Environment(vars: {{"LOG_LEVEL": "{level}", "REGION": "{env}-1"}})')
    (root / "environments.ron").write_text(
        'Environments(promotion: ["staging", "production"], environments: {' + ", ".join(envs) + "})\n"
    )
    write_services(root, with_release)


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    r = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if r.returncode != 0:
        log(f"error: `{' '.join(argv)}` exited with {r.returncode}\n{r.stderr}")
        sys.exit(1)
    return elapsed


def median_of(rounds: int, argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    return statistics.median(timed(argv, cwd, env) for _ in range(rounds))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 ledger entries instead of 10,000")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--brr", type=Path, default=None, help="brr binary [default: target/release/brr, else target/debug/brr]")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    brr = args.brr or target_dir / "release" / "brr"
    if not args.brr and not brr.is_file() and (target_dir / "debug" / "brr").is_file():
        brr = target_dir / "debug" / "brr"
        log(f"no release build: using {brr}; its timings are not representative")
    if not brr.is_file():
        ap.error(f"no brr binary at {brr}: run `cargo build --release -p brr-cli` or pass --brr")
    brr = brr.resolve()
    entries_goal = 1_000 if args.quick else 10_000
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="brr-release-bench-") as tmp:
        root = Path(tmp)
        generate(root, with_release=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRR_")}
        env["BRR_ACTOR"] = "bench"
        base = [str(brr), "-C", str(root)]
        log(f"building {SERVICES} services…")
        timed(base + ["build"], root, env)
        timed(base + ["release", "--env", "staging"], root, env)

        log("release of a built service, against its release command alone…")
        release = median_of(args.rounds, base + ["release", "svc0", "--env", "staging"], root, env)
        command = median_of(args.rounds, ["sh", "-c", RELEASE_COMMAND], root, env)
        results["release_s"] = release
        results["release_command_s"] = command

        log(f"promote of {SERVICES} services…")
        promote = []
        for rnd in range(max(3, args.rounds // 3)):
            # New builds in staging each round, so every promotion has work.
            write_services(root, with_release=False, mark=f" round {rnd}")
            timed(base + ["release", "--env", "staging"], root, env)
            start = time.perf_counter()
            r = subprocess.run(
                base + ["promote", "--from", "staging", "--to", "production", "--json"],
                cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            promote.append(time.perf_counter() - start)
            promoted = [x for x in json.loads(r.stdout or "{}").get("releases", []) if not x["noop"]]
            if r.returncode != 0 or len(promoted) != SERVICES:
                log(f"error: promote made {len(promoted)} releases, expected {SERVICES}\n{r.stderr}")
                return 1
        results["promote_s"] = statistics.median(promote)

        log(f"filling the staging ledger to {entries_goal} entries…")
        rounds_needed = max(0, entries_goal // SERVICES)
        for _ in range(rounds_needed):
            timed(base + ["release", "--env", "staging"], root, env)
        out = subprocess.run(
            base + ["releases", "--env", "staging", "-n", str(entries_goal * 2), "--json"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        entries = len(json.loads(out.stdout)["releases"])
        results["entries"] = entries
        results["releases_s"] = median_of(args.rounds, base + ["releases", "--env", "staging"], root, env)
        results["releases_service_s"] = median_of(
            args.rounds, base + ["releases", "--env", "staging", "svc0"], root, env
        )
        results["diff_s"] = median_of(args.rounds, base + ["diff", "staging@v1", "staging", "-s", "svc0"], root, env)
        results["ledger_verify_s"] = median_of(3, base + ["ledger", "verify"], root, env)

    rows = [
        ("release, over its release command", (results["release_s"] - results["release_command_s"]) * 1000, 50),
        (f"promote of {SERVICES} services", results["promote_s"] * 1000, 1000),
        (f"releases --env staging ({results['entries']} entries)", results["releases_s"] * 1000, 50),
        ("releases --env staging svc0", results["releases_service_s"] * 1000, 50),
        ("diff staging@v1 staging -s svc0", results["diff_s"] * 1000, 50),
        ("ledger verify (whole chain)", results["ledger_verify_s"] * 1000, None),
    ]
    log("")
    log("| what | median | target | share of target |")
    log("|---|---|---|---|")
    for what, ms, target in rows:
        share = f"{ms / target:.2f}" if target else "-"
        log(f"| {what} | {ms:.1f} ms | {f'{target} ms' if target else '-'} | {share} |")
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
