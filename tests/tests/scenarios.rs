//! `watchq run`: every example scenario runs, holds its expect lines and
//! prints exactly its recorded output, the same on every run and in every
//! format; malformed scripts get a line-numbered error and status 2, a
//! failed expectation a diff and status 1, never a panic.

use std::process::Output;
use watchq_tests::programs::{bounded, files, repo, text, with_stdin};

fn run(args: &[&str]) -> Output {
    bounded().arg("run").args(args).output().unwrap()
}

/// `watchq run -` with `script` on stdin.
fn run_stdin(script: &str) -> Output {
    with_stdin(bounded().args(["run", "-"]), script)
}

fn examples() -> Vec<std::path::PathBuf> {
    let v = files("examples", "scenario");
    assert!(v.len() >= 7, "examples/*.scenario: {v:?}");
    v
}

#[test]
fn every_example_holds_its_expectations_and_prints_its_recorded_output() {
    for ex in examples() {
        let name = ex.file_stem().unwrap().to_str().unwrap().to_string();
        let path = ex.to_str().unwrap();
        let o = run(&[path]);
        assert!(o.status.success(), "{name}: {}", text(&o.stderr));
        let want = std::fs::read_to_string(repo(&format!("examples/expected/{name}.txt")))
            .unwrap_or_else(|e| panic!("examples/expected/{name}.txt: {e}"));
        assert_eq!(
            text(&o.stdout),
            want,
            "{name}: output differs from examples/expected/{name}.txt"
        );
        // Deterministic: a second run prints the same bytes.
        assert_eq!(run(&[path]).stdout, o.stdout, "{name}: second run differs");
        // Every format runs; JSON output is one object per line.
        for f in ["keyctl", "hex", "json"] {
            let o = run(&["--format", f, path]);
            assert!(
                o.status.success(),
                "{name} --format {f}: {}",
                text(&o.stderr)
            );
            if f == "json" {
                for l in text(&o.stdout).lines() {
                    assert!(l.starts_with('{') && l.ends_with('}'), "{name}: {l}");
                }
            }
        }
        // --quiet prints nothing when every expectation holds.
        let q = run(&["--quiet", path]);
        assert!(q.status.success() && q.stdout.is_empty(), "{name} --quiet");
    }
}

#[test]
fn a_failed_expectation_prints_a_diff_and_exits_1() {
    let o = run_stdin(
        "process w uid 1000 gid 1000\nsession s\nqueue q pipe size 1\nwatch q key @s 1\n\
         add user k v\nread q\nexpect KEY 10000001 change=3[unlinked] aux=268435458\n",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let e = text(&o.stderr);
    assert!(e.contains("line 6: `read q`"), "{e}");
    assert!(
        e.contains("line 7: expected `KEY 10000001 change=3[unlinked] aux=268435458`"),
        "{e}"
    );
    assert!(
        e.contains("got      `KEY 10000001 change=2[linked] aux=268435458`"),
        "{e}"
    );

    // An extra record, and an expected one that never came.
    let o = run_stdin("queue q pipe size 1\nread q\nexpect error EAGAIN\nexpect ok\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("line 4: expected `ok`, but there is no such line"));
    let o = run_stdin("queue q pipe size 1\nstats q\nexpect error EAGAIN\n");
    assert!(
        text(&o.stderr).contains("got      `posted=0"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn malformed_scripts_name_the_line_and_exit_2() {
    let cases: &[(&str, &str)] = &[
        // unknown step
        (
            "process a\nfrobnicate x\n",
            "line 2: unknown step \"frobnicate\"",
        ),
        // an unknown step under repeat is named, not `repeat`
        (
            "process a\nrepeat 2 frobnicate x\n",
            "line 2: unknown step \"frobnicate\"",
        ),
        // bad numbers
        (
            "process a uid lots\n",
            "line 1: uid \"lots\" is not a number in range",
        ),
        (
            "queue q pipe size -3\n",
            "line 1: size \"-3\" is not a number in range",
        ),
        ("queue q pipe\nread q 1e9\n", "line 2: buffer size \"1e9\""),
        ("queue q pipe\nwatch q key @s x\n", "line 2: tag \"x\""),
        (
            "queue q pipe filter key:300\n",
            "line 1: subtype (0..255) \"300\"",
        ),
        // missing fields
        ("queue q\n", "line 1: usage: queue NAME pipe|device"),
        ("process\n", "line 1: usage: process NAME"),
        (
            "queue q pipe\nwatch q key @s\n",
            "line 2: usage: watch QUEUE",
        ),
        ("add user\n", "line 1: usage: add"),
        ("expect\n", "line 1: an expect line must follow"),
        // wrong order and undeclared names
        (
            "process a\nkernel no-notifications\n",
            "line 2: `kernel` must come before",
        ),
        ("read q\n", "line 1: no queue named \"q\""),
        ("as nobody\n", "line 1: no process named \"nobody\""),
        (
            "process a\nprocess a\n",
            "line 2: \"a\" is already the name",
        ),
        ("expect ok\n", "line 1: an expect line must follow the step"),
        // policies
        (
            "policy\n[smack]\nonly-two words\nend\n",
            "line 3: in the policy block",
        ),
        (
            "policy\n[smack]\n",
            "line 1: the policy block starting here has no `end` line",
        ),
        (
            "policy /no/such/file\n",
            "line 1: policy file /no/such/file",
        ),
        // other bad values
        (
            "queue q pipe keyfilter xyz\n",
            "line 1: keyfilter letter 'x'",
        ),
        (
            "queue q pipe filter key keyfilter l\n",
            "line 1: give either filter or keyfilter",
        ),
        (
            "restrict deny watch_everything\n",
            "line 1: unknown hook \"watch_everything\"",
        ),
        ("kernel turbo\n", "line 1: unknown kernel option \"turbo\""),
        (
            "queue q pipe\nwatch-devices 1\n",
            "line 2: \"watch-devices\" is for `watchq monitor`",
        ),
    ];
    for (script, want) in cases {
        let o = run_stdin(script);
        let e = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{script:?}: {e}");
        assert!(e.contains(want), "{script:?}: {e:?} lacks {want:?}");
        assert!(!e.contains("panicked"), "{script:?}: {e}");
        assert!(
            o.stdout.is_empty(),
            "{script:?}: nothing runs before the whole script parses"
        );
    }
    // A file that is not there.
    let o = run(&["/no/such.scenario"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("/no/such.scenario"));
}

#[test]
fn a_step_that_fails_without_expect_lines_is_reported_and_the_run_goes_on() {
    let o = run_stdin("queue q pipe size 1\nunlink nosuchkey @s\nwatch q key @s 1\n");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "# unlink nosuchkey @s = -1 ENOKEY\n");
}

#[test]
fn monitor_follows_a_scenario_queue_live() {
    let ex = repo("examples/mounts.scenario");
    let o = bounded()
        .args(["monitor", "--queue", "q", "--format", "keyctl"])
        .arg(&ex)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "MOUNT 00000002 change=0[new-mount] aux=3 subtree\n\
         MOUNT 00000002 change=3[readonly] aux=0 subtree ro\n\
         MOUNT 00000002 change=4[setattr] aux=0 subtree\n\
         SB 00001001 change=0[readonly] ro\n\
         SB 00001001 change=1[error] error=5 cookie=42\n\
         SB 00001001 change=2[edquot]\n\
         MOUNT 00000001 change=1[unmount] aux=2\n\
         MOUNT 00000002 change=1[unmount] aux=3 subtree\n\
         4097 gc\n"
    );
    // JSON: one object per record.
    let o = bounded()
        .args(["monitor", "--queue", "q", "--format", "json"])
        .arg(&ex)
        .output()
        .unwrap();
    assert_eq!(text(&o.stdout).lines().count(), 9);
    // A queue the scenario does not have.
    let o = bounded()
        .args(["monitor", "--queue", "nope"])
        .arg(&ex)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("no queue named \"nope\" in the scenario"));
    // The pipe options of the key monitor do not mix with a scenario's queue.
    let o = bounded()
        .args(["monitor", "--queue", "q", "--size", "3"])
        .arg(&ex)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("cannot be used with"));
}

#[test]
fn odd_values_run_with_the_kernel_answers() {
    let o = run_stdin(
        "queue q pipe size 1\nread q 0\nread q 18446744073709551615\nqueue d device\nread d\n\
         queue e device size 0\nwatch q key nosuch 1\nwatch q key @s 999\nclose q\nclose q\n",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "# read(q, 0) = 0\n\
         # read(q, 18446744073709551615) = -1 EAGAIN\n\
         # mmap(d) = -1 EINVAL\n\
         # queue e device size 0 = -1 EINVAL\n\
         # watch q key nosuch 1 = -1 ENOKEY\n\
         # watch q key @s 999 = -1 EINVAL\n\
         # close q = -1 EBADF\n"
    );
}

#[test]
fn credentials_change_with_setuid_and_bind_what_a_process_may_watch() {
    let o = run_stdin(
        "policy\n[landlock]\nend\nprocess admin\nsession shared\nadd user roots-key v\n\
         fork worker\nas worker\nsetuid 1000 1000\nexpect ok\n\
         setuid 0\nexpect error EPERM\n\
         restrict own-keys\nqueue q pipe size 1\n\
         watch q key roots-key 1\nexpect error EPERM\n\
         add user mine v\nwatch q key mine 2\nexpect ok\n\
         process other uid 5\nsetuid 5 7\nexpect error EPERM\n",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
}

/// The key clock can be advanced to its end and timeouts set there: it
/// saturates (a timeout used to overflow and panic).
#[test]
fn the_key_clock_saturates_at_its_end() {
    let o = run_stdin(
        "add user k v\ntimeout k 5\nadvance 9223372036854775807\nadvance 9223372036854775807\n\
         add user k2 v\ntimeout k2 4294967295\nexpect ok\nadvance 9223372036854775807\n",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!text(&o.stderr).contains("panicked"));
}

/// Numbers take their whole range: a sector is a u64.
#[test]
fn a_sector_takes_the_whole_u64_range() {
    let o = run_stdin(
        "queue q pipe size 1\nwatch q devices 1\nblock add sda 8 0\n\
         block error sda 2 18446744073709551615\nread q\n\
         expect BLOCK 00800000 e=2[no-space] s=ffffffffffffffff\n",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
}

/// `init` (uid 0) can be named before or after other processes, unless
/// the script declares its own.
#[test]
fn init_is_there_when_the_script_names_it() {
    let o = run_stdin(
        "process a uid 5\nas init\nsetuid 3\nexpect ok\nfork c of init\nas c\nsetuid 3\nexpect ok\n",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = run_stdin("process init uid 7\nas init\nsetuid 0\nexpect error EPERM\n");
    assert!(o.status.success(), "{}", text(&o.stderr));
}

/// A filter names types in the queue's own generation: `keyfilter` and
/// `filter key` on a 2019 queue pass the 2019 key records (type 3).
#[test]
fn filters_use_the_type_ids_of_the_queues_generation() {
    let o = run_stdin(
        "session s\nqueue d device size 1 keyfilter l\nwatch d key @s 1\n\
         queue e device size 1 filter key:3\nwatch e key @s 2\n\
         add user k v\nunlink k @s\n\
         read d\nexpect V2 KEY 10000001 change=2[linked] aux=268435458 tag=1\n\
         read e\nexpect V2 KEY 10000001 change=3[unlinked] aux=268435458 tag=2\n",
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
}
