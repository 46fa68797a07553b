//! The `watchq` command.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use watchq::format::Format;
use watchq::monitor::{self, MonitorOptions};

/// watchq: a userspace emulator of Linux's general notification queue.
///
/// Notification pipes, their ioctls, key, mount, superblock and device
/// notifications, and the exact bytes read() returns, without a kernel
/// built with CONFIG_WATCH_QUEUE. `watchq COMMAND --help` shows each
/// command with examples and its exit statuses; docs/getting-started.md
/// is the guide.
#[derive(Parser)]
#[command(version, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the demo: a consumer reading key notifications, printed and in hex.
    ///
    /// A built-in consumer program on an emulated notification pipe: the
    /// records are printed as the kernel's sample consumer prints them.
    ///
    /// Exit status: 0 printed; 1 an emulated call failed.
    ///
    /// Examples:
    ///   watchq demo
    ///   watchq demo | grep -c NOTIFY
    #[command(verbatim_doc_comment)]
    Demo,
    /// Run a scenario script (docs/scenarios.md).
    ///
    /// A scenario is processes, keys, mounts, devices, queues, watches,
    /// policies, reads, and `expect` lines that say what the kernel must
    /// answer.
    ///
    /// Exit status: 0 the scenario ran and every expect line held; 1 an
    /// expect line failed (the diff is on stderr); 2 the script is malformed
    /// or cannot be read.
    ///
    /// Examples:
    ///   watchq run examples/keys.scenario
    ///   watchq run --format json examples/devices.scenario
    ///   echo 'queue q pipe size 4' | watchq run -
    #[command(verbatim_doc_comment)]
    Run {
        /// Output format of the records read.
        #[arg(long, short, value_enum, default_value_t = Format::Sample)]
        format: Format,
        /// Only check: print nothing but failures.
        #[arg(long, short)]
        quiet: bool,
        /// The scenario (`-`: stdin).
        file: PathBuf,
    },
    /// Watch a key (or a scenario's queue) and print records as they come.
    ///
    /// Without --queue: watch a key on an emulated notification pipe while
    /// key, mount and device commands (docs/monitor.md; from SCRIPT, or
    /// stdin) change the world, and print what the pipe reads. With --queue:
    /// run a scenario (docs/scenarios.md) and print that queue's records.
    ///
    /// Exit status: 0 the script ran to its end; 2 a bad script line, a bad
    /// option or an unreadable script.
    ///
    /// Examples:
    ///   watchq monitor examples/monitor-keys.txt
    ///   echo 'add user k v' | watchq monitor --format sample
    ///   watchq monitor --size 1 --filter pl examples/monitor-keys.txt
    ///   watchq monitor --queue q --format json examples/mounts.scenario
    #[command(verbatim_doc_comment)]
    Monitor {
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = Format::Keyctl)]
        format: Format,
        /// IOC_WATCH_QUEUE_SET_SIZE, in notes (1..512).
        #[arg(long, short, default_value_t = 256)]
        size: u64,
        /// Subtype filter letters as `keyctl watch -f` takes them (iplncrvs).
        #[arg(long)]
        filter: Option<String>,
        /// The key to watch with tag 1 (@s, @u, @us, @p, @t or a serial).
        #[arg(long, short, default_value = "@s")]
        key: String,
        /// Also watch the global device list (block and USB events) with tag 2.
        #[arg(long)]
        devices: bool,
        /// Follow queue NAME of a scenario script instead (`watchq run`'s
        /// format, docs/scenarios.md): print its records as each step posts
        /// them. The script's own queue steps replace --size, --filter,
        /// --key and --devices, which are refused with it.
        #[arg(long, value_name = "NAME", conflicts_with_all = ["size", "filter", "key", "devices"])]
        queue: Option<String>,
        /// The command script (`-` or absent: stdin). See `docs/monitor.md`.
        script: Option<PathBuf>,
    },
    /// Measure the rings and the post path against crossbeam, rtrb and pipe(2).
    ///
    /// Runs watchq's rings and post path beside the queues people would
    /// otherwise use (crossbeam ArrayQueue, rtrb, a real pipe), one record
    /// per call and in read()-sized batches, in alternating rounds, and the
    /// cost curves (producers, record size, queue capacity, watches, fan-out)
    /// beside the physical floor; several runs, so every ratio comes with
    /// its range. Prints the ratio table with the targets and writes
    /// report.md, throughput.svg and one plot per curve (docs/performance.md).
    /// A full run from a --release build (`cargo run --release -p watchq --
    /// bench`) takes a few minutes on 2 idle cores.
    ///
    /// Exit status: 0 report written; 2 the output directory cannot be made.
    ///
    /// Examples:
    ///   watchq bench --quick --out bench-smoke
    ///   watchq bench --runs 1 --only ring/spsc --out bench-spsc
    ///   watchq bench --quick --rounds 3 --out bench-smoke | grep block/wakeups
    #[command(verbatim_doc_comment)]
    Bench {
        /// Where to write report.md and the plots.
        #[arg(long, default_value = "bench-report")]
        out: PathBuf,
        /// Rounds per case in each run (the median is taken).
        #[arg(long, default_value_t = 11)]
        rounds: usize,
        /// Runs of the whole plan (each ratio's range is over the runs).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Only the cases whose group starts with this (`ring/spsc`,
        /// `curve/`), and the floors.
        #[arg(long, value_name = "GROUP")]
        only: Option<String>,
        /// A smoke run with 1/1000 of the records (its figures mean nothing).
        #[arg(long)]
        quick: bool,
    },
    /// Run an unmodified program on watchq (LD_PRELOAD).
    ///
    /// The program's notification pipes, ioctls, keys and watches are
    /// emulated, on one kernel for the program and all its descendants
    /// (started for it, or the running one at --join or $WATCHQ_KERNEL);
    /// the rest of its I/O is untouched (docs/exec.md).
    ///
    /// Exit status: the program's own; 127 the program or the preload
    /// library cannot be run; 2 a bad setting (policy or script file, log).
    ///
    /// Examples:
    ///   watchq exec -- keyctl supports
    ///   watchq exec --no-notifications -- keyctl supports
    ///   watchq exec --log calls.log -- keyctl show @s
    ///   watchq exec -- sh -c 'k=$(keyctl add user t x @s); keyctl print $k'
    #[command(verbatim_doc_comment)]
    Exec {
        /// Run the program on the running kernel at SOCKET (`watchq
        /// kernel` prints it; default: $WATCHQ_KERNEL when set).
        #[arg(long, value_name = "SOCKET")]
        join: Option<PathBuf>,
        /// Emulate a kernel without CONFIG_WATCH_QUEUE (pipe2 fails with ENOPKG).
        #[arg(long)]
        no_notifications: bool,
        /// Log every emulated call to FILE.
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
        /// Run this key script in the background while the program runs.
        #[arg(long, value_name = "FILE")]
        script: Option<PathBuf>,
        /// Seconds before a revoked or expired key is collected (default 300).
        #[arg(long, value_name = "SECS")]
        gc_delay: Option<u64>,
        /// A security policy file to put in force (docs/policy.md).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// The program the kernel runs to construct a key request_key(2)
        /// asks for, in place of /sbin/request-key (same arguments).
        #[arg(long, value_name = "PROGRAM")]
        request_key: Option<PathBuf>,
        /// Do not refuse io_uring. By default io_uring_setup, _enter and
        /// _register fail with EPERM in the tree (a seccomp filter: their
        /// requests would reach the real kernel, and the machine's
        /// /proc/sys/kernel/keys, past the emulation); without
        /// CAP_SYS_ADMIN the filter needs no_new_privs, so setuid programs
        /// in the tree gain no privileges (docs/exec.md).
        #[arg(long)]
        allow_io_uring: bool,
        /// The program and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// Start one emulated kernel that separate processes join.
    ///
    /// Prints how to join it (`export $(watchq kernel)`): WATCHQ_KERNEL,
    /// the socket that `watchq exec` (and the preload library in every
    /// process under it) connects to, and WATCHQ_KERNEL_PID. SIGTERM
    /// stops it and removes its socket (docs/exec.md).
    ///
    /// Exit status: 0 started (or, with --foreground, stopped by a
    /// signal); 2 a bad setting; 1 the kernel could not start.
    ///
    /// Examples:
    ///   export $(watchq kernel) && watchq exec -- keyctl add user k v @u && kill $WATCHQ_KERNEL_PID
    #[command(verbatim_doc_comment)]
    Kernel {
        /// Run in this process until SIGTERM or SIGINT.
        #[arg(long)]
        foreground: bool,
        /// Emulate a kernel without CONFIG_WATCH_QUEUE.
        #[arg(long)]
        no_notifications: bool,
        /// Log every call to FILE.
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
        /// Seconds before a revoked or expired key is collected (default 300).
        #[arg(long, value_name = "SECS")]
        gc_delay: Option<u64>,
        /// A security policy file to put in force (docs/policy.md).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// The program the kernel runs to construct a key request_key(2)
        /// asks for, in place of /sbin/request-key (same arguments).
        #[arg(long, value_name = "PROGRAM")]
        request_key: Option<PathBuf>,
        /// A key script run as the --for-tree process once it joins.
        #[arg(long, value_name = "FILE", hide = true)]
        script: Option<PathBuf>,
        /// Stop once process PID and every process served have exited.
        #[arg(long, value_name = "PID", hide = true)]
        for_tree: Option<u32>,
        /// (internal) stdout goes to /dev/null after the join lines.
        #[arg(long, hide = true)]
        detach: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Kernel {
            foreground,
            no_notifications,
            log,
            gc_delay,
            policy,
            request_key,
            script,
            for_tree,
            detach,
        } => {
            let opts = watchq::kernel::KernelOptions {
                no_notifications,
                gc_delay,
                policy,
                log,
                script,
                for_tree,
                request_key,
            };
            let r = if foreground {
                watchq::kernel::serve(&opts, &mut std::io::stdout(), detach)
            } else {
                watchq::kernel::start_background(&opts).map(|(_, lines)| print!("{lines}"))
            };
            match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("watchq kernel: {e}");
                    ExitCode::from(if e.starts_with("--") { 2 } else { 1 })
                }
            }
        }
        Cmd::Exec {
            join,
            no_notifications,
            log,
            script,
            gc_delay,
            policy,
            request_key,
            allow_io_uring,
            command,
        } => {
            let opts = watchq::exec::ExecOptions {
                join,
                no_notifications,
                log,
                script,
                gc_delay,
                policy,
                request_key,
                allow_io_uring,
            };
            let Err(e) = watchq::exec::run(&opts, &command[0], &command[1..]);
            eprintln!("watchq exec: {e}");
            // A bad setting is 2, as the library's own check says it.
            ExitCode::from(if e.starts_with("--") { 2 } else { 127 })
        }
        Cmd::Bench {
            out,
            rounds,
            runs,
            only,
            quick,
        } => {
            // The directory first: a bad one is better known before the run.
            if let Err(e) = std::fs::create_dir_all(&out) {
                eprintln!("watchq bench: {}: {e}", out.display());
                return ExitCode::from(2);
            }
            let shrink = if quick { 1000 } else { 1 };
            // indicatif draws on stderr only when it is a terminal (at most
            // 20 redraws a second) and clears the bar when the run is done;
            // a CI log or a pipe gets no bar at all.
            let bar = ProgressBar::new(0).with_style(
                ProgressStyle::with_template("[{bar:40}] {pos}/{len}")
                    .expect("a valid template")
                    .progress_chars("## "),
            );
            let suite = watchq_bench::run_suite(
                rounds.max(1),
                runs.max(1),
                shrink,
                only.as_deref(),
                |done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                },
            );
            bar.finish_and_clear();
            let wakeups = watchq_bench::wakeups((1 << 20) / shrink).line();
            print!("{}\n{wakeups}\n{}", suite.table(), suite.floor_table());
            let mut files = vec![
                ("report.md".to_string(), suite.report(&wakeups)),
                (
                    "throughput.svg".to_string(),
                    watchq_bench::plot::bars(&suite),
                ),
            ];
            for (group, what, peer) in watchq_bench::suite::CURVES {
                if !suite.params(group).is_empty() {
                    files.push((
                        format!("{}.svg", group.replace('/', "-")),
                        watchq_bench::plot::curve(&suite, group, what, peer),
                    ));
                }
            }
            let written = files
                .iter()
                .try_for_each(|(name, text)| std::fs::write(out.join(name), text));
            match written {
                Ok(()) => {
                    eprintln!(
                        "watchq bench: wrote {}/report.md and throughput.svg",
                        out.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("watchq bench: {}: {e}", out.display());
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Run {
            format,
            quiet,
            file,
        } => run_scenario("run", &file, format, None, quiet),
        Cmd::Demo => match watchq::demo::run() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("watchq demo: {e} ({})", e.name());
                ExitCode::FAILURE
            }
        },
        Cmd::Monitor {
            format,
            queue: Some(queue),
            script,
            ..
        } => {
            let file = script.unwrap_or_else(|| PathBuf::from("-"));
            run_scenario("monitor", &file, format, Some(&queue), false)
        }
        Cmd::Monitor {
            format,
            size,
            filter,
            key,
            devices,
            script,
            queue: None,
        } => {
            let opts = MonitorOptions {
                format,
                size,
                filter,
                key,
                devices,
            };
            let input: Box<dyn BufRead> = match script.as_deref() {
                None => Box::new(std::io::stdin().lock()),
                Some(p) if p.as_os_str() == "-" => Box::new(std::io::stdin().lock()),
                Some(p) => match std::fs::File::open(p) {
                    Ok(f) => Box::new(BufReader::new(f)),
                    Err(e) => {
                        eprintln!("watchq monitor: {}: {e}", p.display());
                        return ExitCode::from(2);
                    }
                },
            };
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let r = monitor::run(&opts, input, &mut out);
            let _ = out.flush();
            match r {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    let name = script.map_or("stdin".into(), |p| p.display().to_string());
                    eprintln!("watchq monitor: {name}: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// `watchq run FILE` and `watchq monitor --queue Q FILE`: reads the
/// scenario (`-`: stdin), runs it, and maps the outcome to the documented
/// exit status (0 ran and held, 1 an expect line failed, 2 a bad script).
fn run_scenario(
    cmd: &str,
    file: &std::path::Path,
    format: Format,
    follow: Option<&str>,
    quiet: bool,
) -> ExitCode {
    use watchq::scenario::{parse, run_following, ScenarioError};
    let (bytes, base, name) = if file.as_os_str() == "-" {
        let mut t = Vec::new();
        if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut t) {
            eprintln!("watchq {cmd}: stdin: {e}");
            return ExitCode::from(2);
        }
        (t, PathBuf::from("."), "stdin".to_string())
    } else {
        match std::fs::read(file) {
            Ok(t) => (
                t,
                file.parent().map(PathBuf::from).unwrap_or_default(),
                file.display().to_string(),
            ),
            Err(e) => {
                eprintln!("watchq {cmd}: {}: {e}", file.display());
                return ExitCode::from(2);
            }
        }
    };
    let stdout = std::io::stdout();
    let mut out: Box<dyn Write> = if quiet {
        Box::new(std::io::sink())
    } else {
        Box::new(stdout.lock())
    };
    let r = watchq_core::text::from_utf8(&bytes)
        .map_err(ScenarioError::Parse)
        .and_then(|text| parse(text, &base))
        .and_then(|lines| run_following(&lines, format, follow, &mut out));
    let _ = out.flush();
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("watchq {cmd}: {name}: {e}");
            ExitCode::from(if matches!(e, ScenarioError::Expect { .. }) {
                1
            } else {
                2
            })
        }
    }
}
