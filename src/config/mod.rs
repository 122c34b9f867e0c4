// SPDX-License-Identifier: MIT OR Apache-2.0
//! Command line and configuration file -> one validated `Config`. Pure: the caller hands in a
//! function that reads the `--config` file; nothing here touches the kernel, so a configuration
//! error can never leave state behind. Account and group names are resolved later, in
//! `privilege`. The options themselves are one table, in `options`.

mod args;
pub mod impair;
pub mod options;
pub mod side;

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
pub use side::Side;

pub const DEFAULT_SIDES: [&str; 2] = ["tun0=192.168.13.1", "tun1=192.168.13.2"];
pub const DEFAULT_TABLE: u32 = 13;
/// Any preference below the `main` rule (32766) works, because the pair's local routes are no
/// longer in table local; 100 leaves room for administrators' own rules on both sides.
pub const DEFAULT_PRIORITY: u32 = 100;
pub const DEFAULT_MTU: u32 = 1500;
pub const DEFAULT_SNAPLEN: u32 = 262_144;
/// The largest --snaplen: the largest packet tunwire can read.
pub const MAX_SNAPLEN: u32 = 262_144;

/// A snapshot length as text (a live reader's request, Wireshark's setting): 1 to
/// MAX_SNAPLEN, or None.
pub fn snaplen_value(s: &str) -> Option<u32> {
    s.parse().ok().filter(|n| (1..=MAX_SNAPLEN).contains(n))
}
/// The smallest --pcap-max-size: a few records per file, not millions of files.
pub const MIN_PCAP_MAX_SIZE: u64 = 16 << 10;
const MAIN_RULE_PRIORITY: u32 = 32766;
/// A config file larger than this is refused, not read (`--config /dev/zero`).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Run,
    Teardown,
    Check,
    List,
    Capture,
    Help,
    Version,
}

/// Capture file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcapFormat {
    /// pcapng: one interface per TUN, direction flags, nanosecond timestamps.
    PcapNg,
    /// Classic pcap, LINKTYPE_RAW, nanosecond timestamps, no interface or direction.
    Pcap,
}

/// Where the capture goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A file (the base name of the ring when `max_size` is set).
    File(PathBuf),
    /// Standard output, flushed after every relay batch (`--pcap -`).
    Stdout,
}

/// Validated capture settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    pub target: Target,
    pub format: PcapFormat,
    /// Bytes stored per packet at most (1..=262144).
    pub snaplen: u32,
    /// `--pcap-max-size` in bytes; `None`: a single file, no rotation. Never set for stdout.
    pub max_size: Option<u64>,
    /// `--pcap-files`; `None`: keep every ring file.
    pub files: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub command: Command,
    pub sides: [Side; 2],
    pub table: u32,
    pub priority: u32,
    pub mtu: u32,
    pub offload: bool,
    pub user: Option<String>,
    /// The sides were given (command line or file); otherwise a free pair is chosen.
    pub sides_given: bool,
    /// --priority was given.
    pub priority_given: bool,
    /// --force: override the conflict checks (root only).
    pub force: bool,
    pub capture: Option<CaptureConfig>,
    /// -1 quiet, 0 default, 1.. verbose.
    pub verbosity: i8,
    /// The `--config` file, as given.
    pub config_file: Option<PathBuf>,
    /// `list --json`.
    pub json: bool,
    /// `--impair`, in order; see `impairment`.
    pub impair: Vec<impair::ImpairSpec>,
    /// `--seed`; a start draws one when it is not given.
    pub seed: Option<u64>,
    /// Why --offload on, given, was turned off (impairment, or a program).
    pub offload_ignored: Option<&'static str>,
    /// --offload was given.
    pub offload_given: bool,
    /// `-- PROG [ARGS...]`: the prototype that gets the wire.
    pub prog: Option<Vec<OsString>>,
    /// TUN (IP packets) or TAP (Ethernet frames).
    pub mode: Mode,
    /// `capture`: what to read, where to write it, `--list`.
    pub capture_cmd: CaptureCmd,
}

/// The settings of `tunwire capture`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CaptureCmd {
    pub wire: Option<String>,
    pub snaplen: u32,
    pub write: Option<String>,
    pub count: Option<u64>,
    pub duration: Option<std::time::Duration>,
    pub list: bool,
}

/// The kind of device on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tun,
    Tap,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Tun => "tun",
            Mode::Tap => "tap",
        }
    }
}

impl Config {
    /// The impairment of the packets read from side `i`.
    pub fn impairment(&self, i: usize) -> impair::Impairment {
        impair::merge(&self.impair, &self.sides[i].name)
    }

    /// Whether any packet is impaired.
    pub fn impaired(&self) -> bool {
        (0..2).any(|i| !self.impairment(i).is_empty())
    }

    /// Impairment acts on wire-size packets, as on a real link: a 64 KiB GSO super-packet
    /// would be lost or delayed as a whole, 44 segments at once. So an impaired wire has no
    /// offload. Called again when the sides change (a pair from the pools).
    pub fn settle_offload(&mut self) {
        if self.impaired() && self.offload {
            if self.offload_given {
                self.offload_ignored = Some("impairment acts on wire-size packets");
            }
            self.offload = false;
        }
    }

    pub fn has_v6(&self) -> bool {
        self.sides[0].v6.is_some()
    }
    pub fn has_v4(&self) -> bool {
        self.sides[0].v4.is_some()
    }
    /// The two interface names.
    pub fn names(&self) -> [String; 2] {
        [self.sides[0].name.clone(), self.sides[1].name.clone()]
    }
}

/// Read a config file: a regular file of at most MAX_CONFIG_BYTES, UTF-8.
pub fn read_file(path: &Path) -> std::result::Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(format!("larger than {} KiB", MAX_CONFIG_BYTES >> 10));
    }
    Ok(text)
}

/// Parse the command line (without argv[0]). `read` reads the `--config` file if one is named
/// (see `read_file`; the caller decides with whose identity).
pub fn parse<I>(
    args: I,
    read: &dyn Fn(&Path) -> std::result::Result<String, String>,
) -> Result<Config>
where
    I: IntoIterator<Item = OsString>,
{
    // Everything after the first `--` is the prototype's command line.
    let mut args: Vec<OsString> = args.into_iter().collect();
    let prog = match args.iter().position(|a| a == "--") {
        Some(at) => {
            let prog = args.split_off(at + 1);
            args.pop();
            if prog.is_empty() {
                return Err(Error::Usage(
                    "'--' must be followed by a program to run, e.g. -- ./relay".into(),
                ));
            }
            Some(prog)
        }
        None => None,
    };
    let (command, cli, config_file) = args::parse_args(args).map_err(Error::Usage)?;
    if matches!(command, Command::Help | Command::Version) {
        return Ok(defaults_for(command));
    }
    if prog.is_some() && !matches!(command, Command::Run | Command::Check) {
        return Err(Error::Usage("'-- PROG' goes with run or check only".into()));
    }
    let raw = match &config_file {
        Some(path) => {
            let text = read(path).map_err(|e| {
                Error::Usage(format!("cannot read config file {}: {e}", path.display()))
            })?;
            let file = args::parse_file(&text)
                .map_err(|e| Error::Usage(format!("config file {}: {e}", path.display())))?;
            cli.merge(file)
        }
        None => cli,
    };
    let mut cfg = validate(command, raw).map_err(Error::Usage)?;
    cfg.config_file = config_file;
    if let Some(prog) = prog {
        // The program gets the devices themselves, one raw packet per read: no
        // virtio_net_hdr, so no offload.
        if cfg.offload && cfg.offload_given {
            cfg.offload_ignored = Some("a program reads one raw packet per read");
        }
        cfg.offload = false;
        cfg.prog = Some(prog);
    }
    Ok(cfg)
}

fn defaults_for(command: Command) -> Config {
    let mut cfg = validate(Command::Run, args::Raw::default()).expect("defaults are valid");
    cfg.command = command;
    cfg
}

fn number<T: std::str::FromStr>(what: &str, s: &str) -> std::result::Result<T, String> {
    s.parse().map_err(|_| {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            format!("{what} '{s}' is out of range")
        } else {
            format!("{what} '{s}' is not a number")
        }
    })
}

fn validate(command: Command, mut raw: args::Raw) -> std::result::Result<Config, String> {
    let capture_cmd = if command == Command::Capture {
        capture_command(&mut raw)?
    } else {
        CaptureCmd::default()
    };
    let sides = match raw.sides.len() {
        0 => [
            side::parse_side(DEFAULT_SIDES[0])?,
            side::parse_side(DEFAULT_SIDES[1])?,
        ],
        2 => [
            side::parse_side(&raw.sides[0])?,
            side::parse_side(&raw.sides[1])?,
        ],
        n => {
            return Err(format!(
                "give both sides A B as NAME=ADDR[,ADDR], or neither (got {n})"
            ))
        }
    };
    side::check_pair(&sides)?;

    let table = match raw.one("table") {
        Some(s) => number::<u32>("--table", s)?,
        None => DEFAULT_TABLE,
    };
    if matches!(table, 0 | 253..=255) {
        return Err(format!(
            "--table {table} is reserved (0 unspec, 253 default, 254 main, 255 local); pick another, e.g. 13"
        ));
    }
    let priority = match raw.one("priority") {
        Some(s) => number::<u32>("--priority", s)?,
        None => DEFAULT_PRIORITY,
    };
    if priority == 0 || priority >= MAIN_RULE_PRIORITY {
        return Err(format!(
            "--priority {priority} must be between 1 and {} so the rules sort before the main rule",
            MAIN_RULE_PRIORITY - 1
        ));
    }
    let has_v6 = sides[0].v6.is_some();
    let mtu = match raw.one("mtu") {
        Some(s) => number::<u32>("--mtu", s)?,
        None => DEFAULT_MTU,
    };
    if !(68..=65535).contains(&mtu) {
        return Err(format!("--mtu {mtu} is out of range 68-65535"));
    }
    if has_v6 && mtu < 1280 {
        return Err(format!("--mtu {mtu} is below 1280, the minimum for IPv6"));
    }
    let offload = match raw.one("offload") {
        None | Some("on") => true,
        Some("off") => false,
        Some(other) => return Err(format!("--offload '{other}' must be 'on' or 'off'")),
    };
    let impair = impairment(&raw, &sides)?;
    let seed = match raw.one("seed") {
        Some(s) => Some(number::<u64>("--seed", s)?),
        None => None,
    };
    let offload_given = raw.one("offload").is_some();
    let user = raw.one("user").map(str::to_string);
    if let Some(user) = &user {
        check_account_name("--user", user)?;
    }
    let capture = capture_config(&raw)?;
    let verbosity = if raw.count("quiet") > 0 {
        -1
    } else {
        i8::try_from(raw.count("verbose")).unwrap_or(i8::MAX)
    };
    let mut cfg = Config {
        command,
        sides,
        table,
        priority,
        mtu,
        offload,
        user,
        sides_given: !raw.sides.is_empty(),
        priority_given: raw.one("priority").is_some(),
        force: raw.count("force") > 0,
        capture,
        verbosity,
        config_file: None,
        json: raw.count("json") > 0,
        impair,
        seed,
        offload_ignored: None,
        offload_given,
        prog: None,
        mode: match raw.one("mode") {
            None | Some("tun") => Mode::Tun,
            Some("tap") => Mode::Tap,
            Some(other) => return Err(format!("--mode '{other}' must be 'tun' or 'tap'")),
        },
        capture_cmd,
    };
    cfg.settle_offload();
    Ok(cfg)
}

/// `capture [WIRE] [-w FILE|-] [-c COUNT] [--duration SECONDS] [--list]`; the wire's name
/// leaves the sides.
fn capture_command(raw: &mut args::Raw) -> std::result::Result<CaptureCmd, String> {
    let wire = match std::mem::take(&mut raw.sides).as_slice() {
        [] => None,
        [name] => {
            side::check_ifname(name)?;
            Some(name.clone())
        }
        more => {
            return Err(format!(
                "capture takes one wire, named by one of its interfaces (got {})",
                more.join(" ")
            ))
        }
    };
    let count = match raw.one("count") {
        Some(s) => Some(number::<u64>("--count", s)?).filter(|&n| n > 0),
        None => None,
    };
    if raw.one("count").is_some() && count.is_none() {
        return Err("--count must be at least 1".into());
    }
    let duration = match raw.one("duration") {
        Some(s) => {
            let secs: f64 = s
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v > 0.0 && *v < 1e9)
                .ok_or_else(|| format!("--duration '{s}' must be a number of seconds above 0"))?;
            Some(std::time::Duration::from_secs_f64(secs))
        }
        None => None,
    };
    let snaplen = snaplen(raw)?;
    Ok(CaptureCmd {
        wire,
        snaplen,
        write: raw.one("write").map(str::to_string),
        count,
        duration,
        list: raw.count("list") > 0,
    })
}

/// The `--impair` values, each checked, and the effective impairment of each direction.
fn impairment(
    raw: &args::Raw,
    sides: &[Side; 2],
) -> std::result::Result<Vec<impair::ImpairSpec>, String> {
    let mut specs = Vec::new();
    for text in raw.all("impair") {
        let spec = impair::parse_impair(text).map_err(|e| format!("--impair '{text}': {e}"))?;
        specs.push(spec);
    }
    // Without A B the pair is chosen later, from the policy's pools (claim.rs checks then).
    if !raw.sides.is_empty() {
        if let Some(e) = foreign_impair_side(&specs, sides) {
            return Err(e);
        }
    }
    let mut names: Vec<&str> = sides.iter().map(|s| s.name.as_str()).collect();
    names.extend(specs.iter().filter_map(|s| s.side.as_deref()));
    for name in names {
        impair::validate(&impair::merge(&specs, name))
            .map_err(|e| format!("--impair for {name}: {e}"))?;
    }
    Ok(specs)
}

/// The complaint about the first `--impair` that names a side other than `sides`.
pub fn foreign_impair_side(specs: &[impair::ImpairSpec], sides: &[Side; 2]) -> Option<String> {
    let spec = specs.iter().find(|spec| {
        spec.side
            .as_ref()
            .is_some_and(|side| !sides.iter().any(|s| &s.name == side))
    })?;
    Some(format!(
        "--impair '{spec}': '{}' is not a side of this wire ({} or {})",
        spec.side.as_deref().unwrap_or_default(),
        sides[0].name,
        sides[1].name
    ))
}

/// --snaplen, shared by the wire's capture and `tunwire capture`.
fn snaplen(raw: &args::Raw) -> std::result::Result<u32, String> {
    let snaplen = match raw.one("snaplen") {
        Some(s) => number::<u32>("--snaplen", s)?,
        None => DEFAULT_SNAPLEN,
    };
    if !(1..=MAX_SNAPLEN).contains(&snaplen) {
        return Err(format!(
            "--snaplen {snaplen} is out of range 1-{MAX_SNAPLEN}"
        ));
    }
    Ok(snaplen)
}

fn capture_config(raw: &args::Raw) -> std::result::Result<Option<CaptureConfig>, String> {
    let format = match raw.one("pcap-format") {
        None | Some("pcapng") => PcapFormat::PcapNg,
        Some("pcap") => PcapFormat::Pcap,
        Some(other) => {
            return Err(format!(
                "--pcap-format '{other}' must be 'pcapng' or 'pcap'"
            ))
        }
    };
    let snaplen = snaplen(raw)?;
    let max_size = match raw.one("pcap-max-size") {
        Some(s) => Some(parse_size(s).map_err(|e| format!("--pcap-max-size: {e}"))?),
        None => None,
    };
    if let Some(size) = max_size.filter(|&n| n < MIN_PCAP_MAX_SIZE) {
        return Err(format!(
            "--pcap-max-size {size} is below the minimum of {}K: each file holds its headers \
             and whole packets",
            MIN_PCAP_MAX_SIZE >> 10
        ));
    }
    let files = match raw.one("pcap-files") {
        Some(s) => {
            let n = number::<u32>("--pcap-files", s)?;
            if n == 0 {
                return Err("--pcap-files must be at least 1".into());
            }
            Some(n)
        }
        None => None,
    };
    let Some(path) = raw.one("pcap") else {
        if max_size.is_some() || files.is_some() {
            return Err("--pcap-max-size and --pcap-files need --pcap FILE".into());
        }
        return Ok(None);
    };
    if path.is_empty() {
        return Err("--pcap needs a file name, or - for stdout".into());
    }
    let target = if path == "-" {
        if max_size.is_some() {
            return Err("--pcap-max-size needs a file; it cannot rotate stdout".into());
        }
        Target::Stdout
    } else {
        Target::File(PathBuf::from(path))
    };
    if files.is_some() && max_size.is_none() {
        return Err("--pcap-files needs --pcap-max-size".into());
    }
    Ok(Some(CaptureConfig {
        target,
        format,
        snaplen,
        max_size,
        files,
    }))
}

/// Parse a size: a positive integer with an optional K, M or G suffix (powers of 1024,
/// case-insensitive, optionally followed by `B` or `iB`, e.g. `512`, `100K`, `10MiB`, `2g`).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    if s.is_empty() {
        return Err("empty size: expected a number with an optional K, M or G suffix".into());
    }
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits == 0 {
        return Err(format!(
            "invalid size {s:?}: expected a number with an optional K, M or G suffix"
        ));
    }
    let (num, suffix) = s.split_at(digits);
    let mult: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size {s:?}: unknown suffix {suffix:?} (use K, M or G)"
            ))
        }
    };
    let too_large = || format!("invalid size {s:?}: too large");
    let n: u64 = num.parse().map_err(|_| too_large())?;
    let size = n.checked_mul(mult).ok_or_else(too_large)?;
    if size == 0 {
        return Err(format!("invalid size {s:?}: must be greater than 0"));
    }
    Ok(size)
}

fn check_account_name(opt: &str, name: &str) -> std::result::Result<(), String> {
    if name.is_empty()
        || name.len() > 256
        || name.contains(['\0', ':', '/'])
        || name.chars().any(char::is_whitespace)
    {
        return Err(format!(
            "{opt} '{name}' is not a valid account or group name"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
