#!/usr/bin/env bash
# The costs of one kernel for a process tree, each a ratio against its peer
# in the same run (benches/c/tree.c; docs/performance.md has the figures):
# a read of a pending record vs a real pipe's read, a key call vs the real
# kernel's keyctl(KEYCTL_GET_KEYRING_ID), an ordinary pipe's read+write
# through the preload vs straight into libc, and a cross-process wake-up vs
# a real pipe's; beside them, measured in the same rounds, the physical
# floor any design with a kernel process meets on this machine (a bare
# unix-socket round trip with SCM_CREDENTIALS, a futex ping-pong, a
# wake-up relayed through a third process), and a key call with 100 more
# pipes open against one without; then the scale run (32 processes x 2000
# key updates, 4 watchers). Release build; about 15 s once built.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p watchq -p watchq-preload
mkdir -p target/release/c-bench
gcc -O2 -Wall -o target/release/c-bench/tree benches/c/tree.c -ldl
target/release/watchq exec -- target/release/c-bench/tree
# The scale run: 32 processes x 2000 key updates, 4 watchers.
WATCHQ_SCALE_OPS=2000 cargo test -q --release -p watchq-tests --test server \
    server_scale_many_processes_churning_keys -- --nocapture 2>&1 | grep '^scale:'

