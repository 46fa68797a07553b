//! The crate graph stays the architecture's: dependencies point one way
//! (the `watchq` command → the kernel → the sources → core), the command
//! is the only crate with clap, the peers of the benchmarks are reached
//! only from the benchmark crates, the preload links the kernel alone and
//! the consumer API builds without the emulator.
//!
//! Read from `cargo tree` (the lock file, no network), as a reader checks.

use std::collections::BTreeSet;
use std::process::Command;

/// The packages `cargo tree -p PKG -e normal` lists (PKG included), to
/// `depth` levels (None: all).
fn normal_deps(pkg: &str, depth: Option<u32>) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "tree",
        "--locked",
        "--offline",
        "-e",
        "normal",
        "--prefix",
        "none",
    ])
    .args(["-p", pkg])
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    if let Some(d) = depth {
        cmd.arg("--depth").arg(d.to_string());
    }
    let out = cmd.output().expect("cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {pkg}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The crates of the command line and of the benchmarks' peers.
const TOOLS: &[&str] = &["clap", "rtrb", "crossbeam-queue", "criterion"];

fn assert_none_of(pkg: &str, deps: &BTreeSet<String>, banned: &[&str]) {
    let found: Vec<_> = banned.iter().filter(|b| deps.contains(**b)).collect();
    assert!(found.is_empty(), "{pkg} links {found:?}: {deps:?}");
}

#[test]
fn dependencies_preload_links_the_kernel_alone() {
    let deps = normal_deps("watchq-preload", None);
    assert!(deps.contains("watchq-kernel"), "{deps:?}");
    assert_none_of("watchq-preload", &deps, TOOLS);
    assert_none_of(
        "watchq-preload",
        &deps,
        &["watchq", "watchq-client", "watchq-bench"],
    );
}

#[test]
fn dependencies_client_builds_without_the_emulator() {
    let deps = normal_deps("watchq-client", None);
    let allowed: BTreeSet<String> = ["watchq-client", "watchq-core", "libc"]
        .map(String::from)
        .into();
    assert_eq!(deps, allowed, "the client's default build");
    // The machinery's own dependencies are absent too: core is built as
    // the wire layer alone.
    assert_none_of(
        "watchq-client",
        &deps,
        &["memmap2", "arc-swap", "parking_lot", "crossbeam-utils"],
    );
}

#[test]
fn dependencies_only_the_command_has_clap() {
    for pkg in [
        "watchq-core",
        "watchq-sources",
        "watchq-kernel",
        "watchq-client",
        "watchq-bench",
        "watchq-preload",
    ] {
        let deps = normal_deps(pkg, None);
        assert!(!deps.contains("clap"), "{pkg} links clap");
    }
    assert!(normal_deps("watchq", Some(1)).contains("clap"));
}

#[test]
fn dependencies_peers_only_in_the_benchmark_crates() {
    for pkg in [
        "watchq-core",
        "watchq-sources",
        "watchq-kernel",
        "watchq-client",
    ] {
        assert_none_of(pkg, &normal_deps(pkg, None), TOOLS);
    }
    let bench = normal_deps("watchq-bench", Some(1));
    assert!(bench.contains("rtrb") && bench.contains("crossbeam-queue"));
}

/// Each workspace crate names only crates below it: core ← sources ←
/// kernel ← {client, bench, preload} ← the command.
#[test]
fn dependencies_point_one_way() {
    let layers: &[(&str, &[&str])] = &[
        ("watchq-core", &[]),
        ("watchq-sources", &["watchq-core"]),
        ("watchq-kernel", &["watchq-core", "watchq-sources"]),
        ("watchq-client", &["watchq-core"]),
        (
            "watchq-bench",
            &["watchq-core", "watchq-sources", "watchq-kernel"],
        ),
        ("watchq-preload", &["watchq-core", "watchq-kernel"]),
        (
            "watchq",
            &[
                "watchq-core",
                "watchq-sources",
                "watchq-kernel",
                "watchq-client",
                "watchq-bench",
            ],
        ),
    ];
    for (pkg, below) in layers {
        let direct = normal_deps(pkg, Some(1));
        for d in direct
            .iter()
            .filter(|d| d.starts_with("watchq") && *d != pkg)
        {
            assert!(
                below.contains(&d.as_str()),
                "{pkg} depends on {d}, which is not below it"
            );
        }
    }
}
