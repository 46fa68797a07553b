//! Replaying the real kernel's recorded traces (the project's copy in
//! `tests/data/oracle/`, see its README).
//!
//! A [`Trace`] prints what the oracle's probe (`wqtest.c`) prints for each
//! call, drain and record, in the normalised form of
//! `golden-normalized.txt` (serials replaced by the names the probe gave
//! them; all reads of one drain merged; the decoded tail of a record line
//! dropped). [`golden_section`] extracts the matching section of the
//! recording, so a test compares the two line by line.

use std::collections::BTreeMap;
use std::fmt::Display;
use watchq_core::uapi::POLLIN;
use watchq_core::{Errno, Notification};
use watchq_kernel::prelude::*;
use watchq_kernel::{PollFd, Process};

/// The real kernel's normalised recording (Linux 6.12.117), built into
/// the test binaries so a change to it rebuilds them.
pub const GOLDEN: &str = include_str!("../data/oracle/golden-normalized.txt");

/// The lines of section `name` (e.g. `"B1 keyring/key event stream"`) of
/// the golden recording, record lines cut before their decoded tail.
///
/// # Panics
/// When the section is missing.
pub fn golden_section(name: &str) -> Vec<String> {
    let begin = format!("=== BEGIN {name} ===");
    let end = format!("=== END {name} ===");
    let mut out = Vec::new();
    let mut inside = false;
    for line in GOLDEN.lines() {
        if line == begin {
            inside = true;
        } else if line == end {
            return out;
        } else if inside {
            out.push(cut_record(line));
        }
    }
    panic!("section {name:?} not found in tests/data/oracle/golden-normalized.txt");
}

fn cut_record(line: &str) -> String {
    match line.split_once(" | ") {
        Some((head, _)) if line.trim_start().starts_with("REC ") => head.to_string(),
        _ => line.to_string(),
    }
}

/// A probe-style transcript with serial-number naming.
#[derive(Default)]
pub struct Trace {
    lines: Vec<String>,
    names: BTreeMap<i32, String>,
}

impl Trace {
    /// A call and its result: `label = value` or `label = -1 ENAME (errno N)`.
    pub fn t<T: Display>(&mut self, label: &str, r: Result<T, Errno>) -> Result<T, Errno> {
        let shown = match &r {
            Ok(v) => v.to_string(),
            Err(e) => format!("-1 {} (errno {})", e.name(), e.as_raw()),
        };
        self.lines.push(format!("{label} = {shown}"));
        r
    }

    /// A call returning nothing on success (printed as 0).
    pub fn t0(&mut self, label: &str, r: Result<(), Errno>) {
        let _ = self.t(label, r.map(|()| 0));
    }

    /// Names serial `s` (the probe's `nm()`), printing `# key NAME = <NAME>`.
    pub fn nm(&mut self, r: Result<i32, Errno>, name: &str) -> i32 {
        let s = r.unwrap_or_else(|e| panic!("{name}: {e}"));
        self.names.insert(s, name.to_string());
        self.lines.push(format!("# key {name} = {s}"));
        s
    }

    /// The probe's `addkey(type, desc, payload, ring)` (payload `None`
    /// prints as NULL): the call, its result, and, with `name`, the naming
    /// of the new serial. `ring` is the ring's name as printed and its serial.
    pub fn addkey(
        &mut self,
        p: &Process,
        (ty, desc, payload): (&str, &str, Option<&str>),
        ring: (&str, i32),
        name: Option<&str>,
    ) -> i32 {
        let shown = payload.map_or("NULL".to_string(), |v| format!("{v:?}"));
        let label = format!("addkey({ty:?}, {desc:?}, {shown}, {})", ring.0);
        let bytes = payload.unwrap_or("").as_bytes();
        let r = self.t(&label, p.add_key(ty, Some(desc), bytes, ring.1));
        match name {
            Some(n) => self.nm(r, n),
            None => r.unwrap_or_else(|e| panic!("{label}: {e}")),
        }
    }

    /// A comment line.
    pub fn note(&mut self, text: &str) {
        self.lines.push(format!("# {text}"));
    }

    /// A raw line.
    pub fn line(&mut self, text: String) {
        self.lines.push(text);
    }

    /// Reads `fd` until it is empty, as the probe's `drain()`, which polls
    /// with a timeout before each read (so the key collector a call queued
    /// runs, as it did on the kernel): the bytes (all reads merged), each
    /// record, then `idle`.
    pub fn drain(&mut self, p: &Process, fd: i32, what: &str) {
        let mut all = Vec::new();
        let mut buf = vec![0u8; 4096];
        loop {
            match p.read(fd, &mut buf) {
                Ok(0) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN) => {
                    let mut pfd = [PollFd::new(fd, POLLIN)];
                    if p.poll(&mut pfd, 0) != Ok(1) {
                        break;
                    }
                }
                Err(e) => panic!("drain({what}): {e}"),
            }
        }
        if !all.is_empty() {
            self.lines
                .push(format!("drain({what}): {} bytes", all.len()));
            let mut off = 0;
            for rec in Notification::decode_all(&all).expect("whole records") {
                let hex: String = rec.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
                self.lines.push(format!("  REC off={off} hex={hex}"));
                off += rec.len();
            }
        }
        self.lines.push(format!("drain({what}): idle"));
    }

    /// The transcript with serials replaced by their names: in results
    /// and comments as `<NAME>`, in record hex (4-byte aligned words) too.
    pub fn normalized(&self) -> Vec<String> {
        self.lines.iter().map(|l| self.normalize(l)).collect()
    }

    fn normalize(&self, line: &str) -> String {
        if let Some((head, hex)) = line.split_once(" hex=") {
            let mut out = format!("{head} hex=");
            let mut i = 0;
            while i < hex.len() {
                let word = &hex[i..(i + 8).min(hex.len())];
                let named = (word.len() == 8)
                    .then(|| u32::from_str_radix(word, 16).ok())
                    .flatten()
                    .map(|v| i32::from_le_bytes(v.to_be_bytes()))
                    .and_then(|s| self.names.get(&s));
                match named {
                    Some(n) => out.push_str(&format!("<{n}>")),
                    None => out.push_str(word),
                }
                i += 8;
            }
            return out;
        }
        match line.rsplit_once(" = ") {
            Some((head, v)) => match v.parse::<i32>().ok().and_then(|s| self.names.get(&s)) {
                Some(n) => format!("{head} = <{n}>"),
                None => line.to_string(),
            },
            None => line.to_string(),
        }
    }
}

/// Compares a transcript with a golden section, reporting the first
/// difference with context.
///
/// # Panics
/// On the first differing line.
pub fn assert_matches_golden(ours: &[String], golden: &[String]) {
    for (i, (a, b)) in ours.iter().zip(golden).enumerate() {
        if a != b {
            let from = i.saturating_sub(3);
            panic!(
                "line {i} differs\n  watchq: {a}\n  kernel: {b}\ncontext (watchq):\n{}",
                ours[from..=i].join("\n")
            );
        }
    }
    assert_eq!(ours.len(), golden.len(), "transcript lengths differ");
}
