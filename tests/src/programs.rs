//! Running watchq's own programs from tests: the `watchq` binary and the
//! preload library cargo built beside the test binaries, C test programs
//! compiled on demand, all under a time bound.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `target/<profile>`, from this test binary's `target/<profile>/deps/`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// The `watchq` binary (asserting it and the preload library were built).
pub fn watchq() -> PathBuf {
    let w = target_dir().join("watchq");
    let lib = target_dir().join("libwatchq_preload.so");
    assert!(
        w.is_file() && lib.is_file(),
        "{} or {} missing: run `cargo build --workspace` first (scripts/test.sh does)",
        w.display(),
        lib.display()
    );
    w
}

/// Compiles C `src` into the target directory (once per test binary run).
pub fn cc(src: &Path, name: &str) -> PathBuf {
    let out = target_dir().join("c-tests");
    std::fs::create_dir_all(&out).unwrap();
    let bin = out.join(name);
    let st = Command::new("gcc")
        .args(["-O1", "-Wall", "-pthread", "-o"])
        .arg(&bin)
        .arg(src)
        .status()
        .expect("gcc (scripts/test.sh installs it)");
    assert!(st.success(), "gcc {}", src.display());
    bin
}

/// A path in the repository.
pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

/// `watchq exec FLAGS -- PROGRAM ARGS`, killed after a minute (coreutils'
/// `timeout`, status 124) so a program that waits for an event that never
/// comes fails the test instead of hanging it.
pub fn exec(flags: &[&str], program: &Path, args: &[&str]) -> Output {
    bounded()
        .arg("exec")
        .args(flags)
        .arg("--")
        .arg(program)
        .args(args)
        .output()
        .unwrap()
}

/// `timeout 60 watchq`: append the subcommand and its arguments.
pub fn bounded() -> Command {
    let mut c = Command::new("timeout");
    c.arg("60").arg(watchq());
    c
}

/// Bytes a program printed, as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `c` with `input` on its standard input; its output.
pub fn with_stdin(c: &mut Command, input: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `bash -c script` in `dir`, killed after two minutes.
pub fn bash(script: &str, dir: &Path) -> Output {
    Command::new("timeout")
        .args(["120", "bash", "-c", script])
        .current_dir(dir)
        .output()
        .unwrap()
}

/// The files of repository directory `dir` whose names end in `.ext`, sorted.
pub fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}
