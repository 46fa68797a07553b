//! Bad input at the front doors: the `watchq` command line, the key and
//! device scripts (`watchq monitor SCRIPT`, `watchq exec --script`,
//! `WATCHQ_SCRIPT`) and the preload library's environment settings. Each
//! row of docs/bad-input.md for these interfaces is a row of a table here;
//! the syscall-level rows point at the tests that hold them.
//!
//! What every row asserts: a message naming the bad input (and, for
//! scripts and policy files, its line), a documented exit status, nothing
//! done before the error (no output, the program's `main` never ran), and
//! never a panic.
//!
//! Runs the `watchq` binary and the preload library
//! (`watchq_tests::programs` builds them on first use).

use std::path::PathBuf;
use std::process::Output;
use watchq_kernel::script::parse_script;
use watchq_tests::programs::{bounded, preload_lib, target_dir, text, watchq, with_stdin};

/// A file under the target directory holding `body`.
fn file(name: &str, body: impl AsRef<[u8]>) -> PathBuf {
    let dir = target_dir().join("bad-input");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

/// `watchq ARGS` with `stdin` on its standard input and `env` set.
fn watchq_run(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    with_stdin(bounded().args(args).envs(env.iter().copied()), stdin)
}

/// Asserts `out` failed with `status`, said `needle` on stderr, printed
/// nothing on stdout and did not panic.
fn assert_refused(what: &str, out: &Output, status: i32, needle: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(status), "{what}: {err}");
    assert!(err.contains(needle), "{what}: {err:?} lacks {needle:?}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(out.stdout.is_empty(), "{what}: {}", text(&out.stdout));
}

/// The command line: clap's usage errors are status 2, as are a monitor's
/// refused settings (the errno of the syscall that refused them, by name);
/// a program that cannot be run is 127, as in a shell.
#[test]
fn cli_arguments() {
    let empty = file("empty.script", "");
    let empty = empty.to_str().unwrap();
    /// Arguments, environment, exit status, what stderr must say.
    type Row<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32, &'a str);
    let rows: &[Row] = &[
        (&[], &[], 2, "Usage: watchq <COMMAND>"),
        (&["bogus"], &[], 2, "unrecognized subcommand 'bogus'"),
        (&["demo", "extra"], &[], 2, "unexpected argument 'extra'"),
        (
            &["monitor", "--format", "xml", empty],
            &[],
            2,
            "invalid value 'xml'",
        ),
        (
            &["monitor", "--size", "-1", empty],
            &[],
            2,
            "unexpected argument '-1'",
        ),
        (
            &["monitor", "--size", "lots", empty],
            &[],
            2,
            "invalid value 'lots'",
        ),
        (
            &["monitor", "--size", "0", empty],
            &[],
            2,
            "IOC_WATCH_QUEUE_SET_SIZE: Invalid argument (EINVAL)",
        ),
        (
            &["monitor", "--size", "513", empty],
            &[],
            2,
            "IOC_WATCH_QUEUE_SET_SIZE: Invalid argument (EINVAL)",
        ),
        (
            &["monitor", "--filter", "ipx", empty],
            &[],
            2,
            "unknown filter letter 'x' (use iplncrvs)",
        ),
        (
            &["monitor", "--key", "12345", empty],
            &[],
            2,
            "KEYCTL_WATCH_KEY: Required key not available (ENOKEY)",
        ),
        (
            &["monitor", "/nonexistent/script"],
            &[],
            2,
            "/nonexistent/script: No such file or directory",
        ),
        (&["exec"], &[], 2, "required arguments were not provided"),
        (
            &["exec", "--gc-delay", "-5", "--", "true"],
            &[],
            2,
            "invalid value '-5'",
        ),
        (
            &["exec", "--request-key", "/nonexistent/helper", "--", "true"],
            &[],
            2,
            "--request-key /nonexistent/helper: not an executable file",
        ),
        (
            &["exec", "--request-key", "/etc/passwd", "--", "true"],
            &[],
            2,
            "--request-key /etc/passwd: not an executable file",
        ),
        (
            &["exec", "--", "/nonexistent/program"],
            &[],
            127,
            "/nonexistent/program: No such file or directory",
        ),
        (
            &["exec", "--", "true"],
            &[("WATCHQ_PRELOAD", "/nonexistent/libwatchq_preload.so")],
            127,
            "cannot find libwatchq_preload.so",
        ),
        (
            &["exec", "--", "true"],
            &[("WATCHQ_KERNEL", "/nonexistent/sock")],
            127,
            "cannot join the emulated kernel at /nonexistent/sock",
        ),
        (
            &["exec", "--join", "/nonexistent/sock", "--", "true"],
            &[],
            127,
            "cannot join the emulated kernel at /nonexistent/sock",
        ),
        (
            &[
                "exec",
                "--join",
                "/nonexistent/sock",
                "--gc-delay",
                "1",
                "--",
                "true",
            ],
            &[],
            2,
            "--join: the joined kernel's settings apply",
        ),
    ];
    for (args, env, status, needle) in rows {
        let out = watchq_run(args, env, "");
        assert_refused(&format!("watchq {args:?} {env:?}"), &out, *status, needle);
    }
}

/// One bad line per kind of mistake, with the message that names it.
const BAD_SCRIPT_LINES: &[(&str, &str)] = &[
    ("frobnicate @s", "unknown command \"frobnicate\""),
    (
        "add user a",
        "usage: add <type> <desc> <payload|-> [<ring>]",
    ),
    (
        "add user a x @s extra",
        "usage: add <type> <desc> <payload|-> [<ring>]",
    ),
    ("update a", "usage: update <key> <payload>"),
    ("link a", "usage: link <key> <ring>"),
    ("move a @s", "usage: move <key> <from> <to>"),
    ("setperm a rwx", "permission \"rwx\" is not hex"),
    ("setperm a 0x0x3f", "permission \"0x0x3f\" is not hex"),
    ("chown a root -1", "id \"root\" is not a number in range"),
    ("chown a -2 -1", "id \"-2\" is not a number in range"),
    (
        "timeout a soon",
        "timeout \"soon\" is not a number in range",
    ),
    ("watch @s one", "tag \"one\" is not a number in range"),
    ("watch @s 0x-1", "tag \"0x-1\" is not a number in range"),
    (
        "watch @s 99999999999",
        "tag \"99999999999\" is not a number in range",
    ),
    ("repeat 3", "usage: repeat <n> <command>"),
    (
        "repeat many update a x",
        "count \"many\" is not a number in range",
    ),
    ("repeat 2 frobnicate", "unknown command \"frobnicate\""),
    ("sleep -1", "milliseconds \"-1\" is not a number in range"),
    (
        "sleep 0xzz",
        "milliseconds \"0xzz\" is not a number in range",
    ),
    ("advance", "usage: advance <secs>"),
    (
        "usb plug sdb",
        "usage: usb add|remove|reset <name> | usb error <name> <code>",
    ),
    (
        "usb error sdb -3",
        "error code \"-3\" is not a number in range",
    ),
    ("block add sda 8", "usage: block add <name> <major> <minor>"),
    (
        "block error sda melted 1",
        "error kind \"melted\" is not a number in range",
    ),
    (
        "block error sda 300 1",
        "error kind \"300\" is not a number in range",
    ),
    ("mount ext4 /mnt rw", "usage: mount <fstype> <path> [ro]"),
    ("umount /mnt now", "usage: umount <path> [lazy]"),
    ("remount /mnt", "usage: remount <path> ro|rw"),
    (
        "setattr /mnt noexec",
        "attributes \"noexec\" is not a number in range",
    ),
    (
        "setattr /mnt 18446744073709551616",
        "attributes \"18446744073709551616\" is not a number in range",
    ),
    (
        "sb /mnt full",
        "usage: sb <path> readonly|rw|edquot|network",
    ),
    (
        "sb /mnt error EIO 1",
        "error \"EIO\" is not a number in range",
    ),
    ("watch-mount /mnt", "usage: watch-mount <path> <tag|-1>"),
    ("watch-sb /mnt x", "tag \"x\" is not a number in range"),
    ("watch-devices", "usage: watch-devices <tag|-1>"),
];

/// Every mistake is reported with its 1-based line, after blank and
/// comment lines, and the whole script is refused.
#[test]
fn script_lines() {
    let good = "# a comment\n\nadd user a x @s   # trailing comment\n";
    assert_eq!(parse_script(good).unwrap().len(), 1);
    for (bad, needle) in BAD_SCRIPT_LINES {
        let text = format!("{good}{bad}\nupdate a y\n");
        let e = parse_script(&text).expect_err(bad);
        assert_eq!(e.line, 4, "{bad}");
        assert!(
            e.msg.contains(needle),
            "{bad}: {:?} lacks {needle:?}",
            e.msg
        );
    }
}

/// The same scripts through both programs that read them: refused before
/// any command runs (the first line would print a record), status 2, the
/// file and line named.
#[test]
fn script_files_through_monitor_and_exec() {
    for (i, (bad, needle)) in BAD_SCRIPT_LINES.iter().enumerate().step_by(5) {
        let path = file(
            &format!("bad{i}.script"),
            format!("add user a x @s\n\n{bad}\n"),
        );
        let p = path.to_str().unwrap();
        let want = format!("{p}: line 3: {needle}");
        let out = watchq_run(&["monitor", p], &[], "");
        assert_refused(&format!("monitor {bad:?}"), &out, 2, &want);
        let out = watchq_run(&["monitor"], &[], &format!("add user a x @s\n\n{bad}\n"));
        assert_refused(&format!("monitor stdin {bad:?}"), &out, 2, "stdin: line 3");
        let out = watchq_run(&["exec", "--script", p, "--", "echo", "main ran"], &[], "");
        assert_refused(&format!("exec --script {bad:?}"), &out, 2, &want);
    }
}

/// A script, scenario or policy file that is not UTF-8 is refused with the
/// line of its first bad byte, like any other bad line, through every
/// program that reads one.
#[test]
fn files_that_are_not_utf8_name_their_line() {
    let script = file("latin1.script", b"add user a x @s\n\nupdate a caf\xe9\n");
    let scenario = file("latin1.scenario", b"queue q pipe\n# caf\xe9\n");
    let policy = file("latin1.policy", b"[smack]\n\n\na b r # \xff\n");
    let (s, sc, p) = (
        script.to_str().unwrap(),
        scenario.to_str().unwrap(),
        policy.to_str().unwrap(),
    );
    let bad = "not UTF-8 (byte 0xe9)";
    let out = watchq_run(&["monitor", s], &[], "");
    assert_refused("monitor", &out, 2, &format!("{s}: line 3: {bad}"));
    let out = watchq_run(&["exec", "--script", s, "--", "echo", "main ran"], &[], "");
    assert_refused("exec --script", &out, 2, &format!("{s}: line 3: {bad}"));
    let out = watchq_run(&["run", sc], &[], "");
    assert_refused("run", &out, 2, &format!("{sc}: line 2: {bad}"));
    let out = watchq_run(&["exec", "--policy", p, "--", "echo", "main ran"], &[], "");
    assert_refused(
        "exec --policy",
        &out,
        2,
        &format!("{p}: line 4: not UTF-8 (byte 0xff)"),
    );
    let inline = file("latin1-policy.scenario", format!("policy {p}\n"));
    let out = watchq_run(&["run", inline.to_str().unwrap()], &[], "");
    assert_refused(
        "run, policy FILE",
        &out,
        2,
        &format!("line 1: policy file {p}, line 4: not UTF-8 (byte 0xff)"),
    );
}

/// The preload library's settings, read before the program's `main`: a bad
/// one stops the program with status 2 and says which setting and why;
/// an empty one is as if unset.
#[test]
fn preload_environment_settings() {
    let bad_script = file("env.script", "add user a x @s\nupdate\n");
    let bad_policy = file("env.policy", "[smack]\nsubject object\n");
    let (s, p) = (bad_script.to_str().unwrap(), bad_policy.to_str().unwrap());
    let rows: &[(&str, &str, String)] = &[
        (
            "WATCHQ_NOTIFICATIONS",
            "maybe",
            "WATCHQ_NOTIFICATIONS=\"maybe\": use on or off".into(),
        ),
        (
            "WATCHQ_NOTIFICATIONS",
            "2",
            "WATCHQ_NOTIFICATIONS=\"2\": use on or off".into(),
        ),
        (
            "WATCHQ_KEY_GC_DELAY",
            "soon",
            "WATCHQ_KEY_GC_DELAY=\"soon\": not a number of seconds".into(),
        ),
        (
            "WATCHQ_KEY_GC_DELAY",
            "-1",
            "WATCHQ_KEY_GC_DELAY=\"-1\": not a number of seconds".into(),
        ),
        (
            "WATCHQ_KEY_GC_DELAY",
            "18446744073709551616",
            "WATCHQ_KEY_GC_DELAY=\"18446744073709551616\": not a number of seconds".into(),
        ),
        (
            "WATCHQ_SCRIPT",
            "/nonexistent/script",
            "WATCHQ_SCRIPT=/nonexistent/script: No such file".into(),
        ),
        (
            "WATCHQ_SCRIPT",
            s,
            format!("WATCHQ_SCRIPT={s}: line 2: usage: update <key> <payload>"),
        ),
        (
            "WATCHQ_POLICY",
            "/nonexistent/policy",
            "WATCHQ_POLICY=/nonexistent/policy: No such file".into(),
        ),
        ("WATCHQ_POLICY", p, format!("WATCHQ_POLICY={p}: line 2:")),
        (
            "WATCHQ_LOG",
            "/nonexistent/dir/log",
            "WATCHQ_LOG=/nonexistent/dir/log: No such file".into(),
        ),
    ];
    let lib = preload_lib();
    let ld = ("LD_PRELOAD", lib.to_str().unwrap());
    for (var, value, needle) in rows {
        let out = std::process::Command::new("echo")
            .arg("main ran")
            .env(ld.0, ld.1)
            .env(var, value)
            .output()
            .unwrap();
        assert_refused(
            &format!("{var}={value}"),
            &out,
            2,
            &format!("watchq: {needle}"),
        );
    }
    for var in [
        "WATCHQ_NOTIFICATIONS",
        "WATCHQ_KEY_GC_DELAY",
        "WATCHQ_SCRIPT",
        "WATCHQ_POLICY",
        "WATCHQ_LOG",
    ] {
        let out = std::process::Command::new("echo")
            .arg("main ran")
            .env(ld.0, ld.1)
            .env(var, "")
            .output()
            .unwrap();
        assert!(out.status.success(), "{var}=: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "main ran\n", "{var}=");
    }
}

/// `watchq bench` (a smoke run): the ratio table with every target, a
/// report and a plot; no progress bar when stderr is not a terminal (a CI
/// log got one redraw per measurement), one on a terminal; an unwritable
/// output directory is status 2.
#[test]
fn bench_smoke_run_writes_table_report_and_plot() {
    let out = target_dir().join("bench-smoke");
    let _ = std::fs::remove_dir_all(&out);
    let o = watchq_run(
        &[
            "bench",
            "--quick",
            "--rounds",
            "1",
            "--runs",
            "2",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
        "",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    for t in watchq_bench::TARGETS {
        let row = format!("| {} | {} | {} | {} |", t.group, t.who, t.peer, t.param);
        assert!(table.contains(&row), "{row} missing from\n{table}");
    }
    // stderr is a pipe here: the bar hides itself, only the result is said.
    assert_eq!(
        text(&o.stderr),
        format!(
            "watchq bench: wrote {}/report.md and throughput.svg\n",
            out.display()
        )
    );
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("![throughput](throughput.svg)"));
    // Every cost curve: its plot, and its table with the floors beside it.
    for curve in ["producers", "size", "capacity", "watches", "fanout"] {
        assert!(report.contains(&format!("![curve/{curve}](curve-{curve}.svg)")));
        let plot = std::fs::read_to_string(out.join(format!("curve-{curve}.svg"))).unwrap();
        assert!(
            plot.starts_with("<svg") && plot.contains("<polyline"),
            "{plot}"
        );
    }
    assert!(report.contains("floor: line handoff"), "{report}");
    assert!(report.contains("range over 2 runs"), "{report}");
    let svg = std::fs::read_to_string(out.join("throughput.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.matches("<rect").count() >= 19,
        "{svg}"
    );
    // On a terminal (util-linux's `script` gives it one) the bar is drawn,
    // then cleared.
    let cmd = format!(
        "{} bench --quick --rounds 1 --runs 1 --out {} >/dev/null",
        watchq().display(),
        out.display()
    );
    let o = std::process::Command::new("timeout")
        .args(["60", "script", "-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let tty = text(&o.stdout);
    assert!(
        tty.contains("] ") && tty.contains('#') && tty.contains('/'),
        "no bar on a terminal: {tty:?}"
    );
    let o = watchq_run(
        &["bench", "--quick", "--rounds", "1", "--out", "/proc/nope"],
        &[],
        "",
    );
    assert_refused("bench to /proc", &o, 2, "/proc/nope");
}
