// SPDX-License-Identifier: MIT OR Apache-2.0
//! Command line and configuration file -> one validated `Config`. Pure: no system calls beyond
//! reading the `--config` file; nothing here touches the kernel, so a configuration error can
//! never leave state behind. Account and group names are resolved later, in `privilege`.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use crate::capture::{self, CaptureConfig, PcapFormat, Target};
use crate::error::{Error, Result};

pub const USAGE: &str = include_str!("usage.txt");

pub const DEFAULT_SIDES: [&str; 2] = ["tun0=192.168.13.1", "tun1=192.168.13.2"];
pub const DEFAULT_TABLE: u32 = 13;
/// Any preference below the `main` rule (32766) works, because the pair's local routes are no
/// longer in table local; 100 leaves room for administrators' own rules on both sides.
pub const DEFAULT_PRIORITY: u32 = 100;
pub const DEFAULT_MTU: u32 = 1500;
pub const DEFAULT_SNAPLEN: u32 = 262_144;
pub const DEFAULT_GROUP: &str = "tunwire";
const MAIN_RULE_PRIORITY: u32 = 32766;
/// IFNAMSIZ - 1.
const MAX_IFNAME: usize = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Run,
    Teardown,
    Check,
    Help,
    Version,
}

/// One end of the wire: a TUN device and its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub name: String,
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl Side {
    /// "192.168.13.1" or "192.168.13.1,fd13::1", as given on the command line.
    pub fn addresses(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(a) = self.v4 {
            parts.push(a.to_string());
        }
        if let Some(a) = self.v6 {
            parts.push(a.to_string());
        }
        parts.join(",")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub command: Command,
    pub sides: [Side; 2],
    pub table: u32,
    pub priority: u32,
    pub mtu: u32,
    pub offload: bool,
    pub user: Option<String>,
    pub allow_groups: Vec<String>,
    pub capture: Option<CaptureConfig>,
    /// -1 quiet, 0 default, 1.. verbose.
    pub verbosity: i8,
}

impl Config {
    pub fn has_v6(&self) -> bool {
        self.sides[0].v6.is_some()
    }
    pub fn has_v4(&self) -> bool {
        self.sides[0].v4.is_some()
    }
}

/// Settings as given, before defaults and validation. The command line and the file each fill
/// one; `merge` lets the command line win.
#[derive(Debug, Default, Clone)]
struct Raw {
    sides: Vec<String>,
    table: Option<String>,
    priority: Option<String>,
    mtu: Option<String>,
    offload: Option<String>,
    user: Option<String>,
    allow_groups: Vec<String>,
    pcap: Option<String>,
    pcap_format: Option<String>,
    snaplen: Option<String>,
    pcap_max_size: Option<String>,
    pcap_files: Option<String>,
    verbose: u8,
    quiet: bool,
}

impl Raw {
    /// Apply one `option value` setting; shared by the command line and the config file so
    /// both accept exactly the same options.
    fn set(&mut self, key: &str, value: Option<String>) -> std::result::Result<(), String> {
        let need = |v: Option<String>| v.ok_or_else(|| format!("option '{key}' needs a value"));
        match key {
            "table" => self.table = Some(need(value)?),
            "priority" => self.priority = Some(need(value)?),
            "mtu" => self.mtu = Some(need(value)?),
            "offload" => self.offload = Some(need(value)?),
            "user" => self.user = Some(need(value)?),
            "allow-group" => self.allow_groups.push(need(value)?),
            "pcap" => self.pcap = Some(need(value)?),
            "pcap-format" => self.pcap_format = Some(need(value)?),
            "snaplen" => self.snaplen = Some(need(value)?),
            "pcap-max-size" => self.pcap_max_size = Some(need(value)?),
            "pcap-files" => self.pcap_files = Some(need(value)?),
            "verbose" | "quiet" if value.is_some() => {
                return Err(format!("option '{key}' takes no value"))
            }
            "verbose" => self.verbose += 1,
            "quiet" => self.quiet = true,
            _ => return Err(format!("unknown option '{key}'")),
        }
        Ok(())
    }

    /// `self` is the command line; fields it leaves unset come from the file.
    fn merge(mut self, file: Raw) -> Raw {
        fn pick(cli: &mut Option<String>, file: Option<String>) {
            if cli.is_none() {
                *cli = file;
            }
        }
        if self.sides.is_empty() {
            self.sides = file.sides;
        }
        if self.allow_groups.is_empty() {
            self.allow_groups = file.allow_groups;
        }
        pick(&mut self.table, file.table);
        pick(&mut self.priority, file.priority);
        pick(&mut self.mtu, file.mtu);
        pick(&mut self.offload, file.offload);
        pick(&mut self.user, file.user);
        pick(&mut self.pcap, file.pcap);
        pick(&mut self.pcap_format, file.pcap_format);
        pick(&mut self.snaplen, file.snaplen);
        pick(&mut self.pcap_max_size, file.pcap_max_size);
        pick(&mut self.pcap_files, file.pcap_files);
        if self.verbose == 0 && !self.quiet {
            self.verbose = file.verbose;
            self.quiet = file.quiet;
        }
        self
    }
}

/// Parse the command line (without argv[0]); reads the `--config` file if one is named.
pub fn parse<I>(args: I) -> Result<Config>
where
    I: IntoIterator<Item = OsString>,
{
    let (command, cli, config_file) = parse_args(args).map_err(Error::Usage)?;
    if matches!(command, Command::Help | Command::Version) {
        return Ok(defaults_for(command));
    }
    let raw = match config_file {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Error::Usage(format!("cannot read config file {}: {e}", path.display()))
            })?;
            let file = parse_file(&text)
                .map_err(|e| Error::Usage(format!("config file {}: {e}", path.display())))?;
            cli.merge(file)
        }
        None => cli,
    };
    validate(command, raw).map_err(Error::Usage)
}

fn defaults_for(command: Command) -> Config {
    let mut cfg = validate(Command::Run, Raw::default()).expect("defaults are valid");
    cfg.command = command;
    cfg
}

fn parse_args<I>(args: I) -> std::result::Result<(Command, Raw, Option<PathBuf>), String>
where
    I: IntoIterator<Item = OsString>,
{
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut raw = Raw::default();
    let mut command = None;
    let mut config = None;
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => return Ok((Command::Help, raw, None)),
            Short('V') | Long("version") => return Ok((Command::Version, raw, None)),
            Short('v') | Long("verbose") => raw.verbose += 1,
            Short('q') | Long("quiet") => raw.quiet = true,
            Long("config") => {
                config = Some(PathBuf::from(parser.value().map_err(|e| e.to_string())?))
            }
            Long(name) => {
                let name = name.to_string();
                if !is_valued(&name) {
                    return Err(format!("unknown option '--{name}'"));
                }
                let value = parser.value().map_err(|e| e.to_string())?;
                let value = value
                    .into_string()
                    .map_err(|_| format!("option '--{name}' has a value that is not UTF-8"))?;
                raw.set(&name, Some(value))?;
            }
            Value(v) => {
                let v = v
                    .into_string()
                    .map_err(|_| "an argument is not UTF-8".to_string())?;
                if command.is_none() && raw.sides.is_empty() && !v.contains('=') {
                    command = Some(match v.as_str() {
                        "run" => Command::Run,
                        "teardown" => Command::Teardown,
                        "check" => Command::Check,
                        other => {
                            return Err(format!(
                                "unknown command '{other}' (commands: run, teardown, check)"
                            ))
                        }
                    });
                } else {
                    raw.sides.push(v);
                }
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    Ok((command.unwrap_or(Command::Run), raw, config))
}

fn is_valued(name: &str) -> bool {
    matches!(
        name,
        "table"
            | "priority"
            | "mtu"
            | "offload"
            | "user"
            | "allow-group"
            | "pcap"
            | "pcap-format"
            | "snaplen"
            | "pcap-max-size"
            | "pcap-files"
    )
}

/// The config file: each non-empty line that does not start with `#` is a long option without
/// its dashes, then whitespace, then the value. `a` and `b` set the two sides.
fn parse_file(text: &str) -> std::result::Result<Raw, String> {
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
            "a" | "b" => {
                let v = value.ok_or_else(|| at(format!("'{key}' needs NAME=ADDR[,ADDR]")))?;
                sides[usize::from(key == "b")] = Some(v);
            }
            "config" => return Err(at("'config' cannot be nested".into())),
            "help" | "version" => return Err(at(format!("'{key}' is not a setting"))),
            _ => raw.set(key, value).map_err(at)?,
        }
    }
    match sides {
        [Some(a), Some(b)] => raw.sides = vec![a, b],
        [None, None] => {}
        _ => return Err("set both sides ('a' and 'b') or neither".into()),
    }
    Ok(raw)
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

fn validate(command: Command, raw: Raw) -> std::result::Result<Config, String> {
    let sides = match raw.sides.len() {
        0 => [parse_side(DEFAULT_SIDES[0])?, parse_side(DEFAULT_SIDES[1])?],
        2 => [parse_side(&raw.sides[0])?, parse_side(&raw.sides[1])?],
        n => {
            return Err(format!(
                "give both sides A B as NAME=ADDR[,ADDR], or neither (got {n})"
            ))
        }
    };
    check_pair(&sides)?;

    let table = match raw.table {
        Some(s) => number::<u32>("--table", &s)?,
        None => DEFAULT_TABLE,
    };
    if matches!(table, 0 | 253..=255) {
        return Err(format!(
            "--table {table} is reserved (0 unspec, 253 default, 254 main, 255 local); pick another, e.g. 13"
        ));
    }
    let priority = match raw.priority {
        Some(s) => number::<u32>("--priority", &s)?,
        None => DEFAULT_PRIORITY,
    };
    if priority == 0 || priority >= MAIN_RULE_PRIORITY {
        return Err(format!(
            "--priority {priority} must be between 1 and {} so the rules sort before the main rule",
            MAIN_RULE_PRIORITY - 1
        ));
    }
    let has_v6 = sides[0].v6.is_some();
    let mtu = match raw.mtu {
        Some(s) => number::<u32>("--mtu", &s)?,
        None => DEFAULT_MTU,
    };
    if !(68..=65535).contains(&mtu) {
        return Err(format!("--mtu {mtu} is out of range 68-65535"));
    }
    if has_v6 && mtu < 1280 {
        return Err(format!("--mtu {mtu} is below 1280, the minimum for IPv6"));
    }
    let offload = match raw.offload.as_deref() {
        None | Some("on") => true,
        Some("off") => false,
        Some(other) => return Err(format!("--offload '{other}' must be 'on' or 'off'")),
    };
    if let Some(user) = &raw.user {
        check_account_name("--user", user)?;
    }
    let mut allow_groups = raw.allow_groups;
    if allow_groups.is_empty() {
        allow_groups.push(DEFAULT_GROUP.to_string());
    }
    for g in &allow_groups {
        check_account_name("--allow-group", g)?;
    }
    let capture = capture_config(
        &raw.pcap,
        &raw.pcap_format,
        &raw.snaplen,
        &raw.pcap_max_size,
        &raw.pcap_files,
    )?;
    let verbosity = if raw.quiet {
        -1
    } else {
        i8::try_from(raw.verbose).unwrap_or(i8::MAX)
    };
    Ok(Config {
        command,
        sides,
        table,
        priority,
        mtu,
        offload,
        user: raw.user,
        allow_groups,
        capture,
        verbosity,
    })
}

fn capture_config(
    pcap: &Option<String>,
    format: &Option<String>,
    snaplen: &Option<String>,
    max_size: &Option<String>,
    files: &Option<String>,
) -> std::result::Result<Option<CaptureConfig>, String> {
    let format = match format.as_deref() {
        None | Some("pcapng") => PcapFormat::PcapNg,
        Some("pcap") => PcapFormat::Pcap,
        Some(other) => {
            return Err(format!(
                "--pcap-format '{other}' must be 'pcapng' or 'pcap'"
            ))
        }
    };
    let snaplen = match snaplen {
        Some(s) => number::<u32>("--snaplen", s)?,
        None => DEFAULT_SNAPLEN,
    };
    if snaplen == 0 {
        return Err("--snaplen must be at least 1".into());
    }
    let max_size = match max_size {
        Some(s) => Some(capture::parse_size(s).map_err(|e| format!("--pcap-max-size: {e}"))?),
        None => None,
    };
    let files = match files {
        Some(s) => {
            let n = number::<u32>("--pcap-files", s)?;
            if n == 0 {
                return Err("--pcap-files must be at least 1".into());
            }
            Some(n)
        }
        None => None,
    };
    let Some(path) = pcap else {
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

/// `NAME=ADDR[,ADDR]`.
pub fn parse_side(s: &str) -> std::result::Result<Side, String> {
    let (name, addrs) = s.split_once('=').ok_or_else(|| {
        format!("side '{s}' must look like NAME=ADDR[,ADDR], e.g. tun0=192.168.13.1")
    })?;
    check_ifname(name)?;
    let mut side = Side {
        name: name.to_string(),
        v4: None,
        v6: None,
    };
    if addrs.is_empty() {
        return Err(format!("side '{s}' has no address"));
    }
    for a in addrs.split(',') {
        let ip: IpAddr = a
            .parse()
            .map_err(|_| format!("'{a}' in side '{s}' is not an IPv4 or IPv6 address"))?;
        if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
            return Err(format!(
                "'{a}' in side '{s}' is an unspecified, loopback or multicast address"
            ));
        }
        match ip {
            IpAddr::V4(v4) => {
                if v4.is_broadcast() {
                    return Err(format!("'{a}' in side '{s}' is the broadcast address"));
                }
                if side.v4.replace(v4).is_some() {
                    return Err(format!("side '{s}' has more than one IPv4 address"));
                }
            }
            IpAddr::V6(v6) => {
                if v6.segments()[0] & 0xffc0 == 0xfe80 {
                    return Err(format!(
                        "'{a}' in side '{s}' is link-local; use a global or ULA address (e.g. fd13::1)"
                    ));
                }
                if side.v6.replace(v6).is_some() {
                    return Err(format!("side '{s}' has more than one IPv6 address"));
                }
            }
        }
    }
    Ok(side)
}

fn check_pair(sides: &[Side; 2]) -> std::result::Result<(), String> {
    let [a, b] = sides;
    if a.name == b.name {
        return Err(format!(
            "both sides are named '{}'; the two TUNs need two names",
            a.name
        ));
    }
    if a.v4.is_some() != b.v4.is_some() || a.v6.is_some() != b.v6.is_some() {
        return Err(format!(
            "sides '{}={}' and '{}={}' must have the same address families",
            a.name,
            a.addresses(),
            b.name,
            b.addresses()
        ));
    }
    if (a.v4.is_some() && a.v4 == b.v4) || (a.v6.is_some() && a.v6 == b.v6) {
        return Err(format!(
            "sides '{}' and '{}' share an address; each side needs its own",
            a.name, b.name
        ));
    }
    Ok(())
}

/// The kernel's rules for interface names (dev_valid_name): 1-15 bytes, not . or .., no '/',
/// ':' or whitespace.
fn check_ifname(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("an interface name is empty".into());
    }
    if name.len() > MAX_IFNAME {
        return Err(format!(
            "interface name '{name}' is longer than {MAX_IFNAME} bytes"
        ));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!("'{name}' is not a valid interface name"));
    }
    Ok(())
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
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    fn ok(s: &str) -> Config {
        parse(args(s)).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        match parse(args(s)) {
            Ok(c) => panic!("{s}: accepted as {c:?}"),
            Err(e) => {
                assert_eq!(e.exit_code(), 2, "{s}");
                e.to_string()
            }
        }
    }

    #[test]
    fn defaults() {
        let c = ok("");
        assert_eq!(c.command, Command::Run);
        assert_eq!(c.sides[0].name, "tun0");
        assert_eq!(c.sides[0].v4, Some(Ipv4Addr::new(192, 168, 13, 1)));
        assert_eq!(c.sides[1].v4, Some(Ipv4Addr::new(192, 168, 13, 2)));
        assert_eq!(c.table, 13);
        assert!(c.priority < 32766);
        assert_eq!(c.mtu, 1500);
        assert!(c.offload);
        assert_eq!(c.allow_groups, vec!["tunwire".to_string()]);
        assert!(c.capture.is_none());
        assert_eq!(c.user, None);
    }

    #[test]
    fn commands() {
        assert_eq!(ok("run").command, Command::Run);
        assert_eq!(ok("teardown").command, Command::Teardown);
        assert_eq!(ok("check --table 7").table, 7);
        assert_eq!(ok("--help").command, Command::Help);
        assert_eq!(ok("-V").command, Command::Version);
        assert!(err("frobnicate").contains("frobnicate"));
    }

    #[test]
    fn sides_and_families() {
        let c = ok("a0=10.0.0.1,fd00::1 b0=10.0.0.2,fd00::2");
        assert_eq!(c.sides[1].name, "b0");
        assert_eq!(c.sides[1].v6, Some("fd00::2".parse().unwrap()));
        assert!(c.has_v6() && c.has_v4());
        let c = ok("run a0=fd00::1 b0=fd00::2");
        assert!(c.has_v6() && !c.has_v4());
        assert!(err("tun0=192.168.13.1").contains("both sides"));
        assert!(err("tun0=192.168.13.1 tun1=fd13::2").contains("families"));
        assert!(err("tun0=300.1.1.1 tun1=192.168.13.2").contains("300.1.1.1"));
        assert!(err("tun0=1.1.1.1,2.2.2.2 tun1=1.1.1.3").contains("more than one IPv4"));
        assert!(err("tun0=192.168.13.1 tun0=192.168.13.2").contains("both sides are named"));
        assert!(err("tun0=192.168.13.1 tun1=192.168.13.1").contains("share an address"));
        assert!(err("abcdefghijklmnop=10.0.0.1 tun1=10.0.0.2").contains("longer than 15"));
        assert!(err("tun/0=10.0.0.1 tun1=10.0.0.2").contains("not a valid interface"));
        assert!(err("tun0= tun1=10.0.0.2").contains("no address"));
        assert!(err("tun0=127.0.0.1 tun1=10.0.0.2").contains("loopback"));
        assert!(err("tun0=fe80::1 tun1=fe80::2").contains("link-local"));
        assert!(err("tun0=10.0.0.1 tun1=10.0.0.2 tun2=10.0.0.3").contains("got 3"));
    }

    #[test]
    fn numbers() {
        for bad in ["0", "253", "254", "255"] {
            assert!(err(&format!("--table {bad}")).contains("reserved"));
        }
        assert!(err("--table abc").contains("not a number"));
        assert!(err("--table -1").contains("-1"));
        assert_eq!(ok("--table 4294967295").table, u32::MAX);
        assert!(err("--table 4294967296").contains("out of range"));
        assert!(err("--priority 32766").contains("before the main rule"));
        assert!(err("--priority 0").contains("before the main rule"));
        assert!(err("--priority x").contains("not a number"));
        assert_eq!(ok("--priority 32765").priority, 32765);
        assert!(err("--mtu 67").contains("out of range"));
        assert!(err("--mtu 65536").contains("out of range"));
        assert_eq!(ok("--mtu 68").mtu, 68);
        assert!(err("--mtu 1279 tun0=fd13::1 tun1=fd13::2").contains("1280"));
        assert_eq!(ok("--mtu 1280 tun0=fd13::1 tun1=fd13::2").mtu, 1280);
        assert!(!ok("--offload off").offload);
        assert!(err("--offload maybe").contains("'on' or 'off'"));
    }

    #[test]
    fn options_and_flags() {
        let c = ok("--allow-group lab --allow-group wheel --user alice -v -v");
        assert_eq!(c.allow_groups, vec!["lab".to_string(), "wheel".to_string()]);
        assert_eq!(c.user.as_deref(), Some("alice"));
        assert_eq!(c.verbosity, 2);
        assert_eq!(ok("-q").verbosity, -1);
        assert!(err("--bogus").contains("--bogus"));
        assert!(err("--table").contains("table"));
        assert!(err("--user a:b").contains("--user"));
    }

    #[test]
    fn capture_options() {
        let c = ok("--pcap /tmp/x.pcapng --snaplen 96 --pcap-max-size 1M --pcap-files 3");
        let cap = c.capture.unwrap();
        assert_eq!(cap.target, Target::File("/tmp/x.pcapng".into()));
        assert_eq!(cap.format, PcapFormat::PcapNg);
        assert_eq!(cap.snaplen, 96);
        assert_eq!(cap.max_size, Some(1 << 20));
        assert_eq!(cap.files, Some(3));
        let c = ok("--pcap - --pcap-format pcap");
        assert_eq!(c.capture.as_ref().unwrap().target, Target::Stdout);
        assert_eq!(c.capture.unwrap().format, PcapFormat::Pcap);
        assert!(err("--pcap x --pcap-format xml").contains("xml"));
        assert!(err("--pcap x --snaplen 0").contains("snaplen"));
        assert!(err("--pcap x --pcap-max-size 10Q").contains("pcap-max-size"));
        assert!(err("--pcap-max-size 1M").contains("need --pcap"));
        assert!(err("--pcap - --pcap-max-size 1M").contains("stdout"));
        assert!(err("--pcap x --pcap-files 0").contains("at least 1"));
        assert!(err("--pcap x --pcap-files 2").contains("needs --pcap-max-size"));
    }

    #[test]
    fn config_file_and_precedence() {
        let raw = parse_file(
            "# lab\n\ntable 42\nuser nobody\nallow-group lab\na x0=10.0.0.1\nb x1=10.0.0.2\nverbose\n",
        )
        .unwrap();
        let cli = parse_args(args("--table 7")).unwrap().1;
        let c = validate(Command::Run, cli.merge(raw)).unwrap();
        assert_eq!(c.table, 7, "the command line wins");
        assert_eq!(c.user.as_deref(), Some("nobody"));
        assert_eq!(c.allow_groups, vec!["lab".to_string()]);
        assert_eq!(c.sides[0].name, "x0");
        assert_eq!(c.verbosity, 1);
        assert!(parse_file("tabel 4\n")
            .unwrap_err()
            .contains("line 1: unknown option 'tabel'"));
        assert!(parse_file("table\n").unwrap_err().contains("needs a value"));
        assert!(parse_file("a x0=10.0.0.1\n")
            .unwrap_err()
            .contains("both sides"));
        assert!(parse_file("config /x\n").is_err());
        assert!(err("--config /nonexistent/tunwire.conf").contains("/nonexistent/tunwire.conf"));
    }
}
