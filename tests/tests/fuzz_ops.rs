//! Fuzz-style: arbitrary sequences of syscalls with arbitrary arguments on
//! one process, interleaved with posts. Nothing panics, every errno is one
//! the syscall documents, and every queue's statistics add up afterwards
//! (`posted == read + lost + queued + discarded`).

use proptest::prelude::*;
use std::sync::Arc;
use watchq_core::uapi::*;
use watchq_core::{
    add_watch_to_object, post_watch_notification, Errno, Notification, Watch, WatchList, WatchQueue,
};
use watchq_kernel::prelude::*;
use watchq_kernel::{Kernel, KernelConfig, PollFd};

#[derive(Clone, Debug)]
enum Op {
    Pipe2(u32),
    SetSize(i32, u64),
    SetFilter(i32, Vec<u8>),
    Ioctl(i32, u64, u64, Option<Vec<u8>>),
    Read(i32, usize),
    Write(i32, Vec<u8>),
    Close(i32),
    Dup(i32),
    Dup2(i32, i32),
    Fcntl(i32, i32, u64),
    Poll(Vec<(i32, u16)>),
    Splice(i32, i32, usize, u32),
    Tee(i32, i32, usize, u32),
    Vmsplice(i32, usize, u32),
    Watch(i32, u64, u8),
    Post(u8, u64),
    Fork,
}

fn fd() -> impl Strategy<Value = i32> {
    prop_oneof![4 => 0..12i32, 1 => any::<i32>()]
}

fn op() -> impl Strategy<Value = Op> {
    let flags = prop_oneof![
        Just(O_NOTIFICATION_PIPE),
        Just(O_NOTIFICATION_PIPE | O_NONBLOCK),
        Just(O_NONBLOCK),
        Just(O_NONBLOCK | O_DIRECT),
        any::<u32>(),
    ];
    let cmd = prop_oneof![
        Just(IOC_WATCH_QUEUE_SET_SIZE),
        Just(IOC_WATCH_QUEUE_SET_FILTER),
        Just(FIONREAD),
        Just(FIONBIO),
        Just(FIOCLEX),
        any::<u64>(),
    ];
    let fcmd = prop_oneof![
        Just(F_GETFL),
        Just(F_SETFL),
        Just(F_GETPIPE_SZ),
        Just(F_SETPIPE_SZ),
        Just(F_DUPFD),
        Just(F_GETFD),
        any::<i32>(),
    ];
    prop_oneof![
        2 => flags.prop_map(Op::Pipe2),
        2 => (fd(), prop_oneof![0..600u64, any::<u64>()]).prop_map(|(f, n)| Op::SetSize(f, n)),
        1 => (fd(), proptest::collection::vec(any::<u8>(), 0..120)).prop_map(|(f, b)| Op::SetFilter(f, b)),
        1 => (fd(), cmd, any::<u64>(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)))
            .prop_map(|(f, c, a, m)| Op::Ioctl(f, c, a, m)),
        4 => (fd(), 0..600usize).prop_map(|(f, n)| Op::Read(f, n)),
        1 => (fd(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(f, b)| Op::Write(f, b)),
        1 => fd().prop_map(Op::Close),
        1 => fd().prop_map(Op::Dup),
        1 => (fd(), fd()).prop_map(|(a, b)| Op::Dup2(a, b)),
        1 => (fd(), fcmd, prop_oneof![0..70000u64, any::<u64>()]).prop_map(|(f, c, a)| Op::Fcntl(f, c, a)),
        1 => proptest::collection::vec((fd(), any::<u16>()), 0..4).prop_map(Op::Poll),
        1 => (fd(), fd(), 0..5000usize, 0..16u32).prop_map(|(a, b, n, fl)| Op::Splice(a, b, n, fl)),
        1 => (fd(), fd(), 0..5000usize, 0..16u32).prop_map(|(a, b, n, fl)| Op::Tee(a, b, n, fl)),
        1 => (fd(), 0..64usize, 0..16u32).prop_map(|(f, n, fl)| Op::Vmsplice(f, n, fl)),
        2 => (fd(), 0..4u64, any::<u8>()).prop_map(|(f, id, t)| Op::Watch(f, id, t)),
        6 => (0..8u8, 0..4u64).prop_map(|(s, id)| Op::Post(s, id)),
        1 => Just(Op::Fork),
    ]
}

fn check<T>(r: Result<T, Errno>) {
    if let Err(e) = r {
        assert!(
            watchq_kernel::fuzz::SYSCALL_ERRNOS.contains(&e),
            "unexpected errno {e:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_syscall_sequences_never_panic_and_stats_add_up(ops in proptest::collection::vec(op(), 1..60)) {
        let k = Kernel::new(KernelConfig::default());
        let mut p = k.spawn(0, 0);
        // Everything blocking is bounded by an alarm.
        p.set_alarm(Some(std::time::Duration::ZERO));
        let list = WatchList::new();
        let mut queues: Vec<Arc<WatchQueue>> = Vec::new();
        for op in ops {
            match op {
                Op::Pipe2(fl) => check(p.pipe2(fl)),
                Op::SetSize(f, n) => check(p.set_queue_size(f, n)),
                Op::SetFilter(f, b) => check(p.set_queue_filter(f, Some(&b))),
                Op::Ioctl(f, c, a, mut m) => check(p.ioctl(f, c, a, m.as_deref_mut())),
                Op::Read(f, n) => {
                    let mut b = vec![0u8; n];
                    match p.read(f, &mut b) {
                        Ok(got) => {
                            if p.watch_queue(f).is_ok() {
                                prop_assert!(Notification::decode_all(&b[..got]).is_ok(), "partial record read");
                            }
                        }
                        Err(Errno::EINTR) => {}
                        Err(e) => check::<()>(Err(e)),
                    }
                }
                Op::Write(f, b) => check(p.write(f, &b)),
                Op::Close(f) => check(p.close(f)),
                Op::Dup(f) => check(p.dup(f)),
                Op::Dup2(a, b) => check(p.dup2(a, b)),
                Op::Fcntl(f, c, a) => check(p.fcntl(f, c, a)),
                Op::Poll(v) => {
                    let mut fds: Vec<PollFd> = v.iter().map(|&(f, e)| PollFd::new(f, e)).collect();
                    check(p.poll(&mut fds, 0));
                }
                Op::Splice(a, b, n, fl) => match p.splice(a, None, b, None, n, fl) {
                    Err(Errno::EINTR) => {}
                    r => check(r),
                },
                Op::Tee(a, b, n, fl) => match p.tee(a, b, n, fl) {
                    Err(Errno::EINTR) => {}
                    r => check(r),
                },
                Op::Vmsplice(f, n, fl) => {
                    let mut b = vec![0u8; n];
                    match p.vmsplice(f, &mut [&mut b[..]], fl) {
                        Err(Errno::EINTR) => {}
                        r => check(r),
                    }
                }
                Op::Watch(f, id, tag) => {
                    if let Ok(q) = p.watch_queue(f) {
                        let w = Watch::new(&q, &list, id, tag, p.cred());
                        check(add_watch_to_object(&w, 1024));
                        if !queues.iter().any(|x| Arc::ptr_eq(x, &q)) {
                            queues.push(q);
                        }
                    }
                }
                Op::Post(st, id) => {
                    let n = Notification::key(st, id as u32, 0);
                    post_watch_notification(Some(&list), &n, &p.cred(), id, &*k.policy());
                }
                Op::Fork => {
                    let child = p.fork();
                    child.set_alarm(Some(std::time::Duration::ZERO));
                    p.exit();
                    p = child;
                }
            }
        }
        for q in &queues {
            let s = q.stats();
            prop_assert_eq!(s.posted, s.read + s.lost + s.queued + s.discarded, "{:?}", s);
        }
    }

    #[test]
    fn fuzz_filter_blobs_never_panic(blob in proptest::collection::vec(any::<u8>(), 0..800)) {
        let k = Kernel::new(KernelConfig::default());
        let p = k.spawn(0, 0);
        let [r, _w] = p.pipe2(O_NOTIFICATION_PIPE).unwrap();
        match p.set_queue_filter(r, Some(&blob)) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::EFAULT) => {}
            Err(e) => prop_assert!(false, "unexpected {e:?}"),
        }
    }
}
