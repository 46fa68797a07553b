#!/usr/bin/env bash
# The real kernel's own probe under `watchq exec`: it must print what it
# printed on Linux 6.12.117 (tests/data/oracle/golden-normalized.txt), every
# scenario but F (request_key construction needs the probe to be PID 1).
#
# The probe (wqtest.c) and its normaliser (normalize.py) are the shared
# oracle's code, not this project's, so they are used where they are
# (ORACLE, default ../shared/oracle) and this comparison lives here rather
# than in `cargo test`. A later issue replaces the shared probe with the
# project's own; its comparison can then move into tests/tests/preload.rs.
# scripts/test.sh runs this when the oracle is there (always under CI).
#
# Needs the Rust toolchain, gcc and python3 (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

oracle=${ORACLE:-../shared/oracle}
for f in wqtest.c normalize.py golden-normalized.txt; do
    [[ -f $oracle/$f ]] || { echo "oracle-conformance: $oracle/$f missing (set ORACLE to the oracle's directory)" >&2; exit 1; }
done
command -v gcc >/dev/null || { echo "oracle-conformance: gcc missing (install gcc)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "oracle-conformance: python3 missing (install python3)" >&2; exit 1; }

golden=tests/data/oracle/golden-normalized.txt
cmp -s "$golden" "$oracle/golden-normalized.txt" || {
    echo "oracle-conformance: $golden differs from $oracle/golden-normalized.txt:" \
        "the oracle was re-recorded; copy its output (tests/data/oracle/README.md)" >&2
    exit 1
}

cargo build -q --locked -p watchq -p watchq-preload
work=target/oracle-conformance
mkdir -p "$work"
gcc -O1 -Wall -o "$work/wqtest" "$oracle/wqtest.c"
# The probe ran on the real kernel with gc_delay = 1 s, which it set itself
# as PID 1 by writing /proc/sys/kernel/keys/gc_delay. Here the same write is
# made inside the tree, to the emulated kernel's sysctl; the machine's own
# value must not move. Bounded: a probe waiting for an event that never
# comes must fail the run, not hang it.
host_gc=$(cat /proc/sys/kernel/keys/gc_delay 2>/dev/null || echo none)
timeout 120 target/debug/watchq exec -- sh -c 'echo 1 > /proc/sys/kernel/keys/gc_delay && exec "$0"' \
    "$work/wqtest" > "$work/wqtest.out"
if [[ $(cat /proc/sys/kernel/keys/gc_delay 2>/dev/null || echo none) != "$host_gc" ]]; then
    echo "oracle-conformance: the machine's gc_delay changed (was $host_gc)" >&2
    exit 1
fi
python3 "$oracle/normalize.py" "$work/wqtest.out" > "$work/watchq.txt"

# Both sides without scenario F and without trailing blank lines.
trim() { sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'; }
sed '/^=== BEGIN F /,$d' "$golden" | trim > "$work/kernel.txt"
trim < "$work/watchq.txt" > "$work/watchq-trimmed.txt"
if ! diff -u --label "Linux 6.12.117" --label "watchq exec" "$work/kernel.txt" "$work/watchq-trimmed.txt"; then
    echo "oracle-conformance: the probe's output under watchq exec differs from the real kernel's (above)" >&2
    exit 1
fi
echo "oracle-conformance: $(grep -c '^=== BEGIN ' "$work/kernel.txt") scenarios print what Linux 6.12.117 printed"
