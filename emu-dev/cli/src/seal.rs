//! The seccomp filter `watchq exec` puts on the program: io_uring is
//! refused inside the tree.
//!
//! An io_uring submission is made by the real kernel from a shared ring,
//! not through a libc call the preload could interpose, so an
//! `IORING_OP_READ` of an emulated end would read the real pipe behind it
//! and an `IORING_OP_OPENAT` of `/proc/sys/kernel/keys/gc_delay` would open
//! the machine's sysctl (a root program could then change the host). The
//! filter makes `io_uring_setup`, `io_uring_enter` and `io_uring_register`
//! fail with `EPERM`, every other system call being allowed; it is put on
//! `watchq exec`'s own process just before it executes the program, so the
//! program and everything it starts inherit it (a filter survives `fork`
//! and `execve` and cannot be removed).
//!
//! `EPERM` is what `io_uring_setup` gives on a kernel booted with
//! `kernel.io_uring_disabled=2`: io_uring/io_uring.c checks
//! `io_uring_allowed()` before it reads any argument and returns `-EPERM`.
//! Such a kernel does not check `io_uring_enter` or `io_uring_register`
//! (without a ring they fail with `EBADF` or `EOPNOTSUPP` on the
//! descriptor); they are `EPERM` here too so that a ring created outside
//! the tree and inherited into it cannot be used either.
//!
//! # Privileges
//! The kernel installs a filter for a process that has `CAP_SYS_ADMIN` or
//! has set `PR_SET_NO_NEW_PRIVS` (kernel/seccomp.c,
//! `seccomp_prepare_filter()`: `EACCES` otherwise). With `CAP_SYS_ADMIN` in
//! its effective set `watchq exec` installs the filter without
//! no_new_privs; otherwise it sets no_new_privs first, and then an
//! `execve` of a setuid or setgid program in the tree (`sudo`, `su`,
//! `passwd`, `ping` on some systems) no longer gains its owner's
//! privileges, nor file capabilities. `--allow-io-uring` installs nothing.
//!
//! # The program
//! Hand-written classic BPF, in `program`: seccompiler (rust-vmm's, the
//! well-kept crate for this) kills any process whose system call comes in
//! through another architecture's entry (an i386 program started in the
//! tree, an `int 0x80`), where this filter must let them through and refuse
//! io_uring there as well, and its `apply_filter` always sets
//! no_new_privs, which a process with `CAP_SYS_ADMIN` must not be made to
//! pay. The program is seven instructions per architecture. It depends only
//! on the architecture and the system-call number, so the kernel's seccomp
//! action cache (`CONFIG_SECCOMP_CACHE`) answers every other call without
//! running it.

#![allow(unsafe_code)]

/// `AUDIT_ARCH_*` (include/uapi/linux/audit.h): the ELF machine, with
/// `__AUDIT_ARCH_64BIT` and `__AUDIT_ARCH_LE`.
const LE: u32 = 0x4000_0000;
const BIT64: u32 = 0x8000_0000;

/// `__X32_SYSCALL_BIT`: an x32 system call is an x86_64 one with this bit.
const X32_BIT: u32 = 0x4000_0000;

/// `io_uring_setup`, `io_uring_enter`, `io_uring_register`: 425, 426, 427
/// in every table that has them (the calls came after the numbers were
/// unified across architectures), compat tables included.
const FIRST: u32 = 425;
const LAST: u32 = 427;

/// The entries into this architecture's kernel a program can make system
/// calls through: (audit arch, bits cleared from the number before the
/// comparison).
#[cfg(target_arch = "x86_64")]
const ARCHES: &[(u32, u32)] = &[(62 | BIT64 | LE, X32_BIT), (3 | LE, 0)];
#[cfg(target_arch = "aarch64")]
const ARCHES: &[(u32, u32)] = &[(183 | BIT64 | LE, 0), (40 | LE, 0)];
#[cfg(target_arch = "riscv64")]
const ARCHES: &[(u32, u32)] = &[(243 | BIT64 | LE, 0)];
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
const ARCHES: &[(u32, u32)] = &[];

/// `offsetof(struct seccomp_data, nr)` and `arch`.
const NR: u32 = 0;
const ARCH: u32 = 4;

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_JMP | code | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

/// The filter: for each architecture in `arches`, a number in
/// `FIRST..=LAST` (after clearing the architecture's mask bits) returns
/// `EPERM`; everything else, and every other architecture, is allowed.
fn program(arches: &[(u32, u32)]) -> Vec<libc::sock_filter> {
    let ld = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let allow = stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW);
    let deny = stmt(
        libc::BPF_RET | libc::BPF_K,
        libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
    );
    // Each block: load nr, [clear mask], >= FIRST?, > LAST?, deny, allow.
    let block = |mask: u32| -> Vec<libc::sock_filter> {
        let mut b = vec![stmt(ld, NR)];
        if mask != 0 {
            b.push(stmt(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K, !mask));
        }
        b.push(jump(libc::BPF_JGE, FIRST, 0, 2));
        b.push(jump(libc::BPF_JGT, LAST, 1, 0));
        b.push(deny);
        b.push(allow);
        b
    };
    let blocks: Vec<_> = arches.iter().map(|&(_, mask)| block(mask)).collect();
    let mut p = vec![stmt(ld, ARCH)];
    // The arch comparisons (instructions 1..=n), `allow` for an arch not
    // listed, then the blocks: comparison i, whose next instruction is
    // 2 + i, jumps to block i at n + 2 + the lengths of the blocks before.
    let n = arches.len();
    for (i, &(arch, _)) in arches.iter().enumerate() {
        let to = n - i + blocks[..i].iter().map(Vec::len).sum::<usize>();
        p.push(jump(libc::BPF_JEQ, arch, to as u8, 0));
    }
    p.push(allow);
    for b in blocks {
        p.extend(b);
    }
    p
}

/// Puts the filter on this process (see the module's header).
///
/// # Errors
/// A message when this architecture has no table here, no_new_privs
/// cannot be set, or the kernel refuses the filter (a kernel without
/// `CONFIG_SECCOMP_FILTER`: `EINVAL`).
pub fn refuse_io_uring() -> Result<(), String> {
    if ARCHES.is_empty() {
        return Err(format!(
            "cannot refuse io_uring on {}: no system-call table for it here \
             (run with --allow-io-uring to go without)",
            std::env::consts::ARCH
        ));
    }
    let mut filter = program(ARCHES);
    let prog = libc::sock_fprog {
        len: filter.len() as libc::c_ushort,
        filter: filter.as_mut_ptr(),
    };
    let admin = rustix::thread::capabilities(None)
        .map(|c| {
            c.effective
                .contains(rustix::thread::CapabilitySet::SYS_ADMIN)
        })
        .unwrap_or(false);
    let install = || {
        // SAFETY: `prog` points at `filter`, which lives until the end of
        // this function; the kernel copies the program and keeps no
        // pointer into it.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // With CAP_SYS_ADMIN the filter needs no no_new_privs (a user
    // namespace's root can have it in the set and still be refused:
    // then no_new_privs, as for anyone).
    if admin && install().is_ok() {
        return Ok(());
    }
    rustix::thread::set_no_new_privs(true)
        .map_err(|e| format!("cannot set no_new_privs for the io_uring filter: {e}"))?;
    install().map_err(|e| format!("cannot install the io_uring filter (seccomp): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic-BPF interpreter for the instructions [`program`] uses,
    /// to check the program's verdict on (arch, nr) pairs without
    /// installing it.
    fn run(p: &[libc::sock_filter], arch: u32, nr: u32) -> u32 {
        let mut a = 0u32;
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let code = u32::from(i.code);
            pc += 1;
            match code {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    a = if i.k == ARCH { arch } else { nr };
                }
                c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => a &= i.k,
                c if c == libc::BPF_RET | libc::BPF_K => return i.k,
                c => {
                    let taken = match c & !(libc::BPF_JMP | libc::BPF_K) {
                        x if x == libc::BPF_JEQ => a == i.k,
                        x if x == libc::BPF_JGE => a >= i.k,
                        x if x == libc::BPF_JGT => a > i.k,
                        x => panic!("unexpected jump {x:#x}"),
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
            }
        }
    }

    #[test]
    fn seal_program_refuses_io_uring_on_each_entry_only() {
        let x86 = [(62 | BIT64 | LE, X32_BIT), (3 | LE, 0)];
        let p = program(&x86);
        let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let ok = libc::SECCOMP_RET_ALLOW;
        for (arch, nr, want) in [
            (x86[0].0, 425, eperm),
            (x86[0].0, 426, eperm),
            (x86[0].0, 427, eperm),
            (x86[0].0, X32_BIT | 425, eperm),
            (x86[0].0, X32_BIT | 427, eperm),
            (x86[0].0, 424, ok),
            (x86[0].0, 428, ok),
            (x86[0].0, 0, ok),
            (x86[0].0, 1, ok),
            (x86[0].0, X32_BIT | 428, ok),
            (x86[1].0, 425, eperm),
            (x86[1].0, 427, eperm),
            (x86[1].0, 3, ok),
            (x86[1].0, X32_BIT | 425, ok),
            (183 | BIT64 | LE, 425, ok),
        ] {
            assert_eq!(run(&p, arch, nr), want, "arch {arch:#x} nr {nr:#x}");
        }
        for arches in [&x86[..1], &x86[1..], &[(1, 0), (2, 0), (3, 0)][..]] {
            let p = program(arches);
            for &(arch, _) in arches {
                assert_eq!(run(&p, arch, 426), eperm);
                assert_eq!(run(&p, arch, 60), ok);
            }
            assert_eq!(run(&p, 0xdead, 426), ok);
        }
    }
}
