#!/usr/bin/env bash
# Fuzzes watchq with cargo-fuzz (libFuzzer + AddressSanitizer).
#   scripts/fuzz.sh [TARGET|all] [SECONDS]   (default: all, 600 s each)
# Targets run one at a time, each for SECONDS; logs go to fuzz/logs/.
# Needs a nightly toolchain (`cargo +nightly`); installs cargo-fuzz if
# missing. Not part of CI: CI replays the committed corpus on stable
# (tests/tests/fuzz_corpus.rs). See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
target=${1:-all}
secs=${2:-600}
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: needs a nightly toolchain (cargo +nightly); this machine has none" >&2
    exit 2
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
if [[ $target == all ]]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
else
    targets=("$target")
fi
mkdir -p logs
for t in "${targets[@]}"; do
    echo "== $t: ${secs}s"
    # Fuzz into a scratch copy so the committed corpus stays small; the
    # seeds are the committed corpus.
    mkdir -p "work/$t"
    cargo +nightly fuzz run "$t" "work/$t" "corpus/$t" -- -max_total_time="$secs" \
        2>&1 | tee "logs/$t.log" | grep -E "^#[0-9]+ +(DONE|pulse)|Done|ERROR|SUMMARY" || true
    if grep -q "ERROR: libFuzzer\|SUMMARY: AddressSanitizer\|panicked" "logs/$t.log"; then
        echo "fuzz.sh: $t crashed; see fuzz/logs/$t.log and fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
