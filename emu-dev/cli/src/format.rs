//! How records are printed: the kernel sample consumer's format, `keyctl
//! watch`'s line format, hex, and JSON lines.
//!
//! Owns [`Format`] and [`render`], used by the demo, the monitor and the
//! scenario runner alike, so every tool prints a record the same way.
//! JSON is written by serde_json from small `Serialize` structs (their
//! field order is the output's), never by hand: a USB device name or a
//! step's text may hold quotes, backslashes, control characters or any
//! UTF-8.

use serde::Serialize;
use std::borrow::Cow;
use watchq_core::record::{hex, key_subtype_name};
use watchq_core::ring::mmap::RingRecord;
use watchq_core::uapi::*;
use watchq_core::Notification;

/// An output format for records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `samples/watch_queue/watch_test.c`: `NOTIFY[off]: ty=.. sy=.. i=..`
    /// then the decoded record, then its bytes in hex.
    #[default]
    Sample,
    /// keyutils' `keyctl watch`: `<key> upd`, `<key> link <aux>`,
    /// `-- LOSS --`, `<id> gc`.
    Keyctl,
    /// The record's bytes in hex, one record per line.
    Hex,
    /// One JSON object per record.
    Json,
}

/// `keyctl watch`'s word for a key subtype.
fn keyctl_word(st: u8) -> Option<&'static str> {
    Some(match st {
        NOTIFY_KEY_INSTANTIATED => "inst",
        NOTIFY_KEY_UPDATED => "upd",
        NOTIFY_KEY_LINKED => "link",
        NOTIFY_KEY_UNLINKED => "unlk",
        NOTIFY_KEY_CLEARED => "clr",
        NOTIFY_KEY_REVOKED => "rev",
        NOTIFY_KEY_INVALIDATED => "inv",
        NOTIFY_KEY_SETATTR => "attr",
        _ => return None,
    })
}

/// The lines `fmt` prints for record `rec` found at byte `off` of a read.
pub fn render(rec: &Notification, off: usize, fmt: Format) -> Vec<String> {
    let meta = rec.type_() == WATCH_TYPE_META;
    match fmt {
        Format::Sample => vec![
            format!(
                "NOTIFY[{off:03x}]: ty={:06x} sy={:02x} i={:08x}",
                rec.type_(),
                rec.subtype(),
                rec.info()
            ),
            rec.to_string(),
            format!("  hex: {}", hex(rec.as_bytes())),
        ],
        Format::Keyctl => {
            let line = match (meta, rec.subtype()) {
                (true, WATCH_META_LOSS_NOTIFICATION) => "-- LOSS --".to_string(),
                (true, WATCH_META_REMOVAL_NOTIFICATION) => {
                    format!("{} gc", rec.removal_id().unwrap_or(0))
                }
                _ => match (rec.key_fields(), keyctl_word(rec.subtype())) {
                    (Some((key, aux)), Some(w))
                        if rec.type_() == WATCH_TYPE_KEY_NOTIFY && rec.len() == 16 =>
                    {
                        if matches!(rec.subtype(), NOTIFY_KEY_LINKED | NOTIFY_KEY_UNLINKED) {
                            format!("{key} {w} {aux}")
                        } else {
                            format!("{key} {w}")
                        }
                    }
                    // keyctl watch knows only keys: other records print as the
                    // series' samples did (`BLOCK …`, `USB …`).
                    _ => rec.to_string(),
                },
            };
            vec![line]
        }
        Format::Hex => vec![hex(rec.as_bytes())],
        Format::Json => vec![json_record(rec, off)],
    }
}

/// A record as `--format json` prints it: the header, then what the
/// record's type carries, then its bytes in hex, in this field order.
#[derive(Serialize)]
struct JsonRecord<'a> {
    offset: usize,
    #[serde(rename = "type")]
    type_: u32,
    subtype: u8,
    info: u32,
    tag: u8,
    len: usize,
    #[serde(flatten)]
    fields: Option<JsonFields<'a>>,
    hex: String,
}

/// The fields of a record that its type decodes.
#[derive(Serialize)]
#[serde(untagged)]
enum JsonFields<'a> {
    Meta {
        meta: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    Block {
        dev: u64,
        sector: u64,
    },
    Usb {
        error: u32,
        name: Cow<'a, str>,
    },
    Key {
        key: u32,
        change: &'static str,
        aux: u32,
    },
}

/// One JSON object for record `rec` found at byte `off` of a read.
fn json_record(rec: &Notification, off: usize) -> String {
    let fields = if rec.type_() == WATCH_TYPE_META {
        Some(JsonFields::Meta {
            meta: match rec.subtype() {
                WATCH_META_LOSS_NOTIFICATION => "loss",
                WATCH_META_REMOVAL_NOTIFICATION => "removal",
                _ => "meta",
            },
            id: rec.removal_id(),
        })
    } else if rec.type_() == WATCH_TYPE_BLOCK_NOTIFY && rec.len() == 24 {
        let p = rec.payload();
        Some(JsonFields::Block {
            dev: u64::from_le_bytes(p[..8].try_into().expect("8 bytes")),
            sector: u64::from_le_bytes(p[8..16].try_into().expect("8 bytes")),
        })
    } else if rec.type_() == WATCH_TYPE_USB_NOTIFY && rec.len() >= usb::NAME_OFFSET {
        let p = rec.payload();
        let n = (p[8] as usize).min(p.len() - 9);
        Some(JsonFields::Usb {
            error: u32::from_le_bytes(p[..4].try_into().expect("4 bytes")),
            name: String::from_utf8_lossy(&p[9..9 + n]),
        })
    } else {
        rec.key_fields().map(|(key, aux)| JsonFields::Key {
            key,
            change: key_subtype_name(rec.subtype()).unwrap_or("unknown"),
            aux,
        })
    };
    to_json(&JsonRecord {
        offset: off,
        type_: rec.type_(),
        subtype: rec.subtype(),
        info: rec.info(),
        tag: rec.tag(),
        len: rec.len(),
        fields,
        hex: hex(rec.as_bytes()).replace(' ', ""),
    })
}

/// A record of the 2019 design's mapped ring as `--format json` prints it.
#[derive(Serialize)]
struct JsonRecord2019 {
    design: u32,
    #[serde(rename = "type")]
    type_: u32,
    subtype: u8,
    tag: u8,
    len: usize,
    overrun: bool,
    hex: String,
}

/// One JSON object for a record of the 2019 design's mapped ring.
pub fn json_record_2019(rec: &RingRecord) -> String {
    to_json(&JsonRecord2019 {
        design: 2019,
        type_: rec.type_(),
        subtype: rec.subtype(),
        tag: rec.tag(),
        len: rec.bytes.len(),
        overrun: rec.overrun(),
        hex: hex(&rec.bytes).replace(' ', ""),
    })
}

/// A `# …` line about a step (a read's result, a failed command) as `fmt`
/// prints it: as it is, or in JSON as `{"step":"…"}` without the `# `, so
/// JSON output stays one object per line.
pub fn render_note(note: &str, fmt: Format) -> String {
    match fmt {
        Format::Json => to_json(&serde_json::json!({ "step": note.trim_start_matches("# ") })),
        _ => note.to_string(),
    }
}

/// `v` in compact JSON: serde_json escapes quotes, backslashes and control
/// characters and keeps other text as UTF-8.
fn to_json(v: &impl Serialize) -> String {
    serde_json::to_string(v).expect("string keys and finite numbers serialise")
}

/// Renders a whole read() buffer (its records back to back).
///
/// # Errors
/// `EINVAL` when the buffer does not hold whole, well-formed records.
pub fn render_read(buf: &[u8], fmt: Format) -> watchq_core::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut off = 0;
    for rec in Notification::decode_all(buf)? {
        out.extend(render(&rec, off, fmt));
        off += rec.len();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(st: u8, key: u32, aux: u32, tag: u8) -> Notification {
        let mut n = Notification::key(st, key, aux);
        n.set_info_id(u32::from(tag) << 8);
        n
    }

    #[test]
    fn format_keyctl_lines() {
        assert_eq!(
            render(&rec(NOTIFY_KEY_LINKED, 5, 7, 1), 0, Format::Keyctl),
            ["5 link 7"]
        );
        assert_eq!(
            render(&rec(NOTIFY_KEY_UPDATED, 5, 0, 1), 0, Format::Keyctl),
            ["5 upd"]
        );
        let loss = Notification::decode(&[0, 0, 0, 1, 8, 0, 0, 0]).unwrap();
        assert_eq!(render(&loss, 0, Format::Keyctl), ["-- LOSS --"]);
        assert_eq!(
            render(&Notification::removal(42), 0, Format::Keyctl),
            ["42 gc"]
        );
        assert_eq!(
            render(&Notification::removal(0), 0, Format::Keyctl),
            ["0 gc"]
        );
    }

    #[test]
    fn format_sample_and_json() {
        let r = rec(NOTIFY_KEY_UPDATED, 0x1234abcd, 0, 1);
        assert_eq!(
            render(&r, 16, Format::Sample),
            [
                "NOTIFY[010]: ty=000001 sy=01 i=00000110",
                "KEY 1234abcd change=1[updated] aux=0",
                "  hex: 01 00 00 01 10 01 00 00 cd ab 34 12 00 00 00 00",
            ]
        );
        assert_eq!(
            render(&r, 0, Format::Json),
            ["{\"offset\":0,\"type\":1,\"subtype\":1,\"info\":272,\"tag\":1,\"len\":16,\"key\":305441741,\"change\":\"updated\",\"aux\":0,\"hex\":\"01000001100100 00cdab341200000000\"}".replace(' ', "")]
        );
        assert_eq!(
            render(&Notification::removal(42), 8, Format::Json),
            ["{\"offset\":8,\"type\":0,\"subtype\":0,\"info\":16,\"tag\":0,\"len\":16,\"meta\":\"removal\",\"id\":42,\"hex\":\"00000000100000002a00000000000000\"}"]
        );
        assert_eq!(
            render_read(&[1, 2], Format::Hex).err(),
            Some(watchq_core::Errno::EINVAL)
        );
    }

    #[test]
    fn format_json_escapes_names_and_notes() {
        let name = "a\"b\\c\td\u{1}e'Ünïcødé ✓";
        let r = Notification::usb(usb::DEVICE_ADD, 7, name);
        let [line] = &render(&r, 0, Format::Json)[..] else {
            panic!("one line")
        };
        assert!(
            line.contains(r#""error":7,"name":"a\"b\\c\td\u0001e'Ünïcødé ✓","hex""#),
            "{line}"
        );
        assert_eq!(
            render_note("# add user it's\\\"x\" v = -1 EDQUOT", Format::Json),
            r#"{"step":"add user it's\\\"x\" v = -1 EDQUOT"}"#
        );
        assert_eq!(
            render_note("# x = -1 EPERM", Format::Keyctl),
            "# x = -1 EPERM"
        );
    }
}
