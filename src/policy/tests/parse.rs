// SPDX-License-Identifier: MIT OR Apache-2.0
//! The policy file format: every setting, comments, and the errors.

use super::*;

#[test]
fn builtin_is_the_documented_text() {
    let expected = "allow group tunwire\npool 192.168.13.0/24\npool fd13::/64\nnames tun*\ntables 13\nmax-wires 4\n";
    assert_eq!(BUILTIN, expected);
    let p = Policy::builtin();
    assert_eq!(p, Policy::parse(expected, Source::Builtin).unwrap());
    assert_eq!(p.source(), &Source::Builtin);
    assert_eq!(p.allowed_groups(), vec!["tunwire".to_string()]);
    assert_eq!(p.max_wires(), 4);
    assert_eq!(p.max_mtu(), 65535);
    assert_eq!(p.priority(), 100);
    assert!(p.check_address(ip("192.168.13.77")).is_ok());
    assert!(p.check_address(ip("fd13::beef")).is_ok());
    assert!(p.check_name("tun0").is_ok());
    assert!(p.check_table(13).is_ok());
    assert!(p.check_table(14).is_err());
    assert_eq!(p.capture_readers(), (vec![], vec![]));
    assert!(p.may_start("alice", &|g| g == "tunwire").is_ok());
    assert!(p.may_start("alice", &no_group).is_err());
}

#[test]
fn parses_every_setting() {
    let p = file(
        "allow group tunwire\nallow user bob\ndeny user mallory\ndeny group interns\n\
         pool 10.1.0.0/16\npool fd00:1::/48\npool 10.9.9.9\nnames tun*\nnames lab?\n\
         tables 13\ntables 100-199\nmax-wires 7\nmax-mtu 1500\npriority 200\n\
         capture user eve\ncapture group audit\n",
    );
    assert_eq!(p.source(), &Source::File(PATH.into()));
    assert_eq!(p.allowed_groups(), vec!["tunwire".to_string()]);
    assert!(p.may_start("bob", &no_group).is_ok());
    assert!(p.may_start("mallory", &|g| g == "tunwire").is_err());
    assert!(p.check_address(ip("10.1.255.255")).is_ok());
    assert!(p.check_address(ip("10.9.9.9")).is_ok());
    assert!(p.check_address(ip("10.9.9.8")).is_err());
    assert!(p.check_address(ip("fd00:1:0:ffff::1")).is_ok());
    assert!(p.check_name("lab7").is_ok());
    assert!(p.check_table(150).is_ok());
    assert_eq!(p.max_wires(), 7);
    assert_eq!(p.max_mtu(), 1500);
    assert_eq!(p.priority(), 200);
    let readers = (vec!["eve".to_string()], vec!["audit".to_string()]);
    assert_eq!(p.capture_readers(), readers);
    let lines: Vec<usize> = p.who.iter().map(|w| w.line).collect();
    assert_eq!(lines, [1, 2, 3, 4, 15, 16]);
    assert_eq!(
        p.pools.iter().map(|a| a.line).collect::<Vec<_>>(),
        [5, 6, 7]
    );
    assert_eq!(p.max_mtu.as_ref().map(|a| a.line), Some(13));
}

#[test]
fn a_file_replaces_the_builtin_and_scalars_default() {
    let p = file("max-mtu 9000\n");
    assert!(p.allowed_groups().is_empty());
    assert!(p.pools.is_empty() && p.names.is_empty() && p.tables.is_empty());
    assert_eq!((p.max_wires(), p.max_mtu(), p.priority()), (4, 9000, 100));
    assert_eq!(file(""), file("# nothing\n\n   \n"));
    assert_eq!(file("").max_wires(), 4);
}

#[test]
fn comments_blank_lines_and_whitespace() {
    let p = file(
        "# a comment\n\n   # indented comment\nallow group tunwire # trailing\n\
         \tpool\t10.0.0.0/8#glued\r\nnames tun*   \r\n#max-wires 9\nmax-wires 2\n",
    );
    assert_eq!(p.allowed_groups(), vec!["tunwire".to_string()]);
    assert_eq!(p.pools[0].value, prefix("10.0.0.0/8"));
    assert_eq!(p.pools[0].line, 5);
    assert_eq!(p.names[0].value, "tun*");
    assert_eq!(p.max_wires(), 2);
    assert_eq!(p.max_wires.as_ref().map(|a| a.line), Some(8));
    // Line numbers count comment and blank lines.
    assert!(err("# one\n\n# three\nbogus\n").starts_with("line 4: "));
    assert!(file("#").who.is_empty());
    // '#' starts a comment even inside a word.
    let found = "found 'allow group'";
    assert_eq!(
        err("allow group#x"),
        format!("line 1: expected 'allow group NAME' or 'allow user NAME', {found}")
    );
}

#[test]
fn unknown_settings() {
    let expected =
        "(expected allow, deny, pool, names, tables, max-wires, max-mtu, priority or capture)";
    assert_eq!(
        err("pool 10.0.0.0/8\n\nfoo bar\n"),
        format!("line 3: unknown setting 'foo' {expected}")
    );
    assert_eq!(
        err("Allow group x"),
        format!("line 1: unknown setting 'Allow' {expected}")
    );
    assert_eq!(
        err("table 13"),
        format!("line 1: unknown setting 'table' {expected}")
    );
    assert_eq!(
        err("max_wires"),
        format!("line 1: unknown setting 'max_wires' {expected}")
    );
    assert_eq!(
        err("x\u{1b}[2J"),
        format!("line 1: unknown setting 'x\\u{{1b}}[2J' {expected}")
    );
}

#[test]
fn wrong_number_of_words() {
    let who = "expected 'allow group NAME' or 'allow user NAME'";
    assert_eq!(err("allow"), format!("line 1: {who}, found 'allow'"));
    assert_eq!(
        err("allow staff"),
        format!("line 1: {who}, found 'allow staff'")
    );
    assert_eq!(
        err("allow group"),
        format!("line 1: {who}, found 'allow group'")
    );
    assert_eq!(
        err("allow group a b"),
        format!("line 1: {who}, found 'allow group a b'")
    );
    assert_eq!(
        err("\ndeny host x"),
        "line 2: expected 'deny group NAME' or 'deny user NAME', found 'deny host x'"
    );
    assert_eq!(
        err("capture  user"),
        "line 1: expected 'capture group NAME' or 'capture user NAME', found 'capture user'"
    );
    assert_eq!(err("pool"), "line 1: expected 'pool PREFIX', found 'pool'");
    assert_eq!(
        err("pool 10.0.0.0 /8"),
        "line 1: expected 'pool PREFIX', found 'pool 10.0.0.0 /8'"
    );
    assert_eq!(
        err("names a b"),
        "line 1: expected 'names GLOB', found 'names a b'"
    );
    assert_eq!(
        err("tables"),
        "line 1: expected 'tables N' or 'tables N-M', found 'tables'"
    );
    assert_eq!(
        err("tables 1 - 5"),
        "line 1: expected 'tables N' or 'tables N-M', found 'tables 1 - 5'"
    );
    assert_eq!(
        err("max-wires"),
        "line 1: expected 'max-wires N', found 'max-wires'"
    );
    assert_eq!(
        err("max-mtu 1 2"),
        "line 1: expected 'max-mtu N', found 'max-mtu 1 2'"
    );
    assert_eq!(
        err("priority"),
        "line 1: expected 'priority N', found 'priority'"
    );
}

#[test]
fn bad_user_and_group_names() {
    let rule = "(no ':', ',', '/', control characters or leading '-')";
    assert_eq!(
        err("allow user a:b"),
        format!("line 1: 'a:b' is not a valid user name {rule}")
    );
    assert_eq!(
        err("deny group -x"),
        format!("line 1: '-x' is not a valid group name {rule}")
    );
    assert_eq!(
        err("capture user a,b"),
        format!("line 1: 'a,b' is not a valid user name {rule}")
    );
    assert!(err("allow group ../x").starts_with("line 1: '../x' is not a valid group name"));
    assert!(err("allow group a\u{7f}").starts_with("line 1: 'a\\u{7f}' is not"));
    assert!(
        file("allow user alice.smith\nallow group domain_users\nallow user m$")
            .who
            .len()
            == 3
    );
}

#[test]
fn pool_errors() {
    assert_eq!(
        err("pool 192.168.13.1/24"),
        "line 1: pool '192.168.13.1/24' has host bits set (write 192.168.13.0/24)"
    );
    assert_eq!(
        err("\n\npool fd13::1/64"),
        "line 3: pool 'fd13::1/64' has host bits set (write fd13::/64)"
    );
    assert_eq!(
        err("pool 10.0.0.1/0"),
        "line 1: pool '10.0.0.1/0' has host bits set (write 0.0.0.0/0)"
    );
    let not = "is not an address or prefix (e.g. 192.168.13.0/24 or fd13::/64)";
    assert_eq!(err("pool foo"), format!("line 1: pool 'foo' {not}"));
    assert_eq!(
        err("pool 10.0.0/8"),
        format!("line 1: pool '10.0.0/8' {not}")
    );
    assert_eq!(
        err("pool fe80::1%eth0"),
        format!("line 1: pool 'fe80::1%eth0' {not}")
    );
    assert_eq!(err("pool /8"), format!("line 1: pool '/8' {not}"));
    assert_eq!(
        err("pool 010.0.0.0/8"),
        format!("line 1: pool '010.0.0.0/8' {not}")
    );
    let v4 = "needs a prefix length from 0 to 32";
    assert_eq!(
        err("pool 10.0.0.0/33"),
        format!("line 1: pool '10.0.0.0/33' {v4}")
    );
    assert_eq!(
        err("pool 10.0.0.0/"),
        format!("line 1: pool '10.0.0.0/' {v4}")
    );
    assert_eq!(
        err("pool 10.0.0.0/+8"),
        format!("line 1: pool '10.0.0.0/+8' {v4}")
    );
    assert_eq!(
        err("pool 10.0.0.0/8/8"),
        format!("line 1: pool '10.0.0.0/8/8' {v4}")
    );
    assert_eq!(
        err("pool 10.0.0.0/-1"),
        format!("line 1: pool '10.0.0.0/-1' {v4}")
    );
    assert_eq!(
        err("pool fd13::/129"),
        "line 1: pool 'fd13::/129' needs a prefix length from 0 to 128"
    );
    assert_eq!(
        err("pool ::/99999999999999"),
        "line 1: pool '::/99999999999999' needs a prefix length from 0 to 128"
    );
    // A bare address is a /32 or /128; /0 is allowed.
    assert_eq!(file("pool 10.1.2.3").pools[0].value, prefix("10.1.2.3/32"));
    assert_eq!(file("pool ::1").pools[0].value.to_string(), "::1/128");
    assert_eq!(
        file("pool 0.0.0.0/0").pools[0].value.to_string(),
        "0.0.0.0/0"
    );
    assert_eq!(
        file("pool fd13:0::/64").pools[0].value.to_string(),
        "fd13::/64"
    );
}

#[test]
fn prefix_contains() {
    let all4 = prefix("0.0.0.0/0");
    assert!(all4.contains(ip("0.0.0.0")) && all4.contains(ip("255.255.255.255")));
    assert!(!all4.contains(ip("::")) && !all4.contains(ip("::ffff:10.0.0.1")));
    let all6 = prefix("::/0");
    assert!(
        all6.contains(ip("::")) && all6.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
    );
    assert!(all6.contains(ip("::ffff:10.0.0.1")) && !all6.contains(ip("10.0.0.1")));
    let host = prefix("10.0.0.5/32");
    assert!(host.contains(ip("10.0.0.5")));
    assert!(!host.contains(ip("10.0.0.4")) && !host.contains(ip("10.0.0.6")));
    let p31 = prefix("10.0.0.4/31");
    assert!(p31.contains(ip("10.0.0.4")) && p31.contains(ip("10.0.0.5")));
    assert!(!p31.contains(ip("10.0.0.3")) && !p31.contains(ip("10.0.0.6")));
    let p8 = prefix("10.0.0.0/8");
    assert!(p8.contains(ip("10.255.255.255")) && !p8.contains(ip("11.0.0.0")));
    assert!(!p8.contains(ip("9.255.255.255")));
    let h6 = prefix("fd13::1/128");
    assert!(
        h6.contains(ip("fd13::1")) && !h6.contains(ip("fd13::")) && !h6.contains(ip("fd13::2"))
    );
    let p64 = prefix("fd13::/64");
    assert!(p64.contains(ip("fd13::ffff:ffff:ffff:ffff")) && p64.contains(ip("fd13::")));
    assert!(!p64.contains(ip("fd13:0:0:1::")) && !p64.contains(ip("fd12:ffff:ffff:ffff::")));
    let p127 = prefix("fd13::/127");
    assert!(p127.contains(ip("fd13::1")) && !p127.contains(ip("fd13::2")));
    let top = prefix("255.255.255.254/31");
    assert!(top.contains(ip("255.255.255.255")) && !top.contains(ip("255.255.255.253")));
}

#[test]
fn names_errors() {
    let rule = "is not an interface name pattern (1-15 bytes; no '/', ':', '%' or control characters; not '.' or '..')";
    for bad in [
        "tun/x",
        "a:b",
        "tun%d",
        "0123456789abcdef",
        ".",
        "..",
        "tun\u{1}",
    ] {
        let escaped = bad.escape_debug();
        assert_eq!(
            err(&format!("\nnames {bad}")),
            format!("line 2: names '{escaped}' {rule}")
        );
    }
    assert_eq!(
        file("names 0123456789abcd*").names[0].value,
        "0123456789abcd*"
    );
    assert_eq!(file("names *").names[0].value, "*");
    assert_eq!(file("names .tun?").names[0].value, ".tun?");
}

#[test]
fn tables_errors() {
    let form = "must be a table N or a range N-M of tables from 1 to 4294967295";
    for bad in [
        "0",
        "0-5",
        "-5",
        "5-",
        "x",
        "4294967296",
        "1-4294967296",
        "+5",
        "1--2",
        "-",
        "1-2-3",
    ] {
        assert_eq!(
            err(&format!("tables {bad}")),
            format!("line 1: tables '{bad}' {form}")
        );
    }
    assert_eq!(
        err("tables 20-10"),
        "line 1: tables '20-10' is a range that starts above its end"
    );
    let reserved =
        "names only reserved tables (253 default, 254 main, 255 local), which are never allowed";
    for bad in ["253", "254", "255", "253-255", "254-255"] {
        assert_eq!(
            err(&format!("tables {bad}")),
            format!("line 1: tables '{bad}' {reserved}")
        );
    }
    assert_eq!(
        file("tables 1-4294967295").tables[0].value,
        Tables {
            first: 1,
            last: u32::MAX
        }
    );
    assert_eq!(
        file("tables 252-253").tables[0].value.to_string(),
        "252-253"
    );
    assert_eq!(file("tables 7-7").tables[0].value.to_string(), "7");
}

#[test]
fn scalar_errors_and_ranges() {
    let cases = [
        (
            "max-wires",
            "0",
            "4294967295",
            &["-1", "x", "4294967296", "1.5", "+1"][..],
        ),
        ("max-mtu", "68", "65535", &["67", "65536", "0", "1500b"][..]),
        (
            "priority",
            "1",
            "32765",
            &["0", "32766", "-5", "100000000000"][..],
        ),
    ];
    for (setting, low, high, bad) in cases {
        assert!(Policy::parse(&format!("{setting} {low}"), Source::Builtin).is_ok());
        assert!(Policy::parse(&format!("{setting} {high}"), Source::Builtin).is_ok());
        for value in bad {
            let expected =
                format!("line 1: {setting} '{value}' must be a whole number from {low} to {high}");
            assert_eq!(err(&format!("{setting} {value}")), expected);
        }
    }
    assert_eq!(file("max-wires 0").max_wires(), 0);
    assert_eq!(file("max-wires 4294967295").max_wires(), u32::MAX);
    assert_eq!(file("max-wires 007").max_wires(), 7);
}

#[test]
fn duplicated_scalars_name_both_lines() {
    assert_eq!(
        err("max-wires 2\n\nmax-wires 3"),
        "line 3: max-wires is already set on line 1"
    );
    assert_eq!(
        err("max-mtu 1500\nmax-mtu 1500"),
        "line 2: max-mtu is already set on line 1"
    );
    assert_eq!(
        err("# x\npriority 5\nallow user a\npriority 7"),
        "line 4: priority is already set on line 2"
    );
    // Lists may repeat, even with the same value.
    assert_eq!(
        file("names tun*\nnames tun*\ntables 5\ntables 5")
            .names
            .len(),
        2
    );
}
