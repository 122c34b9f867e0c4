// SPDX-License-Identifier: MIT OR Apache-2.0
//! Unit tests of the policy: parsing, every refusal message, allocation.
use super::*;

const PATH: &str = "/etc/tunwire/policy.conf";
const BUILTIN_WHERE: &str = "built-in policy: /etc/tunwire/policy.conf does not exist";

fn file(text: &str) -> Policy {
    Policy::parse(text, Source::File(PATH.into())).unwrap()
}

fn err(text: &str) -> String {
    Policy::parse(text, Source::File(PATH.into())).unwrap_err()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn msg(result: Result<(), Refusal>) -> String {
    result.unwrap_err().to_string()
}

fn no_group(_: &str) -> bool {
    false
}

fn pairs(p: &Policy) -> Vec<(String, String, IpAddr, IpAddr)> {
    let pairs = p.auto_pairs();
    let tuple = |a: AutoPair| {
        let [n0, n1] = a.names;
        (n0, n1, a.addrs[0], a.addrs[1])
    };
    pairs.map(tuple).collect()
}

fn pair(n0: &str, n1: &str, a0: &str, a1: &str) -> (String, String, IpAddr, IpAddr) {
    (n0.into(), n1.into(), ip(a0), ip(a1))
}

fn prefix(text: &str) -> Prefix {
    Prefix::parse(text).unwrap()
}

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

#[test]
fn deny_wins_over_allow() {
    let p = file("allow group tunwire\nallow user alice\ndeny user alice\ndeny group interns\n");
    let tunwire = |g: &str| g == "tunwire";
    assert_eq!(
        msg(p.may_start("alice", &tunwire)),
        "alice is denied by 'deny user alice' (/etc/tunwire/policy.conf line 3)"
    );
    let both = |g: &str| g == "tunwire" || g == "interns";
    assert_eq!(
        msg(p.may_start("bob", &both)),
        "bob is denied by 'deny group interns' (/etc/tunwire/policy.conf line 4)"
    );
    assert!(p.may_start("bob", &tunwire).is_ok());
    assert!(p.may_start("carol", &tunwire).is_ok());
    // A deny line before the allow lines wins too, and the first matching deny is named.
    let p = file("deny group interns\ndeny user dave\nallow user dave\n");
    assert!(msg(p.may_start("dave", &|g| g == "interns"))
        .contains("'deny group interns' (/etc/tunwire/policy.conf line 1)"));
    assert!(msg(p.may_start("dave", &no_group))
        .contains("'deny user dave' (/etc/tunwire/policy.conf line 2)"));
    // User names match exactly.
    assert!(
        p.may_start("Dave", &no_group).is_err()
            && file("allow user dave")
                .may_start("dave2", &no_group)
                .is_err()
    );
}

#[test]
fn no_allow_line_means_nobody() {
    let nobody = "alice is not allowed to start tunwire: the policy allows nobody but root (/etc/tunwire/policy.conf has no allow line)";
    for text in [
        "",
        "pool 10.0.0.0/8\nnames tun*",
        "deny user bob",
        "capture group tunwire",
    ] {
        let p = file(text);
        assert_eq!(msg(p.may_start("alice", &|_| true)), nobody);
    }
}

#[test]
fn not_allowed_messages() {
    let p = file("allow group tunwire\n");
    assert_eq!(
        msg(p.may_start("alice", &no_group)),
        "alice is not allowed to start tunwire: the policy allows group tunwire (/etc/tunwire/policy.conf line 1)\n  hint: an administrator adds you with `usermod -aG tunwire alice`; then log in again"
    );
    assert_eq!(
        msg(Policy::builtin().may_start("alice", &no_group)),
        format!("alice is not allowed to start tunwire: the policy allows group tunwire ({BUILTIN_WHERE})\n  hint: an administrator adds you with `usermod -aG tunwire alice`; then log in again")
    );
    let p = file("allow user bob\n# x\nallow group lab\nallow group tunwire\n");
    assert_eq!(
        msg(p.may_start("alice", &no_group)),
        "alice is not allowed to start tunwire: the policy allows user bob, group lab, group tunwire (/etc/tunwire/policy.conf lines 1, 3, 4)\n  hint: an administrator adds you with `usermod -aG lab alice`; then log in again"
    );
    assert_eq!(
        p.allowed_groups(),
        vec!["lab".to_string(), "tunwire".to_string()]
    );
    let p = file("\nallow user bob\n");
    assert_eq!(
        msg(p.may_start("alice", &no_group)),
        "alice is not allowed to start tunwire: the policy allows user bob (/etc/tunwire/policy.conf line 2)\n  hint: an administrator adds the line 'allow user alice' to /etc/tunwire/policy.conf"
    );
    let other = Policy::parse("allow group x", Source::File("/tmp/p.conf".into())).unwrap();
    assert!(msg(other.may_start("a", &no_group)).contains("(/tmp/p.conf line 1)"));
}

#[test]
fn glob_matching() {
    for name in ["tun", "tun0", "tun12", "tun*", "tunnel"] {
        assert!(glob_match("tun*", name), "{name}");
    }
    for name in ["xtun0", "tu", "", "Tun0", " tun0"] {
        assert!(!glob_match("tun*", name), "{name}");
    }
    assert!(glob_match("lab?", "lab1") && glob_match("lab?", "labx") && glob_match("lab?", "labé"));
    assert!(
        !glob_match("lab?", "lab") && !glob_match("lab?", "lab12") && !glob_match("lab?", "xlab1")
    );
    assert!(glob_match("*", "") && glob_match("*", "anything") && glob_match("**", "x"));
    assert!(glob_match("wg0", "wg0") && !glob_match("wg0", "wg1") && !glob_match("wg0", "wg00"));
    assert!(
        glob_match("a*b*c", "abc")
            && glob_match("a*b*c", "axxbyyc")
            && glob_match("a*b*c", "abcbc")
    );
    assert!(!glob_match("a*b*c", "acb") && !glob_match("a*b*c", "abcx"));
    assert!(glob_match("*ab", "aab") && glob_match("*ab", "ab") && !glob_match("*ab", "aba"));
    assert!(glob_match("t?n*", "tun0") && glob_match("?*?", "ab") && !glob_match("?*?", "a"));
    assert!(glob_match("a*", "a*b") && glob_match("*-lab", "x-y-lab"));
    assert!(!glob_match("", "a") && glob_match("", ""));
}

#[test]
fn check_name_messages() {
    let p = file("names tun*\n");
    assert!(p.check_name("tun0").is_ok() && p.check_name("tun").is_ok());
    assert_eq!(
        msg(p.check_name("wg0")),
        "interface name 'wg0' is not allowed to you (names tun*; /etc/tunwire/policy.conf)"
    );
    assert_eq!(
        msg(Policy::builtin().check_name("wg0")),
        format!("interface name 'wg0' is not allowed to you (names tun*; {BUILTIN_WHERE})")
    );
    let p = file("names tun*\nnames lab?\n");
    assert_eq!(
        msg(p.check_name("xtun0")),
        "interface name 'xtun0' is not allowed to you (names tun*, lab?; /etc/tunwire/policy.conf)"
    );
    assert_eq!(
        msg(file("pool ::/0").check_name("tun0")),
        "interface name 'tun0' is not allowed: no interface name is allowed to you (/etc/tunwire/policy.conf has no names line)"
    );
    // Names the kernel refuses, or would expand, are refused whatever the globs say.
    let any = file("names *");
    let invalid = "is not a valid interface name (1-15 bytes; no '/', ':', '%', whitespace or control characters; not '.' or '..')";
    for bad in [
        "",
        "tun%d",
        "tun/0",
        "tun:0",
        "tun 0",
        "tun\n",
        "tun\u{0}",
        ".",
        "..",
        "0123456789abcdef",
    ] {
        assert_eq!(
            msg(any.check_name(bad)),
            format!("interface name '{}' {invalid}", bad.escape_debug())
        );
    }
    assert!(any.check_name("0123456789abcde").is_ok() && any.check_name("...").is_ok());
}

#[test]
fn check_table_ranges_and_reserved() {
    let p = file("tables 13\n");
    assert!(p.check_table(13).is_ok());
    assert_eq!(
        msg(p.check_table(42)),
        "table 42 is not allowed to you (tables 13; /etc/tunwire/policy.conf)"
    );
    assert_eq!(
        msg(Policy::builtin().check_table(42)),
        format!("table 42 is not allowed to you (tables 13; {BUILTIN_WHERE})")
    );
    let p = file("tables 250-260\ntables 1000\n");
    for ok in [250, 251, 252, 256, 260, 1000] {
        assert!(p.check_table(ok).is_ok(), "{ok}");
    }
    for no in [249, 261, 999, 1001] {
        assert_eq!(
            msg(p.check_table(no)),
            format!(
                "table {no} is not allowed to you (tables 250-260, 1000; /etc/tunwire/policy.conf)"
            )
        );
    }
    assert_eq!(
        msg(p.check_table(254)),
        "table 254 (main) is reserved and never allowed to you (tables 250-260, 1000; /etc/tunwire/policy.conf)"
    );
    let all = file("tables 1-4294967295");
    assert!(
        all.check_table(1).is_ok()
            && all.check_table(u32::MAX).is_ok()
            && all.check_table(252).is_ok()
    );
    for (table, name) in [
        (0, "unspec"),
        (253, "default"),
        (254, "main"),
        (255, "local"),
    ] {
        let m = msg(all.check_table(table));
        assert!(
            m.starts_with(&format!(
                "table {table} ({name}) is reserved and never allowed to you"
            )),
            "{m}"
        );
    }
    assert_eq!(
        msg(file("").check_table(13)),
        "table 13 is not allowed: no table is allowed to you (/etc/tunwire/policy.conf has no tables line)"
    );
    assert_eq!(
        msg(file("").check_table(0)),
        "table 0 (unspec) is reserved and never allowed to you (/etc/tunwire/policy.conf has no tables line)"
    );
}

#[test]
fn check_address_messages() {
    assert_eq!(
        msg(Policy::builtin().check_address(ip("192.168.14.1"))),
        format!("192.168.14.1 is outside the pools allowed to you (192.168.13.0/24, fd13::/64; {BUILTIN_WHERE})")
    );
    let p = file("pool 192.168.13.0/24\npool fd13::/64\n");
    assert_eq!(
        msg(p.check_address(ip("192.168.14.1"))),
        "192.168.14.1 is outside the pools allowed to you (192.168.13.0/24, fd13::/64; /etc/tunwire/policy.conf)"
    );
    assert_eq!(
        msg(p.check_address(ip("fd14::1"))),
        "fd14::1 is outside the pools allowed to you (192.168.13.0/24, fd13::/64; /etc/tunwire/policy.conf)"
    );
    assert_eq!(
        msg(file("names tun*").check_address(ip("192.168.14.1"))),
        "192.168.14.1 is not allowed: no pool is allowed to you (/etc/tunwire/policy.conf has no pool line)"
    );
    assert!(
        p.check_address(ip("192.168.13.0")).is_ok()
            && p.check_address(ip("192.168.13.255")).is_ok()
    );
    assert!(p.check_address(ip("::ffff:192.168.13.1")).is_err());
}

#[test]
fn check_mtu_messages() {
    let b = Policy::builtin();
    assert!(b.check_mtu(65535).is_ok() && b.check_mtu(68).is_ok());
    assert_eq!(
        msg(b.check_mtu(65536)),
        format!("MTU 65536 is above max-mtu 65535 (the default; {BUILTIN_WHERE})")
    );
    let p = file("allow group tunwire\nmax-mtu 1500\n");
    assert!(p.check_mtu(1500).is_ok());
    assert_eq!(
        msg(p.check_mtu(9000)),
        "MTU 9000 is above max-mtu 1500 (/etc/tunwire/policy.conf line 2)"
    );
    assert_eq!(
        msg(file("").check_mtu(70000)),
        "MTU 70000 is above max-mtu 65535 (the default; /etc/tunwire/policy.conf has no max-mtu line)"
    );
}

#[test]
fn wire_count_and_priority() {
    let b = Policy::builtin();
    assert!(b.check_wire_count(0).is_ok() && b.check_wire_count(3).is_ok());
    assert_eq!(
        msg(b.check_wire_count(4)),
        format!("you already run 4 wires, the most max-wires 4 allows ({BUILTIN_WHERE})")
    );
    let p = file("\n\nmax-wires 4\n");
    assert_eq!(
        msg(p.check_wire_count(4)),
        "you already run 4 wires, the most max-wires 4 allows (/etc/tunwire/policy.conf line 3)"
    );
    assert_eq!(
        msg(p.check_wire_count(6)),
        "you already run 6 wires, the most max-wires 4 allows (/etc/tunwire/policy.conf line 3)"
    );
    assert_eq!(
        msg(file("max-wires 1").check_wire_count(1)),
        "you already run 1 wire, the most max-wires 1 allows (/etc/tunwire/policy.conf line 1)"
    );
    assert_eq!(
        msg(file("max-wires 0").check_wire_count(0)),
        "max-wires 0 allows you no wires (/etc/tunwire/policy.conf line 1)"
    );
    assert_eq!(
        msg(file("").check_wire_count(4)),
        "you already run 4 wires, the most max-wires 4 allows (the default; /etc/tunwire/policy.conf has no max-wires line)"
    );
    assert!(file("max-wires 4294967295")
        .check_wire_count(u32::MAX - 1)
        .is_ok());
    assert_eq!(
        (b.priority(), file("priority 32765").priority()),
        (100, 32765)
    );
}

#[test]
fn capture_readers() {
    let p = file("allow group tunwire\ndeny user eve\ncapture user eve\ncapture group audit\ncapture user sam\n");
    assert_eq!(
        p.capture_readers(),
        (
            vec!["eve".to_string(), "sam".to_string()],
            vec!["audit".to_string()]
        )
    );
    assert!(p.may_capture("eve", &no_group));
    assert!(p.may_capture("zoe", &|g| g == "audit"));
    assert!(!p.may_capture("zoe", &|g| g == "tunwire"));
    assert!(!Policy::builtin().may_capture("alice", &|_| true));
    assert!(file("allow user a").capture_readers() == (vec![], vec![]));
}

#[test]
fn auto_pairs_builtin() {
    let all = pairs(&Policy::builtin());
    assert_eq!(all[0], pair("tun0", "tun1", "192.168.13.1", "192.168.13.2"));
    assert_eq!(all[1], pair("tun2", "tun3", "192.168.13.3", "192.168.13.4"));
    assert_eq!(all[2], pair("tun4", "tun5", "192.168.13.5", "192.168.13.6"));
    assert_eq!(all.len(), 127);
    assert_eq!(
        all[126],
        pair("tun252", "tun253", "192.168.13.253", "192.168.13.254")
    );
    let b = Policy::builtin();
    for p in b.auto_pairs() {
        assert!(p.names.iter().all(|n| b.check_name(n).is_ok()));
        assert!(p.addrs.iter().all(|&a| b.check_address(a).is_ok()));
    }
}

#[test]
fn auto_pairs_small_pools() {
    let p30 = file("pool 10.0.0.0/30\nnames t*");
    assert_eq!(pairs(&p30), [pair("t0", "t1", "10.0.0.1", "10.0.0.2")]);
    let p31 = file("pool 10.0.0.0/31\nnames t*");
    assert_eq!(pairs(&p31), [pair("t0", "t1", "10.0.0.0", "10.0.0.1")]);
    assert!(pairs(&file("pool 10.0.0.0/32\nnames t*")).is_empty());
    let p29 = file("pool 10.0.0.8/29\nnames t*");
    assert_eq!(pairs(&p29).len(), 3);
    assert_eq!(pairs(&p29)[2], pair("t4", "t5", "10.0.0.13", "10.0.0.14"));
    let top = file("pool 255.255.255.252/30\nnames t*");
    assert_eq!(
        pairs(&top),
        [pair("t0", "t1", "255.255.255.253", "255.255.255.254")]
    );
    let p127 = file("pool fd00::/127\nnames t*");
    assert_eq!(pairs(&p127), [pair("t0", "t1", "fd00::", "fd00::1")]);
    let p126 = file("pool fd00::/126\nnames t*");
    assert_eq!(pairs(&p126), [pair("t0", "t1", "fd00::1", "fd00::2")]);
}

#[test]
fn auto_pairs_ipv6_only_and_pool_choice() {
    let p = file("pool fd00:1::/64\nnames w*");
    let all = pairs(&p);
    assert_eq!(all[0], pair("w0", "w1", "fd00:1::1", "fd00:1::2"));
    assert_eq!(all[1], pair("w2", "w3", "fd00:1::3", "fd00:1::4"));
    assert_eq!(all.len(), 10_000);
    assert_eq!(
        all[9_999],
        pair("w19998", "w19999", "fd00:1::4e1f", "fd00:1::4e20")
    );
    // IPv4 is preferred even when listed later; '::/0' does not overflow.
    let p = file("pool fd13::/64\npool 10.0.0.0/24\npool 10.1.0.0/24\nnames t*");
    assert_eq!(pairs(&p)[0], pair("t0", "t1", "10.0.0.1", "10.0.0.2"));
    assert_eq!(
        pairs(&file("pool ::/0\nnames t*"))[0],
        pair("t0", "t1", "::1", "::2")
    );
    assert_eq!(pairs(&file("pool 0.0.0.0/0\nnames t*")).len(), 10_000);
}

#[test]
fn auto_pairs_needs_a_usable_glob_and_a_pool() {
    assert!(pairs(&file("pool 10.0.0.0/24\nnames wg0")).is_empty());
    assert!(pairs(&file("pool 10.0.0.0/24\nnames lab?\nnames a*b*")).is_empty());
    assert!(pairs(&file("pool 10.0.0.0/24\nnames t?n*")).is_empty());
    assert!(pairs(&file("names tun*")).is_empty());
    let p = file("pool 10.0.0.0/24\nnames wg0\nnames a*b*\nnames lab*x");
    assert_eq!(pairs(&p)[0], pair("lab0x", "lab1x", "10.0.0.1", "10.0.0.2"));
    // Names longer than 15 bytes end the sequence.
    let p = file("pool 10.0.0.0/16\nnames abcdefghijklm*");
    let all = pairs(&p);
    assert_eq!(all.len(), 50);
    assert_eq!(all[49].0, "abcdefghijklm98");
    assert!(pairs(&file("pool 10.0.0.0/16\nnames abcdefghijklmn*")).len() == 5);
}

#[test]
fn describe_builtin_and_file() {
    assert_eq!(
        Policy::builtin().describe(),
        "# built-in policy (/etc/tunwire/policy.conf does not exist)\nallow group tunwire\n\
         pool 192.168.13.0/24\npool fd13::/64\nnames tun*\ntables 13\nmax-wires 4\n\
         max-mtu 65535  # default\npriority 100  # default\n"
    );
    let p = file("deny user x\npool 10.0.0.0/8\ncapture group audit\nmax-mtu 1500\ntables 5-9\n");
    assert_eq!(
        p.describe(),
        "# policy from /etc/tunwire/policy.conf\ndeny user x  # line 1\n\
         # no allow line: nobody but root may start tunwire\npool 10.0.0.0/8  # line 2\n\
         # no names line: no interface name is allowed\ntables 5-9  # line 5\n\
         max-wires 4  # default\nmax-mtu 1500  # line 4\npriority 100  # default\n\
         capture group audit  # line 3\n"
    );
}

/// Settings as text without comments, to compare policies whatever their line numbers.
fn settings(p: &Policy) -> Vec<String> {
    let text = p.describe();
    let lines = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim());
    lines.filter(|l| !l.is_empty()).map(String::from).collect()
}

#[test]
fn describe_parses_back() {
    let text =
        "allow group a\ndeny user b\npool 10.0.0.1\npool fd13::/64\nnames x?y*\ntables 1-2\n\
                tables 9\nmax-wires 0\npriority 7\ncapture user c\ncapture group d\n";
    for p in [file(text), Policy::builtin(), file("")] {
        let again = file(&p.describe());
        assert_eq!(settings(&p), settings(&again));
        assert_eq!(file(&again.describe()).describe(), again.describe());
    }
}

/// A small deterministic generator, so the garbage test needs no dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % below.max(1)
    }
}

fn exercise(p: &Policy, rng: &mut Lcg) {
    let _ = p.may_start("alice", &|g| g.len() % 2 == 0);
    let _ = p.may_capture("alice", &|_| true);
    for addr in [
        "0.0.0.0",
        "10.0.0.1",
        "255.255.255.255",
        "::",
        "fd13::1",
        "::ffff:1.2.3.4",
    ] {
        let _ = p.check_address(ip(addr));
    }
    for name in ["", "tun0", "é", "**", "a?b", "0123456789abcdefg"] {
        let _ = p.check_name(name);
    }
    for n in [
        0,
        1,
        13,
        253,
        254,
        255,
        65535,
        u32::MAX,
        rng.next(1000) as u32,
    ] {
        let _ = (p.check_table(n), p.check_mtu(n), p.check_wire_count(n));
    }
    let _ = (
        p.priority(),
        p.max_wires(),
        p.capture_readers(),
        p.allowed_groups(),
    );
    for pair in p.auto_pairs().take(20) {
        assert!(
            pair.names.iter().all(|n| p.check_name(n).is_ok()),
            "{pair:?}"
        );
        assert!(
            pair.addrs.iter().all(|&a| p.check_address(a).is_ok()),
            "{pair:?}"
        );
    }
    let again = file(&p.describe());
    assert_eq!(settings(p), settings(&again));
}

#[test]
fn garbage_never_panics() {
    let words = [
        "allow",
        "deny",
        "capture",
        "group",
        "user",
        "pool",
        "names",
        "tables",
        "max-wires",
        "max-mtu",
        "priority",
        "#",
        "/",
        "-",
        "*",
        "?",
        "%",
        ":",
        "192.168.13.0/24",
        "::/0",
        "fd13::/64",
        "10.0.0.1/31",
        "0.0.0.0/0",
        "0",
        "1",
        "68",
        "253",
        "65535",
        "32765",
        "4294967295",
        "4294967296",
        "1-",
        "-1",
        "13-12",
        "1-300",
        "tun*",
        "*",
        "a*b",
        "\u{0}",
        "é",
        "\t",
        "\r",
        "\n",
        "\n",
        "\n",
        " ",
        " ",
        " ",
        "💥",
        "\u{202e}",
        "x".repeat(40).leak(),
    ];
    let mut rng = Lcg(0x5eed);
    let mut parsed = 0;
    for round in 0..4000 {
        let mut text = String::new();
        for _ in 0..rng.next(40) {
            if round % 3 == 0 {
                let bytes: Vec<u8> = (0..rng.next(8)).map(|_| rng.next(256) as u8).collect();
                text.push_str(&String::from_utf8_lossy(&bytes));
            } else {
                text.push_str(words[rng.next(words.len())]);
            }
            text.push_str([" ", "\n", "", "\t"][rng.next(4)]);
        }
        if let Ok(p) = Policy::parse(&text, Source::File(PATH.into())) {
            parsed += 1;
            exercise(&p, &mut rng);
        }
    }
    assert!(parsed > 100, "only {parsed} garbage inputs parsed");
}

#[test]
fn big_inputs_parse_linearly() {
    let many = "names tun*\npool 10.0.0.0/8\ntables 1-100\n".repeat(3_400);
    let p = file(&many);
    assert_eq!(p.names.len(), 3_400);
    assert!(p.check_name("wg0").is_err());
    let long = "*".repeat(64 * 1024);
    assert!(err(&format!("names {long}")).starts_with("line 1: names '***"));
    assert!(err(&"pool ".repeat(13_000)).starts_with("line 1: expected 'pool PREFIX'"));
    assert!(err(&"9".repeat(64 * 1024)).starts_with("line 1: unknown setting '999"));
    assert_eq!(file(&"\n".repeat(10_000)), file(""));
    assert_eq!(
        err(&format!("{}x", "#\n".repeat(9_999))),
        format!("line 10000: unknown setting 'x' (expected {SETTINGS})")
    );
}

#[test]
fn refusal_displays_its_message() {
    let r = Refusal {
        message: "no".into(),
    };
    assert_eq!(r.to_string(), "no");
    let boxed: Box<dyn std::error::Error> = Box::new(r);
    assert_eq!(boxed.to_string(), "no");
}
