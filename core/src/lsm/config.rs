//! Policy files: load a policy without writing Rust.
//!
//! A line-based format; `#` starts a comment; a `[section]` line starts a
//! policy and several sections stack (every one must allow):
//!
//! ```text
//! [smack]
//! subject object rwxa        # a Smack rule
//! [selinux]
//! allow user_t user_t:key { view };
//! [landlock]                 # enforce the processes' Landlock-like domains
//! [permissive]
//! ```
//!
//! Lines, comments and words are [`crate::text`]'s, as in the other line
//! languages; errors are its [`ParseError`].

use super::{Landlock, Permissive, Policy, SeLinux, Smack, Stack};
use crate::text::{self, ParseError};
use std::sync::Arc;

enum Section {
    Smack(Smack),
    SeLinux(SeLinux),
    Landlock,
    Permissive,
}

impl Section {
    fn into_policy(self) -> Arc<dyn Policy> {
        match self {
            Section::Smack(s) => Arc::new(s),
            Section::SeLinux(s) => Arc::new(s),
            Section::Landlock => Arc::new(Landlock),
            Section::Permissive => Arc::new(Permissive),
        }
    }
}

/// Parses a policy file: one section is that policy, several are a [`Stack`].
///
/// # Errors
/// The first bad line: an unknown section, a rule outside a section, a
/// malformed rule, or no section at all.
pub fn parse_policy(text: &str) -> Result<Arc<dyn Policy>, ParseError> {
    let mut sections: Vec<Section> = Vec::new();
    for l in text::lines(text).filter(|l| !l.is_blank()) {
        let line = l.text;
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push(match name.trim() {
                "smack" => Section::Smack(Smack::new()),
                "selinux" => Section::SeLinux(SeLinux::new()),
                "landlock" => Section::Landlock,
                "permissive" => Section::Permissive,
                other => {
                    return Err(l.error(format!(
                        "unknown policy {other:?} (smack, selinux, landlock, permissive)"
                    )))
                }
            });
            continue;
        }
        match sections.last_mut() {
            None => return Err(l.error("a rule before any [section]")),
            Some(Section::Smack(s)) => {
                let [subject, object, access] = l.words[..] else {
                    return Err(l.error("a Smack rule is `subject object access`"));
                };
                s.add_rule(subject, object, access).map_err(|_| {
                    l.error(format!(
                        "bad Smack rule {line:?} (access letters: rwxatl or -)"
                    ))
                })?;
            }
            Some(Section::SeLinux(s)) => s.parse_rule(line).map_err(|m| l.error(m))?,
            Some(Section::Landlock) | Some(Section::Permissive) => {
                return Err(l.error("this policy takes no rules"));
            }
        }
    }
    let mut policies: Vec<Arc<dyn Policy>> =
        sections.into_iter().map(Section::into_policy).collect();
    match policies.len() {
        0 => Err(ParseError::new(
            text::last_line(text),
            "no [section]: nothing to enforce",
        )),
        1 => Ok(policies.remove(0)),
        _ => Ok(Arc::new(Stack::new(policies))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_of(text: &str) -> (usize, String) {
        let e = parse_policy(text).err().expect(text);
        (e.line, e.msg)
    }

    /// Tabs, CRLF line ends, spaces inside the brackets and comments after
    /// a section are the tokenizer's: they read as spaces and line ends do.
    #[test]
    fn policy_file_odd_whitespace_and_comments() {
        let text = "[ smack ]\t# rules\r\na\tb\tr\r\n\r\n[selinux]#x\r\n\
                    allow\tt\tu:key\t{\tview\tread\t};\r\nallow t u:mount\twatch;\r\n";
        assert_eq!(parse_policy(text).unwrap().name(), "smack+selinux");
        // The SELinux rule's last word is its one permission, whatever
        // whitespace comes before it.
        assert_eq!(
            line_of("[selinux]\nallow t u:key view\tread;\n"),
            (2, "too many words before the permissions".into())
        );
    }

    /// A bad line is named by its number in the file, blank and comment
    /// lines counted; an error about the whole file names its last line.
    #[test]
    fn policy_file_error_lines() {
        assert_eq!(
            line_of("# a\n\n[smack]\n\n  # b\na b\n"),
            (6, "a Smack rule is `subject object access`".into())
        );
        assert_eq!(
            line_of("[smack]\na b c d\n"),
            (2, "a Smack rule is `subject object access`".into())
        );
        assert_eq!(line_of("# one\n# two\n\n").0, 3);
        assert_eq!(line_of("").0, 1);
        // A `#` inside a word ends the line there.
        assert_eq!(
            line_of("[smack]\na b#c r\n"),
            (2, "a Smack rule is `subject object access`".into())
        );
    }
}
