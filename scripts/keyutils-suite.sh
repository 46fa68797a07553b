#!/usr/bin/env bash
# keyutils' own test suite, unmodified, on watchq: every tests/*/*/runtest.sh
# of Debian's keyutils source package runs under `watchq exec` (one kernel
# for the script and everything it starts; the suite's prepare step puts
# each script under `keyctl watch_session` when the kernel supports
# notifications, as watchq's does), graded as the real kernel's run was
# (tests/data/keyutils-6.12-results.txt): exit 0 and no "=== FAILED ===" in
# test.out is PASS, "SKIPPING" is SKIP, anything else FAIL.
#
# The upstream tarball of the source package is fetched at run time
# (apt-get source --download-only; a deb-src entry is
# derived from this machine's own apt sources when there is none) into
# target/keyutils-suite and never committed. Needs root for apt (the
# suite itself runs as the calling user) and Debian's keyutils (`keyctl`).
#
# Usage: scripts/keyutils-suite.sh [TEST_DIR...]
#   PER_TEST_S  per-script timeout (default 120, as the real kernel's run)
#   RESULTS     where the graded lines go (default target/keyutils-suite/results.txt)
#   GATE=1      run only the scripts that passed on the real kernel (what
#               CI gates on; features/limits, cut off at 120 s on both
#               kernels, is then not run)
# Exit status: 0 when every script that passed on the real kernel passes,
# but for the known differences (tests/data/keyutils-known-differences.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/target/keyutils-suite
mkdir -p "$work"
: "${PER_TEST_S:=120}"
: "${RESULTS:=$work/results.txt}"

step() { printf '\n== %s\n' "$*" >&2; }

need=()
command -v keyctl >/dev/null || need+=(keyutils)
if ((${#need[@]})); then
    step "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need[@]}" >/dev/null ||
        { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }
fi

# The upstream tarball's tests, as the real kernel's run used them: Debian's
# patches to the tests (Tests-for-KEYCTL_MOVE-require-kernel-5.3-or-above)
# gate keyctl/move/* on `have_move_keys`, which `keyctl supports` (the path
# prepare.inc.sh takes when KEYCTL_CAPABILITIES works, on 6.12 as here)
# never sets, so the patched scripts skip on any kernel.
orig=$(find "$work" -maxdepth 1 -name 'keyutils_*.orig.tar.*' | sort | tail -1)
if [[ -z $orig ]]; then
    if ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        step "adding deb-src entries derived from this machine's apt sources"
        for f in /etc/apt/sources.list.d/*.sources; do
            [[ -f $f ]] || continue
            sed 's/^Types:.*/Types: deb-src/' "$f" > "/etc/apt/sources.list.d/watchq-src-$(basename "$f")"
        done
        if [[ -f /etc/apt/sources.list ]]; then
            sed -n 's/^deb /deb-src /p' /etc/apt/sources.list > /etc/apt/sources.list.d/watchq-src.list
        fi
    fi
    step "apt-get source keyutils"
    apt-get update -q >/dev/null
    (cd "$work" && apt-get source -q --download-only keyutils >/dev/null)
    orig=$(find "$work" -maxdepth 1 -name 'keyutils_*.orig.tar.*' | sort | tail -1)
fi
[[ -n $orig ]] || { echo "no keyutils orig tarball in $work" >&2; exit 2; }
src=$work/upstream/$(basename "$orig" | sed 's/_/-/;s/\.orig\.tar\..*//')
if [[ ! -d $src/tests ]]; then
    rm -rf "$work/upstream" && mkdir -p "$work/upstream"
    tar -C "$work/upstream" -xf "$orig"
fi
tests=$src/tests
[[ -d $tests ]] || { echo "no tests/ in $src" >&2; exit 2; }

step "building watchq"
cargo build -q -p watchq -p watchq-preload
watchq=$root/target/debug/watchq

cd "$tests"
if (($#)); then list="$*"; else
    list=$(find . -mindepth 2 -name runtest.sh | sed 's,/runtest.sh,,;s,^\./,,' | sort)
fi
if [[ ${GATE:-0} == 1 ]]; then
    list=$(for d in $list; do
        awk -v d="$d" '$1 == "PASS" && $2 == d { print d }' "$root/tests/data/keyutils-6.12-results.txt"
    done)
fi
: > "$RESULTS"
pass=0 fail=0 skip=0 t_all=$(date +%s)
for d in $list; do
    t0=$(date +%s)
    (cd "$d" && rm -f test.out watch.out gc.out &&
        timeout -k 5 "$PER_TEST_S" "$watchq" exec -- bash ./runtest.sh > run.log 2>&1) && rc=0 || rc=$?
    dt=$(($(date +%s) - t0))
    if ((rc == 0)) && ! grep -q '=== FAILED ===' "$d/test.out" 2>/dev/null; then
        if grep -q 'SKIPPING' "$d/test.out" "$d/run.log" 2>/dev/null; then
            grade=SKIP skip=$((skip + 1))
        else
            grade=PASS pass=$((pass + 1))
        fi
    else
        grade=FAIL fail=$((fail + 1))
    fi
    echo "$grade $d" >> "$RESULTS"
    printf '%s %s [%ss]\n' "$grade" "$d" "$dt" >&2
    if [[ $grade == FAIL ]]; then
        grep -m1 -B3 '=== FAILED ===' "$d/test.out" 2>/dev/null | sed 's/^/  | /' >&2 || true
        # The exit status and what the script and its watcher said, so a
        # failure in CI can be read without its checkout.
        echo "  | exit status $rc; run.log ends:" >&2
        tail -n 8 "$d/run.log" 2>/dev/null | sed 's/^/  | /' >&2 || true
    fi
done
echo "keyutils suite under watchq exec: $pass passed, $fail failed, $skip skipped [$(($(date +%s) - t_all))s]" >&2

# Against the real kernel's run: a script that passed there must pass here,
# but for the known differences (tests/data/keyutils-known-differences.txt,
# each explained in docs/conformance.md), which must still differ.
known=$root/tests/data/keyutils-known-differences.txt
regressions=0 differ=0
while read -r grade d; do
    real=$(awk -v d="$d" '$2 == d { print $1 }' "$root/tests/data/keyutils-6.12-results.txt")
    listed=$(grep -cx -- "$d" "$known" || true)
    if [[ $real == PASS && $grade != PASS ]]; then
        differ=$((differ + 1))
        if ((listed)); then
            echo "known difference: $d ($grade here, PASS there)" >&2
        else
            echo "differs from the real kernel: $d ($grade here, PASS there)" >&2
            regressions=$((regressions + 1))
        fi
    elif ((listed)) && [[ $grade == PASS ]]; then
        echo "passes now, take it off $known: $d" >&2
        regressions=$((regressions + 1))
    fi
done < "$RESULTS"
echo "$differ script(s) that pass on the real kernel do not pass here (docs/conformance.md lists why); $regressions unexpected" >&2
((regressions == 0))
