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

use super::{Landlock, Permissive, Policy, SeLinux, Smack, Stack};
use std::fmt;
use std::sync::Arc;

/// What is wrong with a policy file, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

impl std::error::Error for PolicyError {}

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
pub fn parse_policy(text: &str) -> Result<Arc<dyn Policy>, PolicyError> {
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let err = |msg: String| PolicyError { line: i + 1, msg };
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push(match name.trim() {
                "smack" => Section::Smack(Smack::new()),
                "selinux" => Section::SeLinux(SeLinux::new()),
                "landlock" => Section::Landlock,
                "permissive" => Section::Permissive,
                other => {
                    return Err(err(format!(
                        "unknown policy {other:?} (smack, selinux, landlock, permissive)"
                    )))
                }
            });
            continue;
        }
        match sections.last_mut() {
            None => return Err(err("a rule before any [section]".into())),
            Some(Section::Smack(s)) => {
                let w: Vec<&str> = line.split_whitespace().collect();
                if w.len() != 3 {
                    return Err(err("a Smack rule is `subject object access`".into()));
                }
                s.add_rule(w[0], w[1], w[2]).map_err(|_| {
                    err(format!(
                        "bad Smack rule {line:?} (access letters: rwxatl or -)"
                    ))
                })?;
            }
            Some(Section::SeLinux(s)) => s.parse_rule(line).map_err(&err)?,
            Some(Section::Landlock) | Some(Section::Permissive) => {
                return Err(err("this policy takes no rules".into()));
            }
        }
    }
    let mut policies: Vec<Arc<dyn Policy>> =
        sections.into_iter().map(Section::into_policy).collect();
    match policies.len() {
        0 => Err(PolicyError {
            line: text.lines().count().max(1),
            msg: "no [section]: nothing to enforce".into(),
        }),
        1 => Ok(policies.remove(0)),
        _ => Ok(Arc::new(Stack::new(policies))),
    }
}
