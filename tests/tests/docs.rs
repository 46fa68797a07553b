//! Every example in the README and in docs/ runs: `scenario` blocks
//! through `watchq run` (each must hold its expect lines), and the
//! `watchq` commands of `sh` blocks with the built binary, each of which
//! must exit 0 (or the status its comment names: `# … exit 124`). The
//! `rust` blocks are doctests (emu-dev/cli/src/lib.rs includes the files).
//!
//! Not run here, by design: `./scripts/test.sh` (it is what runs this
//! test), `scripts/fuzz.sh` (nightly and minutes per target), and `cargo
//! bench`/`cargo test` lines (CI runs both itself). `cargo build` is a
//! no-op here (`programs::watchq` has built the binary), and `cargo run
//! -p watchq -- ARGS` is `watchq ARGS` (`bench` with `--quick`).

use std::path::PathBuf;
use std::process::Command;
use watchq_tests::programs::{
    bash, bash_within, files, repo, require, target_dir, text, watchq, with_stdin,
};

/// The fenced blocks of `md` in `lang`: (line of the first content line, text).
fn blocks(md: &str, lang: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, l) in md.lines().enumerate() {
        match (&mut cur, l.trim_end()) {
            (None, f) if f == format!("```{lang}") => cur = Some((i + 2, String::new())),
            (Some(_), "```") => out.push(cur.take().unwrap()),
            (Some((_, body)), _) => {
                body.push_str(l);
                body.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// The README and every document in docs/.
fn documents() -> Vec<PathBuf> {
    let mut v = files("docs", "md");
    v.insert(0, repo("README.md"));
    v
}

/// Every `lang` block of the documents: (document, first line, text).
fn doc_blocks(lang: &str) -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    for doc in documents() {
        let md = std::fs::read_to_string(&doc).unwrap();
        let name = doc.file_name().unwrap().to_string_lossy().into_owned();
        for (line, body) in blocks(&md, lang) {
            out.push((name.clone(), line, body));
        }
    }
    out
}

/// A fresh scratch directory under the target directory that sees the
/// repository's examples.
fn scratch(name: &str) -> PathBuf {
    let tmp = target_dir().join(name);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    std::os::unix::fs::symlink(repo("examples"), tmp.join("examples")).unwrap();
    tmp
}

#[test]
fn every_scenario_block_in_the_docs_holds() {
    let blocks = doc_blocks("scenario");
    assert!(!blocks.is_empty(), "no scenario blocks found");
    for (doc, line, body) in blocks {
        let o = with_stdin(
            Command::new(watchq())
                .args(["run", "-"])
                .current_dir(repo(".")),
            &body,
        );
        assert!(o.status.success(), "{doc}:{line}: {}", text(&o.stderr));
    }
}

/// Does this line run something we check, and with what status?
fn checked(line: &str) -> Option<i32> {
    let (cmd, comment) = match line.split_once(" #") {
        Some((c, k)) => (c, k),
        None => (line, ""),
    };
    if !(cmd.contains("watchq ") || cmd.contains("cargo run")) {
        return None;
    }
    let want = comment
        .split("exit ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Some(want)
}

fn skipped(line: &str) -> bool {
    let l = line.trim_start();
    l.starts_with("./scripts/test.sh")
        || l.starts_with("scripts/fuzz.sh")
        || l.starts_with("cargo bench")
        || l.starts_with("cargo test")
        || l.starts_with("cargo install")
}

#[test]
fn every_watchq_command_of_the_docs_runs() {
    // The blocks compile the example consumers and run Debian's keyctl.
    require("cc");
    require("keyctl");
    // The commands run in a scratch directory that sees the repository's
    // examples and the built binaries where the docs say they are.
    let tmp = scratch("doc-commands");
    std::fs::create_dir_all(tmp.join("target")).unwrap();
    std::os::unix::fs::symlink(target_dir(), tmp.join("target/debug")).unwrap();
    let prelude = format!(
        r#"W={w}
watchq() {{ "$W" "$@"; }}
cargo() {{
  case "$1" in
    run) while [ "$#" -gt 0 ] && [ "$1" != -- ]; do shift; done; shift
         if [ "$1" = bench ]; then "$W" "$@" --quick; else "$W" "$@"; fi ;;
    *) return 0 ;;
  esac
}}
"#,
        w = watchq().display()
    );
    let mut checked_lines = 0;
    for (doc, first, body) in doc_blocks("sh") {
        let mut script = prelude.clone();
        for (i, l) in body.lines().enumerate() {
            if l.trim().is_empty() || l.trim_start().starts_with('#') || skipped(l) {
                continue;
            }
            let at = format!("{doc}:{}", first + i);
            script.push_str(l);
            script.push('\n');
            if let Some(want) = checked(l) {
                checked_lines += 1;
                script.push_str(&format!(
                    "st=$?; [ $st -eq {want} ] || {{ echo \"{at}: exit $st, not {want}\" >&2; exit 1; }}\n"
                ));
            }
        }
        let o = bash(&script, &tmp);
        assert!(
            o.status.success(),
            "{doc}:{first}: {}\n{}",
            text(&o.stderr),
            text(&o.stdout)
        );
    }
    assert!(checked_lines >= 10, "only {checked_lines} commands found");
}

/// Every command's `--help` has examples and exit statuses, and every
/// example runs (exit 0) in a directory that sees the examples.
#[test]
fn every_help_example_runs() {
    let tmp = scratch("help-examples");
    let mut ran = 0;
    for cmd in ["demo", "run", "monitor", "bench", "exec"] {
        let help = text(
            &Command::new(watchq())
                .args([cmd, "--help"])
                .output()
                .unwrap()
                .stdout,
        );
        assert!(
            help.contains("Exit status"),
            "{cmd} --help: no exit statuses"
        );
        let examples: Vec<&str> = help
            .split("Examples:")
            .nth(1)
            .unwrap_or_else(|| panic!("{cmd} --help: no examples"))
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .map(str::trim)
            .collect();
        assert!(!examples.is_empty(), "{cmd} --help: no examples");
        for ex in examples {
            let script = format!("watchq() {{ \"{}\" \"$@\"; }}\n{ex}\n", watchq().display());
            // A benchmark of a debug build takes a minute on an idle
            // machine and several under CI's load: the bound is for a hang.
            let secs = if cmd == "bench" { 900 } else { 120 };
            let o = bash_within(secs, &script, &tmp);
            assert!(
                o.status.success(),
                "{cmd} --help example `{ex}` ({:?}): {}",
                o.status,
                text(&o.stderr)
            );
            ran += 1;
        }
    }
    assert!(ran >= 12);
}

/// The policy files shown in the docs load.
#[test]
fn every_policy_block_in_the_docs_loads() {
    let blocks = doc_blocks("policy");
    assert!(!blocks.is_empty());
    for (doc, line, body) in blocks {
        if let Err(e) = watchq_core::lsm::parse_policy(&body) {
            panic!("{doc}:{}: {}", line + e.line - 1, e.msg);
        }
    }
}

/// Every test conformance.md names exists: a row's `file.rs: name`, and
/// the bare names after it up to a `;` (`bug04_…` is a prefix).
#[test]
fn every_test_conformance_md_names_exists() {
    let md = std::fs::read_to_string(repo("docs/conformance.md")).unwrap();
    let mut checked = 0;
    for (i, line) in md.lines().enumerate() {
        let mut file: Option<String> = None;
        for (k, span) in line.split('`').enumerate() {
            if k % 2 == 0 {
                // Outside backticks: a `;` ends a file's list of names.
                if span.contains(';') {
                    file = None;
                }
                continue;
            }
            let name = match span.split_once(".rs: ") {
                Some((f, n)) if f.chars().all(|c| c.is_ascii_lowercase() || c == '_') => {
                    file = Some(format!("{f}.rs"));
                    n
                }
                _ => span,
            };
            let is_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '…');
            let (Some(f), true) = (&file, is_name) else {
                continue;
            };
            if f == "file.rs" {
                continue; // the page's own explanation of the notation
            }
            // The suite's files, or core's own (the rings' proptests).
            let src = std::fs::read_to_string(repo(&format!("tests/tests/{f}")))
                .or_else(|_| std::fs::read_to_string(repo(&format!("core/tests/{f}"))))
                .unwrap_or_else(|e| panic!("conformance.md:{}: {f}: {e}", i + 1));
            let found = match name.strip_suffix('…') {
                Some(prefix) => src.contains(&format!("fn {prefix}")),
                None => {
                    src.contains(&format!("fn {name}(")) || src.contains(&format!("fn {name} ("))
                }
            };
            assert!(found, "conformance.md:{}: {f} has no test {name}", i + 1);
            checked += 1;
        }
    }
    assert!(checked >= 80, "only {checked} test names checked");
}
