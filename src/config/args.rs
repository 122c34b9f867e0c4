// SPDX-License-Identifier: MIT OR Apache-2.0
//! Settings as given, before defaults and validation: the command line (lexopt) and the config
//! file each fill one `Raw`, keyed by the long names of the option table; `merge` lets the
//! command line win. Pure: the caller hands in the file's text.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use super::options::{self, Takes};
use super::Command;

/// Settings as given. `values[long]` holds every occurrence, in order (flags as "").
#[derive(Debug, Default, Clone)]
pub struct Raw {
    pub sides: Vec<String>,
    pub values: BTreeMap<&'static str, Vec<String>>,
}

impl Raw {
    /// Apply one `option value` setting; shared by the command line and the config file so both
    /// accept exactly the same options.
    pub fn set(&mut self, key: &str, value: Option<String>) -> Result<(), String> {
        let opt = options::find(key).ok_or_else(|| format!("unknown option '{key}'"))?;
        let value = match (opt.takes, value) {
            (Takes::Flag, Some(_)) => return Err(format!("option '{key}' takes no value")),
            (Takes::Flag, None) => String::new(),
            (_, Some(v)) => v,
            (_, None) => return Err(format!("option '{key}' needs a value")),
        };
        self.values.entry(opt.long).or_default().push(value);
        Ok(())
    }

    /// The value of a single-valued option: the last one given.
    pub fn one(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// Every value of a repeatable option, in order.
    pub fn all(&self, key: &str) -> &[String] {
        self.values.get(key).map_or(&[], Vec::as_slice)
    }

    /// How often a flag was given.
    pub fn count(&self, key: &str) -> usize {
        self.all(key).len()
    }

    /// `self` is the command line; what it leaves unset comes from the file. Verbosity counts
    /// as one setting: `-v` or `-q` on the command line replaces both from the file.
    pub fn merge(mut self, file: Raw) -> Raw {
        if self.sides.is_empty() {
            self.sides = file.sides;
        }
        let cli_logs = self.values.contains_key("verbose") || self.values.contains_key("quiet");
        for (key, values) in file.values {
            if cli_logs && matches!(key, "verbose" | "quiet") {
                continue;
            }
            self.values.entry(key).or_insert(values);
        }
        self
    }
}

/// The command line (without argv[0]) as (command, settings, config file).
pub fn parse_args<I>(args: I) -> Result<(Command, Raw, Option<PathBuf>), String>
where
    I: IntoIterator<Item = OsString>,
{
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut raw = Raw::default();
    let mut command = None;
    let mut config = None;
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        let opt = match arg {
            Short(c) => options::find_short(c).ok_or_else(|| format!("unknown option '-{c}'"))?,
            Long("allow-group") => return Err(ALLOW_GROUP_GONE.into()),
            Long(name) => {
                options::find(name).ok_or_else(|| format!("unknown option '--{name}'"))?
            }
            Value(v) => {
                let v = v
                    .into_string()
                    .map_err(|_| "an argument is not UTF-8".to_string())?;
                if command.is_none() && raw.sides.is_empty() && !v.contains('=') {
                    command = Some(parse_command(&v)?);
                } else {
                    raw.sides.push(v);
                }
                continue;
            }
        };
        match opt.long {
            "help" => return Ok((Command::Help, raw, None)),
            "version" => return Ok((Command::Version, raw, None)),
            _ => {}
        }
        let value = match opt.takes {
            Takes::Flag => None,
            Takes::Value | Takes::Many => Some(
                parser
                    .value()
                    .map_err(|e| e.to_string())?
                    .into_string()
                    .map_err(|_| {
                        format!("option '--{}' has a value that is not UTF-8", opt.long)
                    })?,
            ),
        };
        if opt.long == "config" {
            config = value.map(PathBuf::from);
            continue;
        }
        raw.set(opt.long, value)?;
    }
    Ok((command.unwrap_or(Command::Run), raw, config))
}

/// `--allow-group` let the caller pick who may start; the administrator's policy does now.
const ALLOW_GROUP_GONE: &str = "--allow-group was removed: who may start tunwire is decided by \
     'allow group NAME' lines in /etc/tunwire/policy.conf (see tunwire.policy(5))";

fn parse_command(word: &str) -> Result<Command, String> {
    Ok(match word {
        "run" => Command::Run,
        "teardown" => Command::Teardown,
        "check" => Command::Check,
        "list" | "status" => Command::List,
        "capture" => Command::Capture,
        // An address where a side was meant: show the right form.
        w if w.parse::<std::net::IpAddr>().is_ok() || w.contains(['.', ':', '/']) => {
            return Err(super::side::missing_name(w))
        }
        other => {
            return Err(format!(
            "unknown command '{other}' (commands: run, teardown, check, list, capture); sides are \
                 NAME=ADDR, e.g. tun0=192.168.13.1"
        ))
        }
    })
}

/// The config file: each non-empty line that does not start with `#` is a long option without
/// its dashes, then whitespace, then the value. `a` and `b` set the two sides.
pub fn parse_file(text: &str) -> Result<Raw, String> {
    let mut raw = Raw::default();
    let mut sides: [Option<String>; 2] = [None, None];
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once(char::is_whitespace) {
            Some((k, v)) => (k, Some(v.trim().to_string())),
            None => (line, None),
        };
        let at = |e: String| format!("line {}: {e}", i + 1);
        match key {
            "allow-group" => return Err(at(ALLOW_GROUP_GONE.into())),
            "a" | "b" => {
                let v = value.ok_or_else(|| at(format!("'{key}' needs NAME=ADDR[,ADDR]")))?;
                sides[usize::from(key == "b")] = Some(v);
            }
            _ => match options::find(key) {
                Some(o) if !o.in_file => {
                    return Err(at(format!("'{key}' is not a setting of the config file")))
                }
                // Quote at most 40 characters: the line may be anything (a wrong file).
                None => return Err(at(format!("unknown option '{}'", clip(key)))),
                Some(_) => raw.set(key, value).map_err(at)?,
            },
        }
    }
    match sides {
        [Some(a), Some(b)] => raw.sides = vec![a, b],
        [None, None] => {}
        _ => return Err("set both sides ('a' and 'b') or neither".into()),
    }
    Ok(raw)
}

/// At most 40 characters of `s`, for quoting input in an error.
pub fn clip(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s.to_string(),
    }
}
