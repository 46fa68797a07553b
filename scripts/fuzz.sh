#!/usr/bin/env bash
# Fuzzes watchq with cargo-fuzz (libFuzzer + AddressSanitizer).
#   scripts/fuzz.sh [--cmin] [TARGET|all] [SECONDS]   (default: all, 600 s each)
# Targets run one at a time, each for SECONDS; logs go to fuzz/logs/.
# With --cmin, a target that did not crash then has what it learnt kept:
# its grown corpus (fuzz/work/TARGET) and the committed one
# (fuzz/corpus/TARGET) are minimised together with `cargo fuzz cmin` into
# fuzz/corpus/TARGET (inputs named by their SHA-1, as libFuzzer names
# them), and the hand-named seeds and regression inputs there are kept
# under their names whatever cmin says; commit the result. SECONDS=0
# skips the fuzzing and only minimises.
# Needs a nightly toolchain (`cargo +nightly`); installs cargo-fuzz if
# missing. Not part of CI: CI replays the committed corpus on stable
# (tests/tests/fuzz_corpus.rs). See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
cmin=
if [[ ${1:-} == --cmin ]]; then cmin=1; shift; fi
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

# Minimises work/$1 + corpus/$1 into corpus/$1, keeping the named seeds.
minimise() {
    local t=$1 keep f h before
    keep=$(mktemp -d)
    # A name that is not a SHA-1 was given by hand: a seed or a past crash.
    for f in "corpus/$t"/*; do
        [[ -e $f ]] || continue
        [[ $(basename "$f") =~ ^[0-9a-f]{40}$ ]] || cp "$f" "$keep/"
    done
    before=$(find "work/$t" "corpus/$t" -maxdepth 1 -type f -printf '%f\n' | sort -u | wc -l)
    cp -n "work/$t"/* "corpus/$t"/ 2>/dev/null || true
    cargo +nightly fuzz cmin "$t" "corpus/$t" >"logs/$t.cmin.log" 2>&1 || {
        echo "fuzz.sh: cmin of $t failed; see fuzz/logs/$t.cmin.log" >&2
        rm -rf "$keep"
        return 1
    }
    for f in "$keep"/*; do
        [[ -e $f ]] || continue
        h=$(sha1sum "$f" | cut -d' ' -f1)
        rm -f "corpus/$t/$h"
        cp "$f" "corpus/$t/"
    done
    rm -rf "$keep"
    echo "== $t: cmin: $before inputs (work + corpus) -> $(find "corpus/$t" -maxdepth 1 -type f | wc -l) in corpus/$t ($(du -sb "corpus/$t" | cut -f1) bytes)"
}

for t in "${targets[@]}"; do
    mkdir -p "work/$t"
    if ((secs > 0)); then
        echo "== $t: ${secs}s"
        # Fuzz into a scratch copy so the committed corpus stays small; the
        # seeds are the committed corpus.
        cargo +nightly fuzz run "$t" "work/$t" "corpus/$t" -- -max_total_time="$secs" \
            2>&1 | tee "logs/$t.log" | grep -E "^#[0-9]+ +(DONE|pulse)|Done|ERROR|SUMMARY" || true
        if grep -q "ERROR: libFuzzer\|SUMMARY: AddressSanitizer\|panicked" "logs/$t.log"; then
            echo "fuzz.sh: $t crashed; see fuzz/logs/$t.log and fuzz/artifacts/$t/" >&2
            exit 1
        fi
    fi
    if [[ -n $cmin ]]; then minimise "$t"; fi
done
