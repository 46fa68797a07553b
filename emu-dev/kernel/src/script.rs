//! Key scripts: a small line language for changing the simulated world,
//! shared by `watchq monitor` and the preload library's `WATCHQ_SCRIPT`.
//!
//! Commands, one per line (`#` starts a comment):
//!
//! | command | does |
//! |---|---|
//! | `add <type> <desc> <payload> [<ring>]` | add_key (payload `-` = none; ring defaults to `@s`) |
//! | `update <key> <payload>` | KEYCTL_UPDATE |
//! | `link <key> <ring>` / `unlink <key> <ring>` | KEYCTL_LINK / KEYCTL_UNLINK |
//! | `move <key> <from> <to>` | KEYCTL_MOVE |
//! | `revoke <key>` / `invalidate <key>` / `clear <ring>` | KEYCTL_REVOKE / INVALIDATE / CLEAR |
//! | `setperm <key> <hex>` / `chown <key> <uid> <gid>` / `timeout <key> <secs>` | KEYCTL_SETPERM / CHOWN / SET_TIMEOUT |
//! | `restrict <ring>` | KEYCTL_RESTRICT_KEYRING (no type: refuse links) |
//! | `watch <key> <tag>` / `unwatch <key>` | KEYCTL_WATCH_KEY on the watcher's pipe |
//! | `advance <secs>` | move the key clock (expiry, gc delay) and collect |
//! | `gc` | run the key collector now (what a key call queued) |
//! | `repeat <n> <command>` | run a command n times in a row |
//! | `sleep <ms>` | wait (real time) before the next command |
//! | `usb add\|remove\|reset <name>`, `usb error <name> <code>` | a USB device event (posted to the device list) |
//! | `block add <name> <major> <minor>` | a new block device |
//! | `block error <name> <kind> <sector>` | a request error (`kind` 1..10 or its name: `io`, `timeout`, …) |
//! | `watch-devices <tag\|-1>` | `watch_devices` on the watcher's pipe |
//! | `mkdir <path>`, `touch <path>` | a directory, a file |
//! | `mount <fstype> <path> [ro]`, `bind <src> <dst>` | a new mount (new superblock, or the source's) |
//! | `umount <path> [lazy]`, `expire <path>`, `mount-move <from> <to>` | unmount (lazy: the whole subtree), expiry, move |
//! | `remount <path> ro\|rw`, `setattr <path> <attrs>` | mount read-only flag, attributes |
//! | `sb <path> readonly\|rw\|edquot\|network`, `sb <path> error <errno> <cookie>` | superblock events |
//! | `watch-mount <path> <tag\|-1>`, `watch-sb <path> <tag\|-1>` | `watch_mount`/`watch_sb` on the watcher's pipe |
//!
//! A key is `@s`, `@u`, `@us`, `@p`, `@t`, a serial (decimal or `0x…`), or
//! the description of a key added earlier by `add`.
//!
//! Lines, comments, words and numbers are [`watchq_core::text`]'s (no
//! quoting: a payload or a description is one word); errors are its
//! [`ParseError`].

use crate::prelude::*;
use crate::{Kernel, Process};
use std::collections::HashMap;
use std::sync::Arc;
use watchq_core::text::{self, number as num, ParseError};
use watchq_core::uapi::block;
use watchq_core::{Errno, Result};
use watchq_sources::keys::*;

/// One command of a key script.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // the variants are documented in the module's table
pub enum Command {
    Add(String, String, Vec<u8>, String),
    Update(String, Vec<u8>),
    Link(String, String),
    Unlink(String, String),
    Move(String, String, String),
    Revoke(String),
    Invalidate(String),
    Clear(String),
    SetPerm(String, u32),
    Chown(String, u32, u32),
    Timeout(String, u32),
    Restrict(String),
    Watch(String, i32),
    Unwatch(String),
    Advance(u64),
    Gc,
    Repeat(u32, Box<Command>),
    Sleep(u64),
    UsbAdd(String),
    UsbRemove(String),
    UsbReset(String),
    UsbError(String, u32),
    BlockAdd(String, u32, u32),
    BlockError(String, u8, u64),
    WatchDevices(i32),
    Mkdir(String),
    Touch(String),
    Mount(String, String, bool),
    Bind(String, String),
    Umount(String, bool),
    MountMove(String, String),
    Remount(String, bool),
    SetAttr(String, u64),
    Expire(String),
    Sb(String, u8, u32, u32),
    WatchMount(String, i32),
    WatchSb(String, i32),
}

/// Parses the words of one command line.
///
/// # Errors
/// A message saying what is wrong with the command (no words at all are an
/// unknown command `""`).
pub fn parse_command(w: &[&str]) -> std::result::Result<Command, String> {
    let arity = |n: usize, usage: &str| {
        if w.len() == n {
            Ok(())
        } else {
            Err(format!("usage: {usage}"))
        }
    };
    let s = |i: usize| w[i].to_string();
    let payload = |p: &str| {
        if p == "-" {
            Vec::new()
        } else {
            p.as_bytes().to_vec()
        }
    };
    Ok(match w.first().copied().unwrap_or_default() {
        "add" => {
            if !(4..=5).contains(&w.len()) {
                return Err("usage: add <type> <desc> <payload|-> [<ring>]".into());
            }
            let ring = w.get(4).map_or("@s".to_string(), |r| r.to_string());
            Command::Add(s(1), s(2), payload(w[3]), ring)
        }
        "update" => {
            arity(3, "update <key> <payload>")?;
            Command::Update(s(1), payload(w[2]))
        }
        "link" => {
            arity(3, "link <key> <ring>")?;
            Command::Link(s(1), s(2))
        }
        "unlink" => {
            arity(3, "unlink <key> <ring>")?;
            Command::Unlink(s(1), s(2))
        }
        "move" => {
            arity(4, "move <key> <from> <to>")?;
            Command::Move(s(1), s(2), s(3))
        }
        "revoke" => {
            arity(2, "revoke <key>")?;
            Command::Revoke(s(1))
        }
        "invalidate" => {
            arity(2, "invalidate <key>")?;
            Command::Invalidate(s(1))
        }
        "clear" => {
            arity(2, "clear <ring>")?;
            Command::Clear(s(1))
        }
        "setperm" => {
            arity(3, "setperm <key> <hex-perm>")?;
            Command::SetPerm(s(1), text::hex(w[2], "permission")?)
        }
        "chown" => {
            arity(4, "chown <key> <uid|-1> <gid|-1>")?;
            let id = |x: &str| -> std::result::Result<u32, String> {
                if x == "-1" {
                    Ok(u32::MAX)
                } else {
                    num(x, "id")
                }
            };
            Command::Chown(s(1), id(w[2])?, id(w[3])?)
        }
        "timeout" => {
            arity(3, "timeout <key> <secs>")?;
            Command::Timeout(s(1), num(w[2], "timeout")?)
        }
        "restrict" => {
            arity(2, "restrict <ring>")?;
            Command::Restrict(s(1))
        }
        "watch" => {
            arity(3, "watch <key> <tag>")?;
            Command::Watch(s(1), num(w[2], "tag")?)
        }
        "unwatch" => {
            arity(2, "unwatch <key>")?;
            Command::Unwatch(s(1))
        }
        "repeat" => {
            if w.len() < 3 {
                return Err("usage: repeat <n> <command>".into());
            }
            let n = num(w[1], "count")?;
            Command::Repeat(n, Box::new(parse_command(&w[2..])?))
        }
        "sleep" => {
            arity(2, "sleep <milliseconds>")?;
            Command::Sleep(num(w[1], "milliseconds")?)
        }
        "advance" => {
            arity(2, "advance <secs>")?;
            Command::Advance(num(w[1], "seconds")?)
        }
        "gc" => {
            arity(1, "gc")?;
            Command::Gc
        }
        "usb" => match (w.get(1).copied(), w.len()) {
            (Some("add"), 3) => Command::UsbAdd(s(2)),
            (Some("remove"), 3) => Command::UsbRemove(s(2)),
            (Some("reset"), 3) => Command::UsbReset(s(2)),
            (Some("error"), 4) => Command::UsbError(s(2), num(w[3], "error code")?),
            _ => return Err("usage: usb add|remove|reset <name> | usb error <name> <code>".into()),
        },
        "block" => match (w.get(1).copied(), w.len()) {
            (Some("add"), 5) => Command::BlockAdd(s(2), num(w[3], "major")?, num(w[4], "minor")?),
            (Some("error"), 5) => {
                let kind = match block::NAMES.iter().position(|n| *n == w[3]) {
                    Some(k) if k > 0 => k as u8,
                    _ => num(w[3], "error kind")?,
                };
                Command::BlockError(s(2), kind, num(w[4], "sector")?)
            }
            _ => {
                return Err(
                    "usage: block add <name> <major> <minor> | block error <name> <kind> <sector>"
                        .into(),
                )
            }
        },
        "mkdir" => {
            arity(2, "mkdir <path>")?;
            Command::Mkdir(s(1))
        }
        "touch" => {
            arity(2, "touch <path>")?;
            Command::Touch(s(1))
        }
        "mount" => match w.len() {
            3 => Command::Mount(s(1), s(2), false),
            4 if w[3] == "ro" => Command::Mount(s(1), s(2), true),
            _ => return Err("usage: mount <fstype> <path> [ro]".into()),
        },
        "bind" => {
            arity(3, "bind <source> <target>")?;
            Command::Bind(s(1), s(2))
        }
        "umount" => match w.len() {
            2 => Command::Umount(s(1), false),
            3 if w[2] == "lazy" => Command::Umount(s(1), true),
            _ => return Err("usage: umount <path> [lazy]".into()),
        },
        "mount-move" => {
            arity(3, "mount-move <from> <to>")?;
            Command::MountMove(s(1), s(2))
        }
        "remount" => match w.get(2).copied() {
            Some("ro") if w.len() == 3 => Command::Remount(s(1), true),
            Some("rw") if w.len() == 3 => Command::Remount(s(1), false),
            _ => return Err("usage: remount <path> ro|rw".into()),
        },
        "setattr" => {
            arity(3, "setattr <path> <attrs>")?;
            Command::SetAttr(s(1), num(w[2], "attributes")?)
        }
        "expire" => {
            arity(2, "expire <path>")?;
            Command::Expire(s(1))
        }
        "sb" => match (w.get(2).copied(), w.len()) {
            (Some("readonly"), 3) => Command::Sb(s(1), 0, 1, 0),
            (Some("rw"), 3) => Command::Sb(s(1), 0, 0, 0),
            (Some("error"), 5) => Command::Sb(s(1), 1, num(w[3], "error")?, num(w[4], "cookie")?),
            (Some("edquot"), 3) => Command::Sb(s(1), 2, 0, 0),
            (Some("network"), 3) => Command::Sb(s(1), 3, 0, 0),
            _ => return Err(
                "usage: sb <path> readonly|rw|edquot|network | sb <path> error <errno> <cookie>"
                    .into(),
            ),
        },
        "watch-mount" => {
            arity(3, "watch-mount <path> <tag|-1>")?;
            Command::WatchMount(s(1), num(w[2], "tag")?)
        }
        "watch-sb" => {
            arity(3, "watch-sb <path> <tag|-1>")?;
            Command::WatchSb(s(1), num(w[2], "tag")?)
        }
        "watch-devices" => {
            arity(2, "watch-devices <tag|-1>")?;
            Command::WatchDevices(num(w[1], "tag")?)
        }
        other => return Err(format!("unknown command {other:?}")),
    })
}

/// Runs commands as a process, resolving key names it has added.
pub struct Actor {
    kernel: Arc<Kernel>,
    actor: Arc<Process>,
    watcher: Option<(Arc<Process>, i32)>,
    names: HashMap<String, Serial>,
}

impl Actor {
    /// Commands run as `actor`; `watch`/`unwatch` use `watcher`'s pipe fd
    /// (without one they fail with EBADF).
    pub fn new(
        kernel: Arc<Kernel>,
        actor: Arc<Process>,
        watcher: Option<(Arc<Process>, i32)>,
    ) -> Self {
        Actor {
            kernel,
            actor,
            watcher,
            names: HashMap::new(),
        }
    }

    /// Later commands run as `actor`.
    pub fn set_actor(&mut self, actor: Arc<Process>) {
        self.actor = actor;
    }

    /// Resolves a key reference.
    ///
    /// # Errors
    /// `ENOKEY`: not a special id, a serial, or a known name.
    pub fn key(&self, r: &str) -> Result<Serial> {
        Ok(match r {
            "@t" => KEY_SPEC_THREAD_KEYRING,
            "@p" => KEY_SPEC_PROCESS_KEYRING,
            "@s" => KEY_SPEC_SESSION_KEYRING,
            "@u" => KEY_SPEC_USER_KEYRING,
            "@us" => KEY_SPEC_USER_SESSION_KEYRING,
            _ => match self.names.get(r) {
                Some(&s) => s,
                None => num::<Serial>(r, "key").map_err(|_| Errno::ENOKEY)?,
            },
        })
    }

    fn watch(&self, k: &str, tag: i32) -> Result<()> {
        let (p, fd) = self.watcher.as_ref().ok_or(Errno::EBADF)?;
        p.keyctl_watch_key(self.key(k)?, *fd, tag)
    }

    /// Runs one command.
    ///
    /// # Errors
    /// The errno the system call returned.
    pub fn exec(&mut self, c: &Command) -> Result<()> {
        let a = &self.actor;
        match c {
            Command::Add(t, d, p, ring) => {
                let s = a.add_key(t, Some(d), p, self.key(ring)?)?;
                self.names.insert(d.clone(), s);
                Ok(())
            }
            Command::Update(k, p) => a.keyctl_update(self.key(k)?, p),
            Command::Link(k, r) => a.keyctl_link(self.key(k)?, self.key(r)?),
            Command::Unlink(k, r) => a.keyctl_unlink(self.key(k)?, self.key(r)?),
            Command::Move(k, f, t) => a.keyctl_move(self.key(k)?, self.key(f)?, self.key(t)?, 0),
            Command::Revoke(k) => a.keyctl_revoke(self.key(k)?),
            Command::Invalidate(k) => a.keyctl_invalidate(self.key(k)?),
            Command::Clear(k) => a.keyctl_clear(self.key(k)?),
            Command::SetPerm(k, p) => a.keyctl_setperm(self.key(k)?, *p),
            Command::Chown(k, u, g) => a.keyctl_chown(self.key(k)?, *u, *g),
            Command::Timeout(k, s) => a.keyctl_set_timeout(self.key(k)?, *s),
            Command::Restrict(k) => a.keyctl_restrict_keyring(self.key(k)?, None, None),
            Command::Watch(k, tag) => self.watch(k, *tag),
            Command::Unwatch(k) => self.watch(k, -1),
            Command::Advance(s) => {
                self.kernel.advance_clock(*s);
                Ok(())
            }
            Command::Gc => {
                self.kernel.key_gc();
                Ok(())
            }
            Command::Repeat(n, c) => (0..*n).try_for_each(|_| self.exec(c)),
            Command::Sleep(ms) => {
                std::thread::sleep(std::time::Duration::from_millis(*ms));
                Ok(())
            }
            Command::UsbAdd(n) => self.kernel.usb_add(n).map(drop),
            Command::UsbRemove(n) => self.kernel.usb_remove(n).map(drop),
            Command::UsbReset(n) => self.kernel.usb_reset(n).map(drop),
            Command::UsbError(n, code) => self.kernel.usb_error(n, *code).map(drop),
            Command::BlockAdd(n, major, minor) => {
                self.kernel.block_add(n, *major, *minor).map(drop)
            }
            Command::BlockError(n, kind, sector) => {
                let dev = self.kernel.block_dev(n).ok_or(Errno::ENODEV)?;
                self.kernel.block_error(dev, *kind, *sector).map(drop)
            }
            Command::Mkdir(p) => a.mount_ns().mkdir(p),
            Command::Touch(p) => a.mount_ns().touch(p),
            Command::Mount(fs, p, ro) => a
                .mount_ns()
                .mount(fs, p, *ro, &*self.kernel.policy())
                .map(drop),
            Command::Bind(src, dst) => a
                .mount_ns()
                .bind(src, dst, &*self.kernel.policy())
                .map(drop),
            Command::Umount(p, lazy) => a.mount_ns().unmount(p, *lazy, &*self.kernel.policy()),
            Command::MountMove(from, to) => {
                a.mount_ns().move_mount(from, to, &*self.kernel.policy())
            }
            Command::Remount(p, ro) => a.mount_ns().remount(p, *ro, &*self.kernel.policy()),
            Command::SetAttr(p, attrs) => a.mount_ns().setattr(p, *attrs, &*self.kernel.policy()),
            Command::Expire(p) => a.mount_ns().expire(p, &*self.kernel.policy()),
            Command::Sb(p, st, e, cookie) => {
                a.mount_ns()
                    .sb_event(p, *st, *e, *cookie, &*self.kernel.policy())
            }
            Command::WatchMount(path, tag) => {
                let (p, fd) = self.watcher.as_ref().ok_or(Errno::EBADF)?;
                p.watch_mount(crate::process_consts::AT_FDCWD, path, 0, *fd, *tag)
            }
            Command::WatchSb(path, tag) => {
                let (p, fd) = self.watcher.as_ref().ok_or(Errno::EBADF)?;
                p.watch_sb(crate::process_consts::AT_FDCWD, path, 0, *fd, *tag)
            }
            Command::WatchDevices(tag) => {
                let (p, fd) = self.watcher.as_ref().ok_or(Errno::EBADF)?;
                p.watch_devices(*fd, *tag, 0)
            }
        }
    }
}

/// Parses a whole script: each command with its text (comment stripped).
///
/// # Errors
/// The first bad line: its 1-based number and what is wrong with it.
pub fn parse_script(text: &str) -> std::result::Result<Vec<(String, Command)>, ParseError> {
    text::lines(text)
        .filter(|l| !l.is_blank())
        .map(|l| match parse_command(&l.words) {
            Ok(c) => Ok((l.text.to_string(), c)),
            Err(m) => Err(l.error(m)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> std::result::Result<Command, String> {
        match parse_script(line) {
            Ok(mut cmds) if cmds.len() == 1 => Ok(cmds.remove(0).1),
            Ok(cmds) => panic!("{line:?}: {} commands", cmds.len()),
            Err(e) => Err(e.msg),
        }
    }

    /// Tabs, CRLF and a stray CR separate words as spaces do; the command's
    /// text is the line without its comment.
    #[test]
    fn script_lines_take_tabs_and_crlf() {
        let cmds = parse_script("add\tuser  a x\t@s\r\n\r\n# c\r\nupdate a\ty # z\r\n").unwrap();
        let texts: Vec<&str> = cmds.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(texts, ["add\tuser  a x\t@s", "update a\ty"]);
        assert_eq!(cmds[1].1, Command::Update("a".into(), b"y".to_vec()));
        let e = parse_script("add user a x\n\n\tupdate\r\n").unwrap_err();
        assert_eq!(
            (e.line, e.msg.as_str()),
            (3, "usage: update <key> <payload>")
        );
        assert_eq!(e.to_string(), "line 3: usage: update <key> <payload>");
    }

    /// There is no quoting: quotes and backslashes are part of a word.
    #[test]
    fn script_has_no_quoting() {
        assert_eq!(
            one("add user \"k\" \"v"),
            Ok(Command::Add(
                "user".into(),
                "\"k\"".into(),
                b"\"v".to_vec(),
                "@s".into()
            ))
        );
        // Quotes group nothing: these are a description, a payload and a ring.
        assert_eq!(
            one("add user \"two words\" r"),
            Ok(Command::Add(
                "user".into(),
                "\"two".into(),
                b"words\"".to_vec(),
                "r".into()
            ))
        );
        assert_eq!(
            one(r"update k a\ b"),
            Err("usage: update <key> <payload>".into())
        );
    }

    /// Numbers take the whole range of their field, in decimal or `0x`.
    #[test]
    fn script_numbers_at_the_edges() {
        let max = u64::MAX;
        assert_eq!(
            one(&format!("setattr /m {max}")),
            Ok(Command::SetAttr("/m".into(), max))
        );
        assert_eq!(
            one("setattr /m 0xffffffffffffffff"),
            Ok(Command::SetAttr("/m".into(), max))
        );
        assert_eq!(
            one("block error sda io 18446744073709551615"),
            Ok(Command::BlockError("sda".into(), 10, max))
        );
        assert_eq!(
            one("setattr /m 18446744073709551616"),
            Err("attributes \"18446744073709551616\" is not a number in range".into())
        );
        assert_eq!(one("watch @s -1"), Ok(Command::Watch("@s".into(), -1)));
        assert_eq!(one("watch @s +2"), Ok(Command::Watch("@s".into(), 2)));
        assert_eq!(one("watch @s 0xff"), Ok(Command::Watch("@s".into(), 255)));
        // No sign after `0x` (from_str_radix used to take one: `0x-1` was -1).
        assert_eq!(
            one("watch @s 0x-1"),
            Err("tag \"0x-1\" is not a number in range".into())
        );
        assert_eq!(
            one("chown k -1 0x0"),
            Ok(Command::Chown("k".into(), u32::MAX, 0))
        );
        assert_eq!(
            one("setperm k 3f010000"),
            Ok(Command::SetPerm("k".into(), 0x3f01_0000))
        );
        assert_eq!(
            one("setperm k 0x3f010000"),
            Ok(Command::SetPerm("k".into(), 0x3f01_0000))
        );
        assert_eq!(
            one("setperm k 0x0x3f"),
            Err("permission \"0x0x3f\" is not hex".into())
        );
    }

    /// `repeat` takes the rest of the words as its command.
    #[test]
    fn script_repeat_parses_the_rest_of_the_words() {
        assert_eq!(
            one("repeat 2\trepeat 3 update k  v"),
            Ok(Command::Repeat(
                2,
                Box::new(Command::Repeat(
                    3,
                    Box::new(Command::Update("k".into(), b"v".to_vec()))
                ))
            ))
        );
        assert_eq!(parse_command(&[]), Err("unknown command \"\"".into()));
    }
}
