#!/usr/bin/env bash
# The whole test suite of watchq: what the README's second command runs and
# what CI (.ci/run) runs. Needs the Rust toolchain (cargo, rustc) and a git
# checkout; installs the rest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says when it began (minutes:seconds since the script began), so a
# CI log shows where the time budget goes.
step() { printf '\n== [%d:%02d] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

# What the tests need besides Rust: gcc (C consumers and the oracle's
# probe under `watchq exec`), python3 (the oracle's normaliser) and
# Debian's keyutils (its `keyctl` runs under `watchq exec`). Under a
# plain `cargo test` a test whose tool is missing fails, naming the
# package (tests/src/programs.rs says why it does not skip).
need=()
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v python3 >/dev/null || need+=(python3)
command -v keyctl >/dev/null || need+=(keyutils)
if ((${#need[@]})); then
    step "installing ${need[*]}"
    sudo=()
    [[ $(id -u) == 0 ]] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get install -y -q "${need[@]}" >/dev/null ||
        { "${sudo[@]}" apt-get update -q >/dev/null && "${sudo[@]}" apt-get install -y -q "${need[@]}" >/dev/null; }
fi

# A clean checkout with no target directory, which is what CI starts from,
# is already what the last step would make of a fresh clone: remember it
# now, before any build, so that step need not build everything again.
pristine=
if [[ ! -e target && -z ${CARGO_TARGET_DIR:-}${CARGO_BUILD_TARGET_DIR:-} ]] &&
    git rev-parse --verify -q HEAD >/dev/null && [[ -z $(git status --porcelain) ]]; then
    pristine=$(git rev-parse HEAD)
fi

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

# The consumer API builds on core's wire layer alone (no emulator): the
# workspace build above unifies features, so check that build on its own.
step "lint: core's wire layer alone, and the client without the emulator"
cargo clippy -p watchq-core --no-default-features --all-targets --locked -- -D warnings
cargo clippy -p watchq-client --all-targets --locked -- -D warnings

step "docs (rustdoc warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

# No `cargo build` first: the tests build the `watchq` binary and the
# preload library they run (tests/src/programs.rs).
step "tests (unit, conformance, stress, fuzz-style, corpus replay, programs under watchq exec)"
cargo test --workspace --locked

# The corpus sections that wait on real time (gc_delay, about 10 s),
# left out of a plain `cargo test` by #[ignore].
step "conformance corpus: real-time sections (cargo test --test conformance_corpus -- --ignored)"
cargo test --locked -p watchq-tests --test conformance_corpus -- --ignored conformance_gc_delay_real_time

# The real kernel's own probe under `watchq exec`, compared with its
# recording. The probe and its normaliser are the shared oracle's code,
# not this repository's, so this is a script and not a `cargo test`; CI
# has the oracle beside the checkout, and a CI run without it fails.
oracle=${ORACLE:-../shared/oracle}
if [[ -d $oracle ]]; then
    step "the real kernel's probe under watchq exec (scripts/oracle-conformance.sh)"
    ORACLE=$oracle scripts/oracle-conformance.sh
elif [[ ${CI:-} == true ]]; then
    echo "error: $oracle is missing; CI compares the real kernel's probe (scripts/oracle-conformance.sh)" >&2
    exit 1
else
    step "SKIPPED: the real kernel's probe under watchq exec ($oracle is not there; CI runs it)"
fi

# keyutils' own test suite, unmodified (fetched from Debian's source
# package at run time, never committed), every script under `watchq exec`:
# fails when a script that passed on the real kernel (its graded run is
# tests/data/keyutils-6.12-results.txt) does not pass here. GATE=1 runs
# just those 80 scripts (about 70 s on this machine).
step "keyutils' own test suite under watchq exec (GATE=1 scripts/keyutils-suite.sh)"
GATE=1 scripts/keyutils-suite.sh

# AddressSanitizer (and its LeakSanitizer) over every test that runs in
# this process's address space: the multi-threaded stress tests, the
# policy swap, the model-based and fuzz-style tests, the corpus replay.
# `-Zsanitizer` is a nightly flag; RUSTC_BOOTSTRAP lets the stable
# toolchain (the only one a fresh machine has) accept it. The tests that
# run programs (every file using `watchq_tests::programs`: the preload,
# bad-input, scenario, JSON-output and docs tests) are left out: they run the `watchq`
# binary and C consumers with the library injected, and an instrumented
# preload would need the ASan runtime loaded first.
step "AddressSanitizer: stress, policy swap, model-based, fuzz-style and unit tests"
asan_tests=()
for t in tests/tests/*.rs; do
    grep -q 'watchq_tests::programs' "$t" || asan_tests+=(--test "$(basename "$t" .rs)")
done
# The rings' proptests are core's own integration tests (core/tests/).
asan_tests+=(--test pipe_ring --test mmap_ring)
RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=address" ASAN_OPTIONS="detect_leaks=1" \
    cargo test --locked --target "$(rustc -vV | sed -n "s/^host: //p")" --target-dir target/asan \
    -p watchq-core -p watchq-sources -p watchq-kernel -p watchq-client -p watchq --lib -p watchq-tests "${asan_tests[@]}"

# Miri and ThreadSanitizer need nightly's `miri` and `rust-src`
# components, which a fresh machine (the stable toolchain alone) lacks:
# add them here, each on its own (a nightly without Miri still gives
# rust-src), after the nightly toolchain itself if it is missing. Where
# that fails (no network, no rustup) the step is skipped and says why.
# `cargo miri setup` builds Miri's sysroot once (2.5 min here), outside
# the Miri steps' timeouts.
miri_why= tsan_why=
# (grep without -q: with pipefail, an early exit could fail rustup's write)
has_nightly() { rustup component list --toolchain nightly --installed 2>/dev/null | grep "^$1" >/dev/null; }
if ! command -v rustup >/dev/null; then
    miri_why="rustup is not installed, so nightly's miri cannot be added"
    tsan_why="rustup is not installed, so nightly's rust-src cannot be added"
else
    if ! has_nightly miri || ! has_nightly rust-src; then
        step "installing nightly's miri and rust-src (rustup component add --toolchain nightly ...)"
        rustup toolchain list | grep '^nightly' >/dev/null ||
            rustup toolchain install nightly --profile minimal --no-self-update ||
            echo "rustup toolchain install nightly failed"
    fi
    has_nightly miri || rustup component add --toolchain nightly miri ||
        miri_why="rustup component add --toolchain nightly miri failed (see above)"
    has_nightly rust-src || rustup component add --toolchain nightly rust-src ||
        tsan_why="rustup component add --toolchain nightly rust-src failed (see above)"
    # Miri's sysroot is built from rust-src.
    [[ -n $miri_why || -z $tsan_why ]] || miri_why=$tsan_why
    if [[ -z $miri_why ]] && ! cargo +nightly miri setup >/dev/null; then
        miri_why="cargo +nightly miri setup failed to build Miri's sysroot (see above)"
    fi
fi

# Miri over core's unit tests: the rings' unsafe code, their threaded
# tests (two producers and the consumer, or the kernel and two readers of
# the mirror; few posts under cfg(miri)) and the proptests at a few
# cases, with strict provenance and Miri's weak-memory emulation (a load
# may see a stale store, as hardware may). Isolation is off for
# proptest's failure file (getcwd). The mirror (`ring::shm`) runs on heap
# words under Miri, which cannot make its sealed memfds (the seals test
# is left out). 61 tests, 6 min of wall time and 2.4 min of CPU at nice
# 19 on the 2 shared cores (2026-12-02).
if [[ -z $miri_why ]]; then
    step "Miri: core's unit tests (strict provenance, weak-memory emulation)"
    PROPTEST_CASES=4 MIRIFLAGS="-Zmiri-strict-provenance -Zmiri-disable-isolation" \
        timeout 900 cargo +nightly miri test --locked -p watchq-core --lib
    # The rings' proptests against their sequential models (3 cases of at
    # most 30 operations under cfg(miri)); the memfd test is left out
    # (Miri cannot make memfds). They are core's own tests so that this
    # builds core alone (from watchq-tests, the whole emulator's build
    # under Miri was 4.5 of the step's 6.9 min, 2026-12-02).
    step "Miri: the rings' proptests (core/tests/pipe_ring.rs, mmap_ring.rs)"
    MIRIFLAGS="-Zmiri-strict-provenance -Zmiri-disable-isolation" \
        timeout 1500 cargo +nightly miri test --locked -p watchq-core \
        --test pipe_ring --test mmap_ring -- --skip two_processes
else
    step "SKIPPED: Miri: $miri_why"
fi

# ThreadSanitizer over the multi-threaded tests: core's threaded ring and
# wait-queue tests, the stress tests and the policy swap under posting.
# Unlike AddressSanitizer, ThreadSanitizer needs the standard library
# instrumented too (its locks, thread joins and channels are what order
# the tests' threads; an uninstrumented std gives false reports, and
# rustc refuses to mix the two without an override), so the std is
# rebuilt with the flag (-Zbuild-std, which needs nightly's rust-src); a
# machine without it skips the step and says so. Own target dir: every
# crate's build changes. Cold, 22 min of wall time at nice 19 on the 2
# cores shared with other builds, 10 min of CPU (the tests 7.5 s of it),
# so a few minutes on an idle 2-core machine (2026-12-02).
if [[ -z $tsan_why ]]; then
    step "ThreadSanitizer: threaded core tests, stress, policy swap"
    RUSTFLAGS="-Zsanitizer=thread" TSAN_OPTIONS="halt_on_error=1" \
        timeout 1500 cargo +nightly test -Zbuild-std --locked \
        --target "$(rustc -vV | sed -n "s/^host: //p")" --target-dir target/tsan \
        -p watchq-core --lib -p watchq-tests --test stress --test policy
else
    step "SKIPPED: ThreadSanitizer: $tsan_why"
fi

# loom models: every interleaving of the lock-free paths, bounded so a
# 3-thread model finishes in seconds (see STYLE.md): 15 s of model time,
# 100 s with core's rebuild, at bound 3 on the 2 cores at load 18
# (2026-12-01; a cold loom target adds 2 min; deeper bounds
# and each model's interleavings: scripts/loom-times.sh, every ordering
# weakened: scripts/loom-weaken.py). Own target dir: the cfg changes every
# crate's build.
step "loom models (LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:=3})"
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS="$LOOM_MAX_PREEMPTIONS" \
    cargo test -p watchq-core --lib --release --locked --target-dir target/loom -- loom_

# Every ordering stronger than Relaxed in the lock-free code, weakened one
# at a time: each must fail a loom model (no NOT CAUGHT but the ones
# scripts/loom-known-uncaught.txt lists with their reasons; the table in
# docs/verification.md is this script's). Reuses the loom step's target
# (only core rebuilds): 77 s on the 2 loaded cores (2026-12-01).
step "loom: every ordering weakened is caught (scripts/loom-weaken.py)"
python3 scripts/loom-weaken.py --no-docs --bound "$LOOM_MAX_PREEMPTIONS" --target-dir target/loom \
    --known scripts/loom-known-uncaught.txt

# Benchmarks are measured with `cargo bench`; here they only have to build
# and run once.
step "benchmarks build and run once"
cargo bench -p watchq-benches --locked --no-run
# Once built, every benchmark runs once in seconds; a workload that waits
# forever must fail the run, not eat the CI budget.
timeout 600 cargo bench -p watchq-benches --locked -- --test

step "demo"
cargo run -q -p watchq --locked -- demo > /dev/null
cargo run -q -p watchq --locked -- run --quiet examples/keys.scenario

# What STYLE.md promises: on a fresh clone with nothing beside it (no
# ../shared, no target directory), `cargo test --workspace` alone builds
# what the tests run and passes. When this run began on a clean checkout
# of HEAD with no target directory (CI), the tests step above was that
# run: nothing had been built but clippy's and rustdoc's metadata, which
# builds no program a test runs. What it had that a fresh clone lacks is
# ../shared beside it, so no test source may name a path out there.
# Otherwise (a developer's tree, with its target/ and its edits) the
# committed HEAD is cloned and tested cold.
outside=$(git grep -n -e '\.\./shared' -e '/work/shared' -e 'shared/oracle' -- '*.rs' '*.c' '*.h' '*.scenario' ':!fuzz/' || true)
if [[ -n $outside ]]; then
    echo "error: test or library sources name a path beside the checkout (a fresh clone has none):" >&2
    echo "$outside" >&2
    exit 1
fi
if [[ -n $pristine && $(git rev-parse HEAD) == "$pristine" &&
    -z $(git status --porcelain --untracked-files=no) ]]; then
    step "a fresh clone of HEAD, nothing beside it: the tests step above was one (this run began on a clean checkout of ${pristine:0:12} with no target directory, and no source names ../shared)"
else
    step "a fresh clone of HEAD, nothing beside it: cargo test --workspace --locked alone"
    [[ -z $(git status --porcelain --untracked-files=no) ]] ||
        echo "note: uncommitted changes are not in the clone"
    fresh=$(mktemp -d "${TMPDIR:-/tmp}/watchq-fresh.XXXXXX")
    trap 'rm -rf "$fresh"' EXIT
    git clone --quiet . "$fresh/watchq"
    git -C "$fresh/watchq" checkout --quiet --detach "$(git rev-parse HEAD)"
    started=$SECONDS
    (cd "$fresh/watchq" &&
        env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET_DIR cargo test --workspace --locked)
    echo "fresh clone: built and tested in $((SECONDS - started)) s"
    rm -rf "$fresh"
fi

printf '\nall checks passed in %d:%02d\n' $((SECONDS / 60)) $((SECONDS % 60))
