// SPDX-License-Identifier: MIT OR Apache-2.0
//! Command dispatch: parse the command line (reading `--config` as the sudo caller when root
//! runs under sudo), print help or version, set up logging, run the command, map its result to
//! the documented exit status. Must not do any command's work itself.

use std::process::ExitCode;

use crate::config::{self, options, Command};
use crate::error::EXIT_USAGE;
use crate::{check, list, logging, privilege, reader, run};

pub fn main() -> ExitCode {
    if let Err(e) = privilege::never_dumpable() {
        eprintln!("tunwire: error: {e}");
        return ExitCode::from(crate::error::EXIT_FAILURE);
    }
    // Wireshark's extcap calls have a grammar of their own, and need no privilege at all.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if crate::extcap::is_call(&args) {
        privilege::drop_all();
        logging::init(-1);
        return finish(crate::extcap::main(&args));
    }
    // Parse and validate everything; nothing touches the kernel before this is whole.
    let read = |path: &std::path::Path| match privilege::sudo_caller() {
        Some(caller) => privilege::as_identity(&caller, || config::read_file(path))
            .unwrap_or_else(|e| Err(e.to_string())),
        None => config::read_file(path),
    };
    let cfg = match config::parse(args, &read) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("tunwire: error: {e}\n  try 'tunwire --help'");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match cfg.command {
        Command::Help => {
            out(&options::usage());
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            out(&format!("tunwire {}\n", env!("CARGO_PKG_VERSION")));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    logging::init(cfg.verbosity);
    if matches!(cfg.command, Command::List | Command::Capture) {
        // Reading needs no privilege: a member's file capability is dropped at once.
        privilege::drop_all();
    }
    let result = match cfg.command {
        Command::Check => check::check(&cfg),
        Command::Teardown => run::teardown(&cfg),
        Command::List => list::list(cfg.json),
        Command::Capture if cfg.capture_cmd.list => reader::list(),
        Command::Capture => reader::capture(
            &reader::Request {
                wire: cfg.capture_cmd.wire.clone(),
                snaplen: cfg.capture_cmd.snaplen,
                count: cfg.capture_cmd.count,
                duration: cfg.capture_cmd.duration,
            },
            cfg.capture_cmd.write.as_deref(),
        ),
        _ => run::start(&cfg),
    };
    finish(result)
}

/// The exit status of a command's result; an error is logged first.
fn finish(result: crate::error::Result<u8>) -> ExitCode {
    ExitCode::from(result.unwrap_or_else(|e| {
        log::error!("{e}");
        e.exit_code()
    }))
}

/// Print `text` to stdout. A reader that went away (`tunwire check | head`) is not an error
/// and must not panic as `print!` would; another failure is reported once.
pub fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => eprintln!("tunwire: warning: cannot write to stdout: {e}"),
    }
}
