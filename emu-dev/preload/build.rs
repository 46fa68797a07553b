//! Builds the C shims (the variadic libc entry points) and exports them.
//!
//! rustc gives a cdylib a version script that hides every symbol it did
//! not define; a second, anonymous version script naming the C symbols is
//! merged with it by the linker, so they are exported as well.

use std::{env, fs, path::PathBuf};

/// The entry points defined in C (variadic in libc, the exec family, and
/// the process tree's: fork, daemon and pthread_create, `tree.rs`).
const C_EXPORTS: &[&str] = &[
    "ioctl",
    "syscall",
    "fcntl",
    "fcntl64",
    "open",
    "open64",
    "openat",
    "openat64",
    "execve",
    "execvpe",
    "execv",
    "execvp",
    "execl",
    "execlp",
    "execle",
    "posix_spawn",
    "posix_spawnp",
    "fork",
    "daemon",
    "pthread_create",
];

fn main() {
    println!("cargo:rerun-if-changed=src/shim.c");
    cc::Build::new()
        .file("src/shim.c")
        .flag_if_supported("-fvisibility=default")
        .warnings(true)
        .compile("watchq_shim");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let map = out.join("exports.map");
    let globals: String = C_EXPORTS.iter().map(|s| format!("{s}; ")).collect();
    fs::write(&map, format!("{{ global: {globals}}};\n")).expect("write the version script");
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        map.display()
    );
}
