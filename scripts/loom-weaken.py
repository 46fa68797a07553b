#!/usr/bin/env python3
"""Weakens each memory ordering stronger than Relaxed in core's lock-free
code, one at a time, and runs the loom models against the weakened build.

An ordering no model notices is either unnecessary or not covered by a
model; docs/verification.md records the table this prints. The source is
restored after every run (also on Ctrl-C).

Usage: scripts/loom-weaken.py [PREEMPTIONS] [FILE...]
"""
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = ["core/src/ring/pipe.rs", "core/src/ring/mmap.rs", "core/src/wait.rs",
         "core/src/seqlock.rs"]
STRONG = re.compile(r"Ordering::(Release|Acquire|AcqRel|SeqCst)\b")


def run_models(bound):
    env = dict(os.environ, RUSTFLAGS="--cfg loom", LOOM_MAX_PREEMPTIONS=str(bound),
               RUST_BACKTRACE="0")
    p = subprocess.run(
        ["cargo", "test", "-q", "-p", "watchq-core", "--lib", "--release",
         "--target-dir", "target/loom", "--", "loom_"],
        cwd=ROOT, env=env, capture_output=True, text=True)
    out = p.stdout + p.stderr
    if "error[" in out or "could not compile" in out:
        return None
    failed = re.findall(r"^    (\S*loom_\S+)$", out, re.M)
    return sorted({f.rsplit("::", 1)[-1] for f in failed})


def main():
    bound = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    files = sys.argv[2:] or FILES
    base = run_models(bound)
    if base != []:
        sys.exit(f"the unweakened models do not all pass: {base}")
    for rel in files:
        path = os.path.join(ROOT, rel)
        original = open(path).read()
        lines = original.split("\n")
        try:
            for i, line in enumerate(lines):
                if line.lstrip().startswith("//"):
                    continue
                for m in STRONG.finditer(line):
                    weak = lines.copy()
                    weak[i] = line[:m.start()] + "Ordering::Relaxed" + line[m.end():]
                    open(path, "w").write("\n".join(weak))
                    t = time.time()
                    failed = run_models(bound)
                    took = time.time() - t
                    what = ("does not compile" if failed is None
                            else ", ".join(failed) or "NOT CAUGHT")
                    print(f"| {rel}:{i + 1} | {m.group(1)} | {what} | {took:.0f} s |",
                          flush=True)
        finally:
            open(path, "w").write(original)


if __name__ == "__main__":
    main()
