//! `--format json` of the real `watchq` binary: every line that `watchq run`
//! and `watchq monitor` (key mode and `--queue`) print is a JSON object
//! that serde_json parses, over every example and over names and step
//! text full of quotes, backslashes, tabs, other control characters and
//! non-ASCII; the parsed strings are the exact original text, and every
//! record's fields agree with its own bytes and with the other formats.

use serde_json::{Map, Value};
use std::process::{Command, Output};
use watchq_tests::programs::{bounded, files, repo, text, with_stdin};

/// Names that broke the hand-written JSON: a quote, a backslash, control
/// characters (`escape_default` wrote `\u{1}`), an apostrophe (`\'`) and
/// non-ASCII (`\u{dc}`). No whitespace or `#`: a script splits words on
/// whitespace and `#` starts a comment. Each fits a USB name (63 bytes).
const NAMES: &[&str] = &[
    "Ünïcødé✓",
    "q\"uote",
    "back\\slash\\",
    "ctl\u{1}\u{1b}\u{7f}end",
    "it's",
    "mix\"\\'\u{2}é✓\u{1f600}",
];

/// Runs `c`, asserting success; its stdout as UTF-8.
fn ok(what: &str, o: Output) -> String {
    assert!(o.status.success(), "{what}: {}", text(&o.stderr));
    String::from_utf8(o.stdout).unwrap_or_else(|e| panic!("{what}: stdout is not UTF-8: {e}"))
}

fn stdout_of(what: &str, c: &mut Command) -> String {
    ok(what, c.output().unwrap())
}

/// Every line of `out` parsed as one JSON object.
fn objects(what: &str, out: &str) -> Vec<Map<String, Value>> {
    out.lines()
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(m)) => m,
            Ok(v) => panic!("{what}: not an object: {v}"),
            Err(e) => panic!("{what}: not JSON ({e}): {l:?}"),
        })
        .collect()
}

fn string<'a>(what: &str, o: &'a Map<String, Value>, field: &str) -> &'a str {
    o.get(field)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{what}: no string {field:?} in {o:?}"))
}

fn number(what: &str, o: &Map<String, Value>, field: &str) -> u64 {
    o.get(field)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{what}: no number {field:?} in {o:?}"))
}

/// `hex` back to bytes (five lines: not worth the hex crate for a test).
fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// What JSON output says: its step lines and its record objects. Each
/// record is checked against its own bytes (`hex`): its length, type and
/// subtype, and a USB name is exactly the name its bytes hold.
struct Json {
    steps: Vec<String>,
    records: Vec<Map<String, Value>>,
}

fn json(what: &str, out: &str) -> Json {
    let mut j = Json {
        steps: Vec::new(),
        records: Vec::new(),
    };
    for o in objects(what, out) {
        if o.len() == 1 {
            j.steps.push(string(what, &o, "step").to_string());
            continue;
        }
        let bytes = unhex(string(what, &o, "hex"));
        assert_eq!(number(what, &o, "len"), bytes.len() as u64, "{what}: {o:?}");
        assert_eq!(
            number(what, &o, "subtype"),
            u64::from(bytes[3]),
            "{what}: {o:?}"
        );
        let ty = u32::from_le_bytes(bytes[..4].try_into().unwrap()) & 0x00ff_ffff;
        assert_eq!(number(what, &o, "type"), u64::from(ty), "{what}: {o:?}");
        if let Some(name) = o.get("name") {
            let n = usize::from(bytes[16]);
            let held = std::str::from_utf8(&bytes[17..17 + n]).unwrap();
            assert_eq!(name.as_str(), Some(held), "{what}: {o:?}");
        }
        j.records.push(o);
    }
    j
}

/// `# …` lines of a text format, without the `# `, and its other lines.
fn notes_and_rest(out: &str) -> (Vec<String>, Vec<String>) {
    let (notes, rest): (Vec<&str>, Vec<&str>) = out.lines().partition(|l| l.starts_with("# "));
    (
        notes.iter().map(|l| l[2..].to_string()).collect(),
        rest.iter().map(|l| l.to_string()).collect(),
    )
}

/// JSON output against the hex output of the same run: the same step
/// lines, and each record's `hex` is the hex format's line for it.
fn same_as_hex(what: &str, j: &Json, hex_out: &str) {
    let (notes, hexes) = notes_and_rest(hex_out);
    assert_eq!(j.steps, notes, "{what}: steps");
    let got: Vec<String> = j
        .records
        .iter()
        .map(|o| string(what, o, "hex").to_string())
        .collect();
    let want: Vec<String> = hexes.iter().map(|h| h.replace(' ', "")).collect();
    assert_eq!(got, want, "{what}: records");
}

/// The queues a scenario declares (`queue NAME …`).
fn queues(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|l| l.split('#').next().unwrap().trim().strip_prefix("queue "))
        .map(|r| r.split_whitespace().next().unwrap().to_string())
        .collect()
}

#[test]
fn json_every_example_parses_and_agrees_with_the_hex_output() {
    let examples = files("examples", "scenario");
    assert!(examples.len() >= 7, "{examples:?}");
    for ex in examples {
        let name = ex.display().to_string();
        let run = |f: &str| stdout_of(&name, bounded().args(["run", "--format", f]).arg(&ex));
        let j = json(&name, &run("json"));
        same_as_hex(&name, &j, &run("hex"));
        // The step lines are the sample format's, to the byte.
        assert_eq!(j.steps, notes_and_rest(&run("sample")).0, "{name}");
        for q in queues(&std::fs::read_to_string(&ex).unwrap()) {
            let what = format!("{name} --queue {q}");
            let mon = |f: &str| {
                stdout_of(
                    &what,
                    bounded()
                        .args(["monitor", "--queue", &q, "--format", f])
                        .arg(&ex),
                )
            };
            let j = json(&what, &mon("json"));
            assert!(j.steps.is_empty(), "{what}: {:?}", j.steps);
            same_as_hex(&what, &j, &mon("hex"));
        }
    }
}

#[test]
fn json_monitor_example_parses_and_agrees_with_the_hex_output() {
    let script = repo("examples/monitor-keys.txt");
    let mon = |f: &str, extra: &[&str]| {
        stdout_of(
            f,
            bounded()
                .args(["monitor", "--format", f])
                .args(extra)
                .arg(&script),
        )
    };
    for extra in [
        &[][..],
        &["--size", "1"],
        &["--filter", "pl"],
        &["--devices"],
    ] {
        let what = format!("monitor {extra:?}");
        let j = json(&what, &mon("json", extra));
        assert!(!j.records.is_empty(), "{what}");
        same_as_hex(&what, &j, &mon("hex", extra));
    }
    // A refused command is a step object too, not a bare `# …` line.
    let o = with_stdin(
        bounded().args(["monitor", "--format", "json"]),
        "add user k v\nupdate nosuch v\n",
    );
    let j = json("monitor", &ok("monitor", o));
    assert_eq!(j.steps, ["update nosuch v = -1 ENOKEY"]);
    assert_eq!(j.records.len(), 1);
}

/// Each name as a USB device and a key; steps that fail print their text,
/// names and tabs included.
fn odd_scenario() -> (String, Vec<String>) {
    let mut s = String::from(
        "process w uid 0 gid 0\nsession s\nqueue q pipe size 256\nwatch q devices 1\n\
         watch q key @s 2\n",
    );
    let mut steps = Vec::new();
    for n in NAMES {
        s.push_str(&format!("usb add {n}\nadd user {n} v\n"));
        // Linked to @s only; the tabs stay in the step's text.
        let unlink = format!("unlink\t{n}\t@u");
        let update = format!("update\tno-{n} v");
        s.push_str(&format!("{unlink}\n{update}\n"));
        steps.push(format!("{unlink} = -1 ENOENT"));
        steps.push(format!("{update} = -1 ENOKEY"));
    }
    s.push_str("read q\n");
    (s, steps)
}

fn usb_names(what: &str, j: &Json) -> Vec<String> {
    j.records
        .iter()
        .filter(|o| o.contains_key("name"))
        .map(|o| string(what, o, "name").to_string())
        .collect()
}

#[test]
fn json_strings_round_trip_quotes_backslashes_controls_and_unicode() {
    let (script, want_steps) = odd_scenario();
    let run = |f: &str| {
        ok(
            f,
            with_stdin(bounded().args(["run", "--format", f, "-"]), &script),
        )
    };
    let j = json("run", &run("json"));
    let (read, steps): (Vec<String>, Vec<String>) = j
        .steps
        .iter()
        .cloned()
        .partition(|s| s.starts_with("read("));
    assert_eq!(steps, want_steps);
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!(usb_names("run", &j), NAMES);
    // Key records: one link to @s per name.
    let keys = j.records.iter().filter(|o| o.contains_key("key")).count();
    assert_eq!(keys, NAMES.len());
    same_as_hex("run", &j, &run("hex"));

    // The same world followed live.
    let o = with_stdin(
        bounded().args(["monitor", "--queue", "q", "--format", "json"]),
        &script,
    );
    let j = json("monitor --queue", &ok("monitor --queue", o));
    assert_eq!(usb_names("monitor --queue", &j), NAMES);

    // The key monitor: the same names as USB devices and keys.
    let mut script = String::new();
    let mut want_steps = Vec::new();
    for n in NAMES {
        let unlink = format!("unlink\t{n}\t@u");
        script.push_str(&format!("usb add {n}\nadd user {n} v\n{unlink}\n"));
        want_steps.push(format!("{unlink} = -1 ENOENT"));
    }
    let o = with_stdin(
        bounded().args(["monitor", "--devices", "--format", "json"]),
        &script,
    );
    let j = json("monitor", &ok("monitor", o));
    assert_eq!(j.steps, want_steps);
    assert_eq!(usb_names("monitor", &j), NAMES);
}
