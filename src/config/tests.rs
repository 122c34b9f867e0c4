// SPDX-License-Identifier: MIT OR Apache-2.0
//! Unit tests of parsing and validation.

use std::ffi::OsString;
use std::net::Ipv4Addr;

use super::args::{parse_args, parse_file};
use super::*;

fn args(s: &str) -> Vec<OsString> {
    s.split_whitespace().map(OsString::from).collect()
}

fn no_file(p: &Path) -> std::result::Result<String, String> {
    read_file(p)
}

fn ok(s: &str) -> Config {
    parse(args(s), &no_file).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn err(s: &str) -> String {
    match parse(args(s), &no_file) {
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
    assert!(!c.sides_given && !c.force && !c.priority_given);
    assert!(c.capture.is_none());
    assert_eq!(c.user, None);
}

#[test]
fn commands() {
    assert_eq!(ok("run").command, Command::Run);
    assert_eq!(ok("teardown").command, Command::Teardown);
    assert_eq!(ok("check --table 7").table, 7);
    assert_eq!(ok("list --json").command, Command::List);
    assert!(ok("status --json").json);
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
    // Special addresses parse; the start refuses them as a conflict (claim.rs, exit 77).
    assert!(ok("tun0=127.0.0.1 tun1=10.0.0.2").sides[0]
        .v4
        .unwrap()
        .is_loopback());
    assert!(err("tun0=10.0.0.1 tun1=10.0.0.2 tun2=10.0.0.3").contains("got 3"));
}

#[test]
fn wrong_side_forms_show_the_right_one() {
    let e = err("192.168.13.1 192.168.13.2");
    assert!(e.contains("NAME=ADDR") && e.contains("192.168.13.1"), "{e}");
    let e = err("tun0=10.0.0.1/24 tun1=10.0.0.2");
    assert!(e.contains("prefix") && e.contains("tun0=10.0.0.1"), "{e}");
    let e = err("tun0 tun1");
    assert!(e.contains("NAME=ADDR"), "{e}");
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
    let c = ok("--force --user alice -v -v");
    assert!(c.force);
    assert_eq!(c.user.as_deref(), Some("alice"));
    assert!(err("--allow-group lab").contains("policy.conf"));
    assert!(ok("tun0=10.0.0.1 tun1=10.0.0.2 --priority 7").sides_given);
    assert!(ok("--priority 7").priority_given);
    assert_eq!(c.verbosity, 2);
    assert_eq!(ok("-q").verbosity, -1);
    assert_eq!(ok("--table 7 --table 8").table, 8, "the last value wins");
    assert!(err("--bogus").contains("--bogus"));
    assert!(err("-x").contains("-x"));
    assert!(err("--table").contains("table"));
    assert!(err("--user a:b").contains("--user"));
    assert!(err("--verbose=3").contains("verbose"));
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
    assert!(err("--pcap x --snaplen 262145").contains("out of range"));
    assert_eq!(
        ok("--pcap x --snaplen 262144").capture.unwrap().snaplen,
        262_144
    );
    assert!(err("--pcap x --pcap-max-size 8K").contains("minimum"));
    assert_eq!(
        ok("--pcap x --pcap-max-size 16K").capture.unwrap().max_size,
        Some(16 << 10)
    );
    assert!(err("--pcap x --pcap-max-size 10Q").contains("pcap-max-size"));
    assert!(err("--pcap-max-size 1M").contains("need --pcap"));
    assert!(err("--pcap - --pcap-max-size 1M").contains("stdout"));
    assert!(err("--pcap x --pcap-files 0").contains("at least 1"));
    assert!(err("--pcap x --pcap-files 2").contains("needs --pcap-max-size"));
}

#[test]
fn parse_size_table() {
    let good = [
        ("512", 512),
        ("1", 1),
        ("100K", 100 << 10),
        ("100k", 100 << 10),
        ("100M", 100 << 20),
        ("10MiB", 10 << 20),
        ("10mb", 10 << 20),
        ("2G", 2 << 30),
        ("2gib", 2 << 30),
        ("4096B", 4096),
        ("17179869183G", 17_179_869_183 << 30),
    ];
    for (s, v) in good {
        assert_eq!(parse_size(s), Ok(v), "{s}");
    }
    let bad = [
        ("", "empty"),
        ("0", "greater than 0"),
        ("0K", "greater than 0"),
        ("K", "expected a number"),
        ("-1", "expected a number"),
        (" 1", "expected a number"),
        ("1 K", "unknown suffix"),
        ("1.5M", "unknown suffix"),
        ("10T", "unknown suffix"),
        ("10Kx", "unknown suffix"),
        ("17179869184G", "too large"),
        ("99999999999999999999", "too large"),
    ];
    for (s, why) in bad {
        let e = parse_size(s).unwrap_err();
        assert!(e.contains(why), "{s:?}: {e}");
    }
}

#[test]
fn config_file_and_precedence() {
    let raw = parse_file("# lab\n\ntable 42\nuser nobody\na x0=10.0.0.1\nb x1=10.0.0.2\nverbose\n")
        .unwrap();
    let cli = parse_args(args("--table 7")).unwrap().1;
    let c = validate(Command::Run, cli.merge(raw)).unwrap();
    assert_eq!(c.table, 7, "the command line wins");
    assert_eq!(c.user.as_deref(), Some("nobody"));
    assert!(c.sides_given);
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
    assert!(parse_file("allow-group lab\n")
        .unwrap_err()
        .contains("policy.conf"));
    assert!(parse_file("help\n").is_err());
    // A wrong file is quoted briefly, never whole.
    let long = "x".repeat(500);
    assert!(parse_file(&long).unwrap_err().len() < 100);
    assert!(err("--config /nonexistent/tunwire.conf").contains("/nonexistent/tunwire.conf"));
    let e = err("--config /dev/zero");
    assert!(
        e.contains("/dev/zero") && e.contains("not a regular file"),
        "{e}"
    );
}

#[test]
fn big_config_file_is_refused() {
    let dir = std::env::temp_dir().join(format!("tunwire-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.conf");
    std::fs::write(&path, "# x\n".repeat((MAX_CONFIG_BYTES / 4 + 1) as usize)).unwrap();
    let e = read_file(&path).unwrap_err();
    assert!(e.contains("larger than"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `args(s)` with `--impair VALUE` appended (VALUE keeps its spaces).
fn with_impair(s: &str, value: &str) -> Vec<OsString> {
    let mut v = args(s);
    v.extend(["--impair".into(), value.into()]);
    v
}

#[test]
fn impair_side_must_be_a_side_of_the_wire() {
    let sides = "tun0=192.168.13.1 tun1=192.168.13.2";
    let e = parse(with_impair(sides, "tun9: loss 5%"), &no_file).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let e = e.to_string();
    assert!(
        e.contains("'tun9' is not a side of this wire (tun0 or tun1)"),
        "{e}"
    );
    let c = parse(with_impair(sides, "tun1: loss 5%"), &no_file).unwrap();
    assert!(foreign_impair_side(&c.impair, &c.sides).is_none());
    // Without A B the pair comes from the pools later; claim.rs picks one with tun9.
    let c = parse(with_impair("", "tun9: loss 5%"), &no_file).unwrap();
    assert!(foreign_impair_side(&c.impair, &c.sides).is_some());
}

#[test]
fn impairment_turns_offload_off_and_says_why_when_it_was_asked_for() {
    let c = parse(with_impair("", "loss 5%"), &no_file).unwrap();
    assert!(!c.offload && c.offload_ignored.is_none());
    let c = parse(with_impair("--offload on", "loss 5%"), &no_file).unwrap();
    assert!(!c.offload && c.offload_ignored.is_some());
    let mut c = parse(with_impair("--offload on", "tun9: loss 5%"), &no_file).unwrap();
    assert!(c.offload, "tun9 is not a side of tun0/tun1");
    c.sides[1].name = "tun9".into();
    c.settle_offload();
    assert!(!c.offload && c.offload_ignored.is_some());
}
