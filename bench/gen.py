#!/usr/bin/env python3
"""Generates the synthetic monorepo of `bench/bench.py`: the same build graph
declared for brr (RON), ninja (`build.ninja`), make (`Makefile`) and Nix
(`default.nix`).

The graph: L libraries and S services. Every package holds F text files of B
bytes (deterministic pseudo-random words; the second line of every file, and
about one line in five, is a `#` comment). Service i depends on library
i mod L.

- library action: `grep -hv '^#' <its files> > out` (comments dropped, so an
  edit to a comment line leaves the library's output unchanged);
- service action: `cat <its files> <its library's out> > out`.

Python 3.11 standard library only. Usage:

    python3 bench/gen.py DIR [--libs L] [--services S] [--files F] [--bytes B]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

WORDS = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
    "upsilon phi chi psi omega build release run store cache hash tree blob action key artifact ledger "
    "sandbox graph target input output tool library service process deploy config stat mtime inode "
    "merkle digest blake ninja make nix ron sqlite content address early cutoff parallel job queue"
).split()

# Sources look old, as in a real tree (their ctime is still "now": the
# benchmark waits 2 s before building so that brr's stat cache, which
# distrusts files changed less than 2 s before it looked, trusts them).
SOURCE_MTIME = 1_600_000_000


@dataclass(frozen=True)
class Params:
    libs: int
    services: int
    files: int
    bytes: int

    @property
    def actions(self) -> int:
        return self.libs + self.services

    @property
    def total_files(self) -> int:
        return self.actions * self.files


def lib_name(i: int) -> str:
    return f"lib{i}"


def svc_name(j: int) -> str:
    return f"svc{j}"


def lib_of(p: Params, j: int) -> int:
    return j % p.libs


def file_names(p: Params) -> list[str]:
    width = max(2, len(str(p.files - 1)))
    return [f"f{k:0{width}d}.txt" for k in range(p.files)]


def package_dir(kind: str, name: str) -> str:
    return f"{'libs' if kind == 'lib' else 'services'}/{name}"


def packages(p: Params) -> list[tuple[str, str]]:
    """(kind, name) of every package, libraries first."""
    return [("lib", lib_name(i)) for i in range(p.libs)] + [("svc", svc_name(j)) for j in range(p.services)]


def _pool(seed: int, size: int) -> tuple[str, list[int]]:
    """A block of text lines and the offset of each line start."""
    rng = random.Random(seed)
    lines = []
    total = 0
    while total < size:
        n = rng.randint(4, 11)
        line = " ".join(rng.choice(WORDS) for _ in range(n))
        if rng.random() < 0.2:
            line = "# " + line
        lines.append(line + "\n")
        total += len(line) + 1
    text = "".join(lines)
    starts = [0]
    for ln in lines[:-1]:
        starts.append(starts[-1] + len(ln))
    return text + text, starts


def file_text(pool: tuple[str, list[int]], pkg: str, fname: str, index: int, size: int) -> str:
    text, starts = pool
    head = f"{pkg} {fname} v0\n# {pkg} {fname} comment\n"
    start = starts[(index * 7919) % len(starts)]
    need = max(0, size - len(head) - 1)
    return head + text[start : start + need] + "\n"


def edit_line(path: Path, line: int, new: str) -> None:
    """Replaces line `line` (0-based) of a generated file."""
    lines = path.read_text().split("\n")
    lines[line] = new
    path.write_text("\n".join(lines))


def expected_lib(files: list[bytes]) -> bytes:
    out = []
    for data in files:
        out.extend(ln for ln in data.splitlines(keepends=True) if not ln.startswith(b"#"))
    return b"".join(out)


def expected_outputs(root: Path, p: Params, lib: int, svc: int) -> dict[str, bytes]:
    """What every engine must produce for one library and one service."""
    names = file_names(p)
    lib_files = [(root / package_dir("lib", lib_name(lib)) / f).read_bytes() for f in names]
    lib_out = expected_lib(lib_files)
    dep = expected_lib([(root / package_dir("lib", lib_name(lib_of(p, svc))) / f).read_bytes() for f in names])
    svc_files = [(root / package_dir("svc", svc_name(svc)) / f).read_bytes() for f in names]
    return {lib_name(lib): lib_out, svc_name(svc): b"".join(svc_files) + dep}


# ---------------------------------------------------------------- declarations


def brr_package(p: Params, kind: str, name: str, j: int) -> str:
    if kind == "lib":
        return (
            "Library(\n"
            f'    name: "{name}",\n'
            '    inputs: ["*.txt"],\n'
            '    tools: ["sh", "grep"],\n'
            "    builder: [\"sh\", \"-c\", \"grep -hv '^#' *.txt > $OUT/out\"],\n"
            '    outputs: ["out"],\n'
            ")\n"
        )
    dep = lib_name(lib_of(p, j))
    return (
        "Service(\n"
        f'    name: "{name}",\n'
        '    inputs: ["*.txt"],\n'
        f'    deps: ["{dep}"],\n'
        '    tools: ["sh", "cat"],\n'
        f'    builder: ["sh", "-c", "cat *.txt $DEPS/{dep}/out > $OUT/out"],\n'
        '    outputs: ["out"],\n'
        ")\n"
    )


def ninja_file(p: Params) -> str:
    names = file_names(p)
    out = [
        "# Generated by bench/gen.py.",
        "builddir = _ninja",
        "",
        "# restat: the library rule leaves its output untouched when the bytes are",
        "# the same, so ninja skips the dependents (its form of early cutoff).",
        "rule lib",
        "  command = grep -hv '^#' $in > $out.tmp && "
        "{ cmp -s $out.tmp $out && rm -f $out.tmp || mv -f $out.tmp $out; }",
        "  restat = 1",
        "rule svc",
        "  command = cat $in > $out",
        "",
    ]
    for i in range(p.libs):
        d = package_dir("lib", lib_name(i))
        out.append(f"build _ninja/{lib_name(i)}.out: lib " + " ".join(f"{d}/{f}" for f in names))
    for j in range(p.services):
        d = package_dir("svc", svc_name(j))
        srcs = " ".join(f"{d}/{f}" for f in names)
        out.append(f"build _ninja/{svc_name(j)}.out: svc {srcs} _ninja/{lib_name(lib_of(p, j))}.out")
    out.append("")
    return "\n".join(out)


def make_file(p: Params) -> str:
    names = file_names(p)
    out = [
        "# Generated by bench/gen.py. Run with `make -r` (no built-in rules).",
        ".SUFFIXES:",
        ".PHONY: all",
        "all: " + " ".join(f"_make/{svc_name(j)}.out" for j in range(p.services))
        + " " + " ".join(f"_make/{lib_name(i)}.out" for i in range(p.libs)),
        "_make:",
        "\tmkdir -p $@",
        "",
    ]
    for i in range(p.libs):
        d = package_dir("lib", lib_name(i))
        out.append(f"_make/{lib_name(i)}.out: " + " ".join(f"{d}/{f}" for f in names) + " | _make")
        out.append("\tgrep -hv '^#' $^ > $@")
    for j in range(p.services):
        d = package_dir("svc", svc_name(j))
        srcs = " ".join(f"{d}/{f}" for f in names)
        out.append(f"_make/{svc_name(j)}.out: {srcs} _make/{lib_name(lib_of(p, j))}.out | _make")
        out.append("\tcat $^ > $@")
    out.append("")
    return "\n".join(out)


def nix_file(p: Params) -> str:
    # Builders get no PATH in Nix: absolute paths to the host's coreutils and
    # grep. `salt` makes every store path new, so each round's cold build is
    # really cold (sources are re-imported, derivations rebuilt).
    out = [
        "# Generated by bench/gen.py. nix-build --argstr salt X --option substituters ''",
        '{ salt ? "0" }:',
        "let",
        '  txt = path: type: builtins.match ".*\\\\.txt" path != null;',
        '  src = dir: name: builtins.path { path = dir; name = "${name}-src-${salt}"; filter = txt; };',
        "  lib = name: dir: derivation {",
        "    inherit name salt; system = builtins.currentSystem; builder = \"/bin/sh\";",
        "    args = [ \"-c\" \"/bin/grep -hv '^#' $src/*.txt > $out\" ];",
        "    src = src dir name;",
        "  };",
        "  svc = name: dir: dep: derivation {",
        "    inherit name salt dep; system = builtins.currentSystem; builder = \"/bin/sh\";",
        '    args = [ "-c" "/bin/cat $src/*.txt $dep > $out" ];',
        "    src = src dir name;",
        "  };",
    ]
    for i in range(p.libs):
        n = lib_name(i)
        out.append(f'  {n} = lib "{n}" ./{package_dir("lib", n)};')
    out.append("in {")
    for i in range(p.libs):
        out.append(f"  inherit {lib_name(i)};")
    for j in range(p.services):
        n = svc_name(j)
        out.append(f'  {n} = svc "{n}" ./{package_dir("svc", n)} {lib_name(lib_of(p, j))};')
    out.append("}")
    out.append("")
    return "\n".join(out)


def generate(root: Path, p: Params, seed: int = 1) -> None:
    """Writes the tree at `root` (replacing what is there)."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    pool = _pool(seed, 256 * 1024)
    names = file_names(p)
    (root / "brr.ron").write_text('Workspace(packages: ["libs/*", "services/*"])\n')
    index = 0
    for j_or_i, (kind, name) in enumerate(packages(p)):
        d = root / package_dir(kind, name)
        d.mkdir(parents=True)
        j = j_or_i - p.libs
        (d / "brr.ron").write_text(brr_package(p, kind, name, j))
        for f in names:
            path = d / f
            path.write_text(file_text(pool, name, f, index, p.bytes))
            os.utime(path, (SOURCE_MTIME, SOURCE_MTIME))
            index += 1
        os.utime(d / "brr.ron", (SOURCE_MTIME, SOURCE_MTIME))
    (root / "build.ninja").write_text(ninja_file(p))
    (root / "Makefile").write_text(make_file(p))
    (root / "default.nix").write_text(nix_file(p))
    (root / "bench-params.json").write_text(json.dumps(p.__dict__) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=Path)
    ap.add_argument("--libs", type=int, default=50)
    ap.add_argument("--services", type=int, default=500)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--bytes", type=int, default=4096)
    a = ap.parse_args()
    p = Params(a.libs, a.services, a.files, a.bytes)
    generate(a.dir, p)
    print(f"{a.dir}: {p.actions} actions, {p.total_files} files of {p.bytes} bytes")


if __name__ == "__main__":
    main()
