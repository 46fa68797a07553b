//! The `watchq` command.
#![forbid(unsafe_code)]

use std::process::ExitCode;

const USAGE: &str = "\
watchq: a userspace emulator of Linux's general notification queue

Usage:
  watchq demo       run the demo: a consumer reading key notifications
                    (decoded as the kernel's sample prints them, and in hex)
  watchq help       this text
  watchq version    the version
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") if args.len() == 1 => match watchq_emu::demo::run() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("watchq demo: {e} ({})", e.name());
                ExitCode::FAILURE
            }
        },
        None | Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("version" | "-V" | "--version") => {
            println!("watchq {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("watchq: unknown command or arguments: {other}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
