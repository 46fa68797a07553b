#!/usr/bin/env bash
# Runs every loom model on its own and prints its wall time, for
# docs/verification.md. Usage: scripts/loom-times.sh [PREEMPTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS="${1:-2}"
run() { cargo test -q -p watchq-core --lib --release --target-dir target/loom "$@"; }
run -- --list 2>/dev/null | sed -n 's/: test$//p' | grep 'loom_' | while read -r t; do
    start=$(date +%s%N)
    run -- --exact "$t" >/dev/null 2>&1 && r=ok || r=FAILED
    ms=$((($(date +%s%N) - start) / 1000000))
    printf '%-66s %-6s %6d ms\n' "$t" "$r" "$ms"
done
