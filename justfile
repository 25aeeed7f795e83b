# Everyday commands. `just` alone lists them.

default:
    @just --list

# Build every crate (debug).
build:
    cargo build --workspace

# The quick start: build the example monorepo and print artifact hashes.
example:
    cargo run -p brr-cli -- -C fixtures/shop build

# Every test; the same command as the README and .ci/run.
test:
    scripts/test-deps.sh && cargo test --workspace

# Format check, clippy (pedantic, warnings denied) and docs.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

# Regenerate the JSON Schemas in schemas/ from the declaration types and the `--json` output types.
schema:
    BRR_BLESS=1 cargo test -p brr-schema schema
    BRR_BLESS=1 cargo test -p brr-cli --bin brr output

# Benchmark brr against ninja, make and Nix on a synthetic monorepo
# (`just bench --quick`, `just bench --size 10000`; see BENCHMARKS.md).
bench *ARGS:
    cargo build --release -p brr-cli
    python3 bench/bench.py {{ARGS}}

# What CI runs.
ci: lint test
