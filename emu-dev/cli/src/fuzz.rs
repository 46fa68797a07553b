//! Fuzz harness body over the text formats the `watchq` command parses
//! (policy files, monitor scripts, scenarios, `keyctl watch -f` filter
//! letters), shared by the cargo-fuzz target `text_formats` in `fuzz/` and
//! by the stable corpus replay in watchq-tests (feature `fuzzing`).

/// Every text format the programs parse, the first byte choosing which:
/// policy files, scripts, `keyctl watch -f` filter letters. Nothing
/// panics; a line-numbered error points at a line of the text.
pub fn text_formats(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let lines = text.lines().count().max(1);
    if which == b'S' {
        return scenario(&text, lines);
    }
    match which % 3 {
        0 => {
            if let Err(e) = watchq_core::lsm::parse_policy(&text) {
                assert!(
                    (1..=lines).contains(&e.line),
                    "policy line {} of {lines}",
                    e.line
                );
            }
        }
        1 => {
            if let Err(e) = watchq_kernel::script::parse_script(&text) {
                assert!(
                    (1..=lines).contains(&e.line),
                    "script line {} of {lines}",
                    e.line
                );
            }
        }
        _ => {
            if let Ok(blob) = crate::monitor::keyctl_filter(&text) {
                let q = watchq_core::WatchQueue::new();
                assert_eq!(q.set_filter(Some(&blob)), Ok(()), "{text:?}");
            }
        }
    }
}

/// A scenario script: a parse error names a line of the text; a script
/// that parses runs without panicking (unless it asks for real time or
/// billions of repetitions, which a fuzzer would take for a hang).
fn scenario(text: &str, lines: usize) {
    use crate::scenario::{parse, run, ScenarioError};
    let base = std::path::Path::new("/nonexistent");
    match parse(text, base) {
        Err(ScenarioError::Parse(e)) => {
            assert!(
                (1..=lines).contains(&e.line),
                "scenario line {} of {lines}",
                e.line
            )
        }
        Err(e) => panic!("parse gave a non-parse error: {e}"),
        Ok(steps) => {
            if text.contains("sleep") || text.contains("repeat") {
                return;
            }
            for fmt in [crate::format::Format::Sample, crate::format::Format::Json] {
                match run(&steps, fmt, &mut std::io::sink()) {
                    Ok(()) | Err(ScenarioError::Expect { .. }) => {}
                    Err(e) => panic!("a parsed scenario failed to run: {e}"),
                }
            }
        }
    }
}
