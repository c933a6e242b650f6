#!/usr/bin/env bash
# Builds the preflight fuzz target with libFuzzer's coverage instrumentation (on the
# stable toolchain: the sanitizer-coverage pass, no nightly flag) and runs it for
# $1 seconds (default 60) from the committed seeds, with a per-input time budget of
# 10 s and a memory cap. Exits non-zero when libFuzzer finds anything; the input that
# did is left in $CXGRAPH_FUZZ_ARTIFACTS (default: a temporary directory) and named
# in its output. `cargo fuzz run preflight` is the same target for cargo-fuzz users.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
# A target directory of its own: instrumented builds must not replace the main ones.
if [ -n "${CXGRAPH_FUZZ_TARGET_DIR:-}" ]; then
  export CARGO_TARGET_DIR="$CXGRAPH_FUZZ_TARGET_DIR"
elif [ -n "${CARGO_TARGET_DIR:-}" ]; then
  export CARGO_TARGET_DIR="$CARGO_TARGET_DIR-fuzz"
else
  export CARGO_TARGET_DIR="$PWD/../../target/fuzz"
fi
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# With an explicit target (the host's), RUSTFLAGS instrument what runs in the target
# only, not build scripts and proc-macros, which have no libFuzzer to link.
host="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release --locked --bin preflight --target "$host"
corpus="$(mktemp -d)"
artifacts="${CXGRAPH_FUZZ_ARTIFACTS:-$(mktemp -d)}/"
trap 'rm -rf "$corpus"' EXIT
cp seeds/* "$corpus"/
"$CARGO_TARGET_DIR/$host/release/preflight" "$corpus" \
  -dict=graphql.dict -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
  -artifact_prefix="$artifacts" -print_final_stats=1
