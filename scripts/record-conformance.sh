#!/usr/bin/env bash
# Re-records the conformance corpus: the project's own probes
# (tests/conformance/probes/*.c) run on a real Linux kernel with
# CONFIG_WATCH_QUEUE and CONFIG_KEY_NOTIFICATIONS, their output written to
# tests/data/conformance/<probe>.txt with the kernel and the date it came
# from. tests/tests/conformance_corpus.rs compares watchq with those files.
#
# The kernel is the shared oracle's: ../shared/oracle/run-userland.sh
# (ORACLE to point elsewhere) builds Debian's linux-source-6.12 once
# (about 4 minutes on 2 cores, cached in WORK) and boots it under qemu with
# a real userland; the probes run there as root, in /extra, one after the
# other, with /proc/sys/kernel/keys/gc_delay set to GC_DELAY first. The
# guest is thrown away after the run: the probes' `--helper-conf` writes
# /etc/request-key.d/wqprobe.conf there, never on this machine.
#
# Needs root and apt (the harness installs qemu and the kernel's build
# tools), gcc. Knobs: ORACLE, WORK (default /tmp/wq-oracle-multi), JOBS
# (default 2), SKIP_APT=1, GC_DELAY (default 2), TRIALS (default 20),
# SMP (default 2), KEEP=dir (keep the full serial log there), PROBES (the
# probes to re-record, default all: surface procs keys gc queue types
# procfs walks dh asym enc waits).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
oracle=${ORACLE:-../shared/oracle}
harness=$oracle/run-userland.sh
[[ -x $harness ]] || { echo "record-conformance: $harness missing (set ORACLE)" >&2; exit 1; }
command -v gcc >/dev/null || { echo "record-conformance: gcc missing" >&2; exit 1; }
gc_delay=${GC_DELAY:-2}
trials=${TRIALS:-20}

tmp=$(mktemp -d /tmp/wq-conformance.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/extra" "$tmp/out"
for src in tests/conformance/probes/*.c; do
    gcc -O1 -Wall -Wextra -Werror -o "$tmp/extra/$(basename "$src" .c)" "$src"
done

# One boot runs every probe in PROBES; each one's output follows its
# `=== PROBE` line. surface runs before types: types' `system` section
# invalidates a system keyring that surface's `sysrings` looks at.
# The kernel's own messages (encrypted keys complain on the console) would
# land among the probes' lines: console loglevel 1 first (the guest's).
probes=${PROBES:-surface procs keys gc queue types procfs walks dh asym enc waits}
cmd="echo 1 > /proc/sys/kernel/printk"
for p in $probes; do
    case $p in
        keys) args="--gc-delay $gc_delay --helper-conf" ;;
        gc) args="--gc-delay $gc_delay --trials $trials" ;;
        types) args="--guest" ;;
        waits) args="--helper-conf" ;;
        procfs) args="--native-pipes" ;;
        queue | surface | procs | walks | dh | asym | enc) args="" ;;
        *) echo "record-conformance: no probe $p" >&2; exit 1 ;;
    esac
    cmd+="; echo '=== PROBE $p'; ./$p $args"
done

nice -n 19 env WORK="${WORK:-/tmp/wq-oracle-multi}" OUT="$tmp/out" LOG=serial.txt \
    JOBS="${JOBS:-2}" SMP="${SMP:-2}" ONLY=none GC_DELAY="$gc_delay" \
    EXTRA_DIR="$tmp/extra" EXTRA_CMD="$cmd" "$harness" >&2
log=$tmp/out/serial.txt
[[ -n ${KEEP:-} ]] && cp "$log" "$KEEP/"
grep -q '^(extra rc=0)$' "$log" || { echo "record-conformance: a probe failed (see the log)" >&2; exit 1; }

kernel=$(sed -n 's/^# kernel: \(.*\)/\1/p' "$log" | head -1)
uname=$(sed -n 's/^uname -a: //p' "$log" | head -1)
date=$(date -u +%Y-%m-%d)
mkdir -p tests/data/conformance
for p in $probes; do
    out=tests/data/conformance/$p.txt
    {
        echo "# recorded by scripts/record-conformance.sh on $date"
        echo "# kernel: $kernel"
        echo "# uname: $uname"
        echo "# qemu TCG, ${SMP:-2} vCPUs; root; gc_delay $gc_delay; probe tests/conformance/probes/$p.c"
        sed -n "/^=== PROBE $p\$/,/^=== DONE\$/p" "$log" | sed 1d
    } > "$out"
    grep -q '^=== DONE$' "$out" || { echo "record-conformance: $p did not finish" >&2; exit 1; }
    echo "record-conformance: $out ($(grep -c '^=== SECTION' "$out") sections)"
done
