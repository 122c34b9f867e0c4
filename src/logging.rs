// SPDX-License-Identifier: MIT OR Apache-2.0
//! Log setup: env_logger with our own format. On a terminal: `tunwire: msg`. Under systemd
//! (JOURNAL_STREAM set): `<N>msg` with a syslog priority and no timestamp, since the journal
//! adds its own. Elsewhere (a log file): an RFC 3339 UTC timestamp first. RUST_LOG wins over
//! -v/-q when set.

use std::io::{IsTerminal, Write};
use std::time::SystemTime;

use log::{Level, LevelFilter};

#[derive(Clone, Copy)]
enum Style {
    Terminal,
    Journal,
    File,
}

pub fn init(verbosity: i8) {
    let style = if std::env::var_os("JOURNAL_STREAM").is_some() {
        Style::Journal
    } else if std::io::stderr().is_terminal() {
        Style::Terminal
    } else {
        Style::File
    };
    let level = match verbosity {
        i8::MIN..=-1 => LevelFilter::Warn,
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level);
    // The audit trail is not chatter: -q does not silence it.
    builder.filter_module("tunwire::audit", LevelFilter::Info.max(level));
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    builder.format(move |buf, record| {
        let prefix = match record.level() {
            Level::Error => "error: ",
            Level::Warn => "warning: ",
            _ => "",
        };
        match style {
            Style::Journal => writeln!(
                buf,
                "<{}>{prefix}{}",
                syslog_priority(record.level()),
                record.args()
            ),
            Style::Terminal => writeln!(buf, "tunwire: {prefix}{}", record.args()),
            Style::File => writeln!(
                buf,
                "{} tunwire: {prefix}{}",
                crate::clock::rfc3339_millis(SystemTime::now()),
                record.args()
            ),
        }
    });
    builder.init();
}

fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities() {
        assert_eq!(syslog_priority(Level::Error), 3);
        assert_eq!(syslog_priority(Level::Info), 6);
    }
}
