// SPDX-License-Identifier: MIT OR Apache-2.0
//! Log setup: env_logger with our own format. On a terminal: `tunwire: msg`. Under systemd
//! (JOURNAL_STREAM set): `<N>msg` with a syslog priority and no timestamp, since the journal
//! adds its own. Elsewhere (a log file): an RFC 3339 UTC timestamp first. RUST_LOG wins over
//! -v/-q when set.

use std::io::{IsTerminal, Write};
use std::time::{SystemTime, UNIX_EPOCH};

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
                timestamp(SystemTime::now()),
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

/// `2026-11-27T05:15:00.123Z`
fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = crate::capture::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_756_476_506);
        assert_eq!(timestamp(t), "2026-11-27T05:14:36.506Z");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn priorities() {
        assert_eq!(syslog_priority(Level::Error), 3);
        assert_eq!(syslog_priority(Level::Info), 6);
    }
}
