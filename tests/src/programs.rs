//! Running watchq's own programs from tests: the `watchq` binary and the
//! preload library, built on first use ([`watchq()`]), C test programs
//! compiled on demand ([`cc`]), all under a time bound.
//!
//! # Building what the tests run
//!
//! `cargo test` builds test binaries and the libraries they link, not
//! another package's binary or a cdylib. So the first call of [`watchq()`]
//! or [`preload_lib`] in a test process runs `cargo build -p watchq -p
//! watchq-preload` itself, with the cargo, profile, target directory and
//! target triple that built the running test binary (read from its path,
//! `<target-dir>/[<triple>/]<profile-dir>/deps/`). It runs every time, not
//! only when the files are missing: when a test binary was rebuilt because
//! the sources changed, an existing `watchq` may be older than they are,
//! and cargo is the one that knows (a fresh build is a no-op of under a
//! second). A `std::sync::Once` makes it once per process, and cargo's own
//! lock on the target directory serialises test binaries that build at the
//! same time. Under `cargo test --release` the programs are built with
//! `--release` too; an AddressSanitizer run (scripts/test.sh) leaves out
//! the files that use this module.
//!
//! # Tools besides Rust
//!
//! Some tests run programs that are not Rust's: gcc compiles C consumers,
//! Debian's keyutils provides `keyctl`. scripts/test.sh installs them,
//! and so does a plain `cargo test` on a fresh machine: the first test
//! that needs a missing one installs its Debian package with apt-get
//! (as root, or through a `sudo` that asks for no password), as the
//! script would ([`require`]). Where that cannot be done the test fails
//! at once with a message naming the package. It does not skip: libtest
//! has no "skipped" outcome, and it captures what a passing test prints,
//! so a test that returned early with a warning would be reported as
//! `ok`, as if it had checked something. To run the rest without a tool,
//! leave its tests out by name (`cargo test -- --skip keyctl`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;

/// `target/[<triple>/]<profile-dir>`, from this test binary's
/// `target/[<triple>/]<profile-dir>/deps/`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// The `watchq` binary, built (or brought up to date) on first use.
pub fn watchq() -> PathBuf {
    build_programs();
    target_dir().join("watchq")
}

/// The preload library (`libwatchq_preload.so`), built with [`watchq()`].
pub fn preload_lib() -> PathBuf {
    build_programs();
    target_dir().join("libwatchq_preload.so")
}

/// Runs `cargo build -p watchq -p watchq-preload` once per test process,
/// for the profile, target directory and target of this test binary.
///
/// # Panics
/// When the build fails (with cargo's messages) or leaves either file
/// missing.
fn build_programs() {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let out_dir = target_dir();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let mut c = Command::new(cargo);
        c.arg("build")
            .arg("--quiet")
            .arg("--manifest-path")
            .arg(repo("Cargo.toml"))
            // Selecting the test crate too makes cargo resolve the features
            // the test binaries were built with, so the libraries they
            // share are reused instead of built a second time.
            .args(["-p", "watchq", "-p", "watchq-preload", "-p", "watchq-tests"]);
        // The profile: `cargo test` builds with `test` into `debug/`,
        // `cargo test --release` with `release`, `--profile NAME` into `NAME/`.
        let profile_dir = out_dir.file_name().unwrap().to_str().unwrap();
        let profile = match profile_dir {
            "debug" => "test",
            other => other,
        };
        c.args(["--profile", profile]);
        // The target directory is the one cargo keeps its rustc cache
        // (.rustc_info.json) and, when cargo created it, CACHEDIR.TAG in:
        // the profile directory's parent, or, under `--target TRIPLE`,
        // its grandparent. (A target/ first made as the parent of another
        // --target-dir has no tag, so the tag alone is not enough.)
        let parent = out_dir.parent().unwrap();
        if parent.join("CACHEDIR.TAG").is_file() || parent.join(".rustc_info.json").is_file() {
            c.arg("--target-dir").arg(parent);
        } else {
            let root = parent.parent().unwrap();
            c.arg("--target-dir").arg(root);
            c.arg("--target").arg(parent.file_name().unwrap());
        }
        let out = c.output().expect("running cargo");
        assert!(
            out.status.success(),
            "building the watchq binary and the preload library failed ({:?}):\n{}",
            c,
            text(&out.stderr)
        );
        for f in ["watchq", "libwatchq_preload.so"] {
            let p = out_dir.join(f);
            assert!(p.is_file(), "{} missing after {:?}", p.display(), c);
        }
    });
}

/// The path of `tool` on `PATH`, for a test that cannot check anything
/// without it (the module's rule: see "Tools besides Rust").
///
/// When it is not installed, its Debian package is, once per test
/// binary (`install`).
///
/// # Panics
/// When `tool` is not installed and its package could not be, naming the
/// package that provides it.
pub fn require(tool: &str) -> PathBuf {
    let package = match tool {
        "cc" | "gcc" => "gcc",
        "keyctl" => "keyutils",
        other => other,
    };
    let find = || {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    };
    find()
        .or_else(|| install(package).and_then(|()| find()))
        .unwrap_or_else(|| {
            panic!(
                "this test runs `{tool}`, which is not installed, and installing {package} \
                 with apt-get did not work here: install {package} (scripts/test.sh does), \
                 or leave the test out (`cargo test -- --skip NAME`)"
            )
        })
}

/// Installs Debian's `package` as scripts/test.sh does (`apt-get install`,
/// after an `apt-get update` if the first try fails), as root or through
/// `sudo -n`; `None` where neither works or apt-get fails. One test at a
/// time in a test binary, and once a package: the tests that need it wait
/// for the first one's install.
fn install(package: &str) -> Option<()> {
    static DONE: std::sync::Mutex<Vec<(String, bool)>> = std::sync::Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&(_, ok)) = done.iter().find(|(p, _)| p == package) {
        return ok.then_some(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let sudo = !root
        && Command::new("sudo")
            .args(["-n", "true"])
            .output()
            .is_ok_and(|o| o.status.success());
    let apt = |args: &[&str]| {
        let mut c = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        };
        // apt's own lock, held by another installer (another test
        // binary's), is waited for rather than failed on.
        c.args(["-q", "-o", "DPkg::Lock::Timeout=300"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive");
        c.output().is_ok_and(|o| o.status.success())
    };
    let ok = (root || sudo)
        && (apt(&["install", "-y", package])
            || (apt(&["update"]) && apt(&["install", "-y", package])));
    if ok {
        eprintln!("installed Debian's {package}: a test needs it");
    }
    done.push((package.to_string(), ok));
    ok.then_some(())
}

/// Compiles C `src` into the target directory (once per test binary run).
pub fn cc(src: &Path, name: &str) -> PathBuf {
    cc_with(src, name, &[])
}

/// [`cc`] with more gcc flags (`-static`: a program the preload is never
/// loaded into, since the dynamic loader does not run for it).
pub fn cc_with(src: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let out = target_dir().join("c-tests");
    std::fs::create_dir_all(&out).unwrap();
    let bin = out.join(name);
    let st = Command::new(require("gcc"))
        .args(flags)
        .args(["-O1", "-Wall", "-pthread", "-o"])
        .arg(&bin)
        .arg(src)
        .status()
        .expect("running gcc");
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
    exec_within("60", flags, program, args)
}

/// [`exec`], killed after `secs` seconds instead of a minute.
pub fn exec_within(secs: &str, flags: &[&str], program: &Path, args: &[&str]) -> Output {
    exec_wrapped(secs, &[], flags, program, args)
}

/// [`exec_within`], with `watchq` itself started by `wrapper` (a command
/// and its arguments, such as `setpriv --reuid 1000 --`).
pub fn exec_wrapped(
    secs: &str,
    wrapper: &[&str],
    flags: &[&str],
    program: &Path,
    args: &[&str],
) -> Output {
    Command::new("timeout")
        .arg(secs)
        .args(wrapper)
        .arg(watchq())
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
    bash_within(120, script, dir)
}

/// [`bash`] with a bound of `secs` seconds instead of two minutes.
pub fn bash_within(secs: u32, script: &str, dir: &Path) -> Output {
    Command::new("timeout")
        .args([&secs.to_string(), "bash", "-c", script])
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
