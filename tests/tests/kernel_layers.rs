//! The kernel crate's modules depend one way, as its header says: the
//! system calls (`syscalls/`) → `process` → `kernel` → `task` → `fdtable`
//! → `file` → `pipe`, with no cycle among the syscall families either.
//!
//! Read from the source, as a reader checks: every `crate::m` and
//! `super::m` a module's code (not its comments) names is an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What the crate root re-exports, by the module that defines it.
const ROOT_ITEMS: &[(&str, &str)] = &[
    ("Kernel", "kernel"),
    ("KernelConfig", "kernel"),
    ("Process", "process"),
    ("OpenFile", "file"),
    ("PollFd", "syscalls::poll"),
    ("prelude", "syscalls"),
    ("process_consts", "syscalls::mount"),
    ("keyctl", "syscalls::keys"),
];

/// The lower layers, lowest first: each may name only those before it.
const LAYERS: &[&str] = &["pipe", "file", "fdtable", "task", "kernel", "process"];

/// Module name → the modules its code names.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../emu-dev/kernel/src");
    let mut files = vec![];
    for (dir, prefix) in [(src.clone(), ""), (src.join("syscalls"), "syscalls::")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let stem = p.file_stem().unwrap().to_str().unwrap().to_owned();
            if p.extension().is_some_and(|x| x == "rs") && stem != "lib" {
                let name = match stem.as_str() {
                    "mod" => "syscalls".to_owned(),
                    s => format!("{prefix}{s}"),
                };
                files.push((name, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let root: BTreeMap<_, _> = ROOT_ITEMS.iter().copied().collect();
    let mut out = BTreeMap::new();
    for (name, text) in files {
        let mut to = BTreeSet::new();
        let code = text.lines().filter(|l| !l.trim_start().starts_with("//"));
        for line in code {
            for (pat, base) in [("crate::", ""), ("super::", "syscalls::")] {
                for (i, _) in line.match_indices(pat) {
                    let rest = &line[i + pat.len()..];
                    let names: Vec<&str> = match rest.strip_prefix('{') {
                        Some(list) => list.split('}').next().unwrap().split(',').collect(),
                        None => vec![rest],
                    };
                    for n in names {
                        let n: String = n
                            .trim()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        let m = root
                            .get(n.as_str())
                            .map_or(format!("{base}{n}"), |m| m.to_string());
                        if !n.is_empty() && m != name {
                            to.insert(m);
                        }
                    }
                }
            }
        }
        out.insert(name, to);
    }
    out
}

#[test]
fn kernel_layers_point_one_way() {
    let g = edges();
    for (i, low) in LAYERS.iter().enumerate() {
        let allowed = &LAYERS[..i];
        for m in &g[*low] {
            assert!(allowed.contains(&m.as_str()), "{low} names {m}: {g:?}");
        }
    }
    // No cycle anywhere: peel modules that name nothing left.
    let mut left = g.clone();
    while !left.is_empty() {
        let leaves: Vec<String> = left
            .iter()
            .filter(|(_, to)| to.iter().all(|m| !left.contains_key(m)))
            .map(|(m, _)| m.clone())
            .collect();
        assert!(!leaves.is_empty(), "a cycle among {left:?}");
        for m in leaves {
            left.remove(&m);
        }
    }
}
