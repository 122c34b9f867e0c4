// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the policy answers: who may start, every refusal message, automatic pairs, and
//! garbage that never panics.

use super::*;

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
