#!/usr/bin/env bash
# Mutation testing of the rules (cargo-mutants): every mutant of core's
# record, filter, watch, queue and post modules and of the keys source
# (sources/src/keys) is either caught by a test or explained in
# docs/verification.md as equivalent. Not in CI: it rebuilds and tests the
# tree once per mutant (hours on 2 cores for all of them).
#
#   scripts/mutants.sh [GROUP...]     groups: wire post keys (default: all)
#
# Each group mutates its files and runs the tests that judge them:
#   wire  core/src/record.rs, core/src/filter.rs   core's unit tests
#   post  core/src/{watch,queue,post}.rs           core's unit tests and the
#         post-path files of tests/ (model, queue rules, kernel bugs, stress,
#         pipe syscalls, policy: the watches' verdict cache)
#   keys  sources/src/keys/*.rs                    the sources' unit tests and
#         the keys files of tests/ (keys, oracle traces, the corpus replay)
# Results land in target/mutants/GROUP/mutants.out (caught.txt,
# missed.txt, timeout.txt, unviable.txt); the summary line per group is
# printed at the end. JOBS (default 1) runs that many mutants at once;
# MUTANTS_ARGS adds cargo-mutants options (e.g. `--shard 1/4`, `--iterate`
# to skip what an earlier run caught).
#
# KEYS_STAGE=1 judges the keys group with its in-process tests alone
# (the sources' unit tests, keys, oracle_keys: a few seconds a mutant),
# leaving out the corpus replay, whose `watchq exec` probes are most of a
# mutant's test time; KEYS_STAGE=2 then reruns only what stage 1 did not
# catch with all four judges: it needs stage 1's target/mutants/keys and
# adds `--iterate` (cargo-mutants skips what that output lists as caught
# or unviable; stage 1's timeouts are judged again). Unset: all four judges at once, as before.
set -euo pipefail
cd "$(dirname "$0")/.."

version=27.1.0
if ! cargo mutants --version 2>/dev/null | grep -qF "$version"; then
    echo "== installing cargo-mutants $version from crates.io"
    cargo install --locked cargo-mutants --version "$version"
fi

groups=("$@")
((${#groups[@]})) || groups=(wire post keys)

# No debug info: each mutant relinks every test binary of its group, and
# debug info is most of the link's time and of the build dirs' size.
export CARGO_PROFILE_DEV_DEBUG=0 CARGO_PROFILE_TEST_DEBUG=0

run() {
    local group=$1
    shift
    echo "== mutants: $group"
    mkdir -p "target/mutants/$group"
    # Exit status 2 means mutants were missed, 3 timeouts: both are
    # results, reported below, not failures of the script.
    # shellcheck disable=SC2086
    cargo mutants --no-shuffle -j "${JOBS:-1}" -o "target/mutants/$group" ${MUTANTS_ARGS:-} "$@" ||
        { rc=$?; ((rc == 2 || rc == 3)) || exit "$rc"; }
}

# The groups whose tests live in another package than the mutated files
# skip cargo-mutants' baseline: 27.1.0 runs it on the mutated package
# alone with the other package's `--test` arguments, which cargo refuses
# (`no test target named post_model in watchq-core`), so no mutant would
# run. Without a baseline the test timeout is fixed: MUTANT_TIMEOUT
# seconds (default 30: the post group's tests pass in 2.4 s on the
# unmutated tree; a mutant that breaks posting often hangs a waiting test,
# kernel_bugs' bug13/bug14, so a long timeout is most of a run's time).
# Both groups name their test targets with --cargo-arg, so the build of
# each mutant links its judges' test binaries (post 6, keys 4), not all
# 38 of watchq-tests (--cargo-test-arg reaches only the test run); the
# keys group's corpus replay runs
# `watchq exec`, which rebuilds the binaries inside the test's time:
# MUTANT_TIMEOUT=90 for it on a loaded machine.
no_baseline=(--baseline=skip --timeout "${MUTANT_TIMEOUT:-30}")

for g in "${groups[@]}"; do
    case $g in
        wire)
            run wire -f core/src/record.rs -f core/src/filter.rs \
                --test-package watchq-core ;;
        post)
            # -E: the unit tests' own helper functions (`tests::...`,
            # called by a #[test]) are test code, not the rules.
            run post "${no_baseline[@]}" -f core/src/watch.rs -f core/src/queue.rs -f core/src/post.rs \
                -E ' tests::' \
                --test-package watchq-core --test-package watchq-tests \
                --cargo-arg=--lib --cargo-arg=--test=post_model \
                --cargo-arg=--test=queue_rules --cargo-arg=--test=kernel_bugs \
                --cargo-arg=--test=stress --cargo-arg=--test=pipe_syscalls \
                --cargo-arg=--test=policy ;;
        keys)
            judges=(--cargo-arg=--lib --cargo-arg=--test=keys --cargo-arg=--test=oracle_keys)
            case ${KEYS_STAGE:-} in
                1) ;;
                2) judges+=(--cargo-arg=--test=conformance_corpus --iterate) ;;
                '') judges+=(--cargo-arg=--test=conformance_corpus) ;;
                *) echo "KEYS_STAGE is 1 or 2" >&2; exit 2 ;;
            esac
            run keys "${no_baseline[@]}" -f 'sources/src/keys/*.rs' \
                --test-package watchq-sources --test-package watchq-tests "${judges[@]}" ;;
        *)
            echo "unknown group $g (wire, post, keys)" >&2
            exit 2 ;;
    esac
done

echo
echo "== summary (caught / missed / timeout / unviable)"
for g in "${groups[@]}"; do
    d=target/mutants/$g/mutants.out
    count() { [[ -f $d/$1.txt ]] && wc -l <"$d/$1.txt" || echo 0; }
    printf '%-5s %s / %s / %s / %s\n' "$g" "$(count caught)" "$(count missed)" "$(count timeout)" "$(count unviable)"
done
