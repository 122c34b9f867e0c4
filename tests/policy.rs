// SPDX-License-Identifier: MIT OR Apache-2.0
//! Integration tests for the issue "Members may run experiments, never hijack the host": the
//! administrator's policy (/etc/tunwire/policy.conf, or the built-in one), the conflict checks
//! that bind root too, automatic pairs and their races, ownership recorded in the kernel,
//! `tunwire list`, the removal of killed wires' leftovers, and the hardening (never dumpable,
//! seccomp, capture outputs, audit, sudo). The real binary runs as root or as the test members
//! (through a `cap_net_admin+ep` copy) in a private network + mount namespace per test (see
//! tests/common); a test's policy file exists only in that namespace's /etc overlay. Traffic
//! goes only to addresses inside the namespace.

mod common;

use common::*;
use std::collections::BTreeSet;

/// The policy file; the path is fixed in the binary.
const POLICY: &str = "/etc/tunwire/policy.conf";
/// How the built-in policy is cited in refusals.
const BUILTIN: &str = "built-in policy: /etc/tunwire/policy.conf does not exist";
/// Exit status of every refusal.
const NOPERM: Option<i32> = Some(77);

// ----------------------------------------------------------------------------------------------
// Private helpers
// ----------------------------------------------------------------------------------------------

/// Member `i` of ten: 0 is `twmember`, 1..=9 are `twmember2..twmember10`.
fn member(i: usize) -> &'static TestUser {
    match i {
        0 => &MEMBER,
        _ => &EXTRA_MEMBERS[i - 1],
    }
}

/// A host interface: a veth `name` (peer `name`p) with `cidr`, both ends up, so the namespace
/// has the address and its LAN route, as a real uplink would. No IPv6 link-local addresses:
/// their duplicate address detection would change the state while a test compares it.
fn host_iface(ns: &Netns, name: &str, cidr: &str) {
    ns.sh_ok(&format!(
        "ip link add {name} type veth peer name {name}p
         ip link set {name} addrgenmode none; ip link set {name}p addrgenmode none
         ip addr add {cidr} dev {name}
         ip link set {name} up; ip link set {name}p up"
    ));
}

/// Runs `f` while `ip monitor` watches the namespace's links, addresses, routes and rules;
/// returns what `f` returned and every event between two marker rules the test adds and
/// deletes around it. A start that changed the kernel's state, even for a moment (a TUN
/// created and closed again), shows up here although the state afterwards is the same.
fn kernel_events_during<T>(ns: &Netns, f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let mon = ns.spawn_bg("exec ip -o monitor link address route rule");
    let mark = |n: u8| {
        ns.sh_ok(&format!(
            "ip rule add pref 31999 from 203.0.113.{n} lookup 31999 && ip rule del pref 31999"
        ));
    };
    let marker = |n: u8| format!("from 203.0.113.{n} lookup 31999");
    let deleted = |l: &str, n: u8| l.starts_with("Deleted 31999:") && l.contains(&marker(n));
    // Until the monitor listens, the first markers go unseen: repeat.
    let listening = wait_until(READY_TIMEOUT, || {
        mark(1);
        mon.stdout().lines().any(|l| deleted(l, 1))
    });
    assert!(listening, "ip monitor never reported the marker rule");
    let result = f();
    mark(2);
    assert!(
        wait_until(READY_TIMEOUT, || mon
            .stdout()
            .lines()
            .any(|l| deleted(l, 2))),
        "ip monitor never reported the closing marker rule"
    );
    let out = mon.stdout();
    let lines: Vec<&str> = out.lines().collect();
    let from = lines.iter().rposition(|l| deleted(l, 1)).expect("marker 1") + 1;
    let to = lines
        .iter()
        .position(|l| l.contains(&marker(2)))
        .expect("marker 2");
    let events = lines[from..to].iter().map(|l| l.to_string()).collect();
    (result, events)
}

/// Start `args` as `who`, expect exit 77 with an `error:` line containing every needle and an
/// audit line `start refused`; no kernel change happened, not even for a moment, and the
/// routing state is unchanged byte for byte.
fn assert_refused(ns: &Netns, args: &[&str], who: As, needles: &[&str]) -> Exited {
    let before = ns.state();
    let (e, events) = kernel_events_during(ns, || ns.run_tunwire(args, who));
    assert!(
        events.is_empty(),
        "a refused start ({args:?} as {who:?}) changed the kernel's state:\n{}\n{e}",
        events.join("\n")
    );
    assert_eq!(
        e.code, NOPERM,
        "tunwire {args:?} as {who:?} should exit 77: {e}"
    );
    // The error line and its continuation lines (`  hint: ...`).
    let error: Vec<&str> = e
        .stderr
        .lines()
        .skip_while(|l| !l.contains("tunwire: error: "))
        .enumerate()
        .take_while(|(i, l)| *i == 0 || l.starts_with("  "))
        .map(|(_, l)| l)
        .collect();
    assert!(!error.is_empty(), "no error line for {args:?}: {e}");
    let error = error.join("\n");
    for needle in needles {
        assert!(
            error.contains(needle),
            "the error for {args:?} as {who:?} should contain {needle:?}:\n{error}\n{e}"
        );
    }
    let audit = e
        .stderr
        .lines()
        .find(|l| l.contains("audit: ") && l.contains(": start refused: "))
        .unwrap_or_else(|| panic!("no `start refused` audit line for {args:?}: {e}"));
    assert!(
        audit.contains(needles[0]),
        "the audit line should give the reason {:?}:\n{audit}",
        needles[0]
    );
    assert!(
        !e.stderr.contains("ready:") && !e.stderr.contains("start allowed"),
        "{e}"
    );
    assert_eq!(
        ns.state(),
        before,
        "a refused start ({args:?} as {who:?}) changed the state"
    );
    e
}

/// The names and addresses of a wire, from its `ready:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pair {
    a: String,
    a_addr: String,
    b: String,
    b_addr: String,
}

/// `ready: tun2 192.168.13.3 <-> tun3 192.168.13.4 (table 13), relaying as twmember2`
fn ready_pair(stderr: &str) -> Pair {
    let line = stderr
        .lines()
        .find_map(|l| l.split_once("ready: ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no ready line:\n{stderr}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    assert!(w.len() >= 5 && w[2] == "<->", "ready line: {line}");
    Pair {
        a: w[0].into(),
        a_addr: w[1].into(),
        b: w[3].into(),
        b_addr: w[4].into(),
    }
}

/// Nothing of any wire is left: no TUN link, no rule with our tag in either family.
fn assert_no_wires(ns: &Netns) {
    let tuns = ns.sh_ok("ip -o link show type tun");
    assert!(tuns.trim().is_empty(), "TUN links left:\n{tuns}");
    let rules = ns.rules();
    assert!(!rules.contains("proto 199"), "rules of ours left:\n{rules}");
}

/// SIGTERM every instance; each must exit 0.
fn stop_all(wires: &mut [Instance]) {
    for w in wires.iter() {
        w.signal("TERM");
    }
    for w in wires.iter_mut() {
        let e = w.wait_exit(EXIT_TIMEOUT);
        assert_eq!(e.code, Some(0), "SIGTERM should give exit 0: {e}");
    }
}

/// Every wire's names and addresses differ from every other's, and each address is on
/// exactly one interface of the namespace.
fn assert_disjoint(ns: &Netns, pairs: &[Pair]) {
    let mut names = BTreeSet::new();
    let mut addrs = BTreeSet::new();
    for pair in pairs {
        for n in [&pair.a, &pair.b] {
            assert!(names.insert(n.clone()), "{n} is held twice: {pairs:#?}");
        }
        for a in [&pair.a_addr, &pair.b_addr] {
            assert!(addrs.insert(a.clone()), "{a} is held twice: {pairs:#?}");
        }
    }
    let listing = ns.sh_ok("ip -o -4 addr show");
    for a in &addrs {
        let holders = listing
            .lines()
            .filter(|l| l.contains(&format!(" inet {a} ")))
            .count();
        assert_eq!(holders, 1, "{a} should be on one interface:\n{listing}");
    }
}

/// The policy most tests write: the built-in one as a file, with max-wires on line 7.
const LAB_POLICY: &str = "\
# tunwire policy (test)
allow group tunwire
pool 192.168.13.0/24
pool fd13::/64
names tun*
tables 13
max-wires 4
";

#[test]
#[ignore = "needs root"]
fn the_event_monitor_sees_a_change_that_is_undone_at_once() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    // What assert_refused relies on: a TUN that lives for a moment is seen.
    let ((), events) = kernel_events_during(&ns, || {
        ns.sh_ok("ip tuntap add mode tun twx0 && ip tuntap del mode tun twx0");
    });
    assert!(
        events.iter().any(|e| e.contains("twx0"))
            && events.iter().any(|e| e.starts_with("Deleted")),
        "{events:#?}"
    );
    let ((), events) = kernel_events_during(&ns, || {});
    assert!(events.is_empty(), "{events:#?}");
}

// ----------------------------------------------------------------------------------------------
// The policy: what members may claim, and conflicts with the namespace
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn builtin_policy_refusals_exit_77_and_change_nothing() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    assert!(
        !ns.sh("test -e /etc/tunwire/policy.conf").status.success(),
        "this test needs the built-in policy"
    );
    // An uplink with a LAN, and a second one whose LAN lies inside the built-in pool.
    host_iface(&ns, "twv0", "10.50.0.1/24");
    host_iface(&ns, "twv2", "192.168.13.129/25");
    let me = As::CapUser(&MEMBER);
    let out_of_pools =
        &format!("is outside the pools allowed to you (192.168.13.0/24, fd13::/64; {BUILTIN})");
    let names = &format!("(names tun*; {BUILTIN})");
    let tables = &format!("(tables 13; {BUILTIN})");
    let cases: [(&[&str], [&str; 2]); 8] = [
        (
            &["tun0=1.1.1.1", "tun1=192.168.13.2"],
            ["1.1.1.1 is outside the pools", out_of_pools],
        ),
        (
            &["tun0=10.50.0.1", "tun1=192.168.13.2"],
            ["10.50.0.1 is outside the pools", out_of_pools],
        ),
        (
            &["tun0=192.168.13.1", "tun1=10.50.0.7"],
            ["10.50.0.7 is outside the pools", out_of_pools],
        ),
        (
            &["wg0=192.168.13.1", "wg1=192.168.13.2"],
            ["interface name 'wg0' is not allowed to you", names],
        ),
        (
            &["--table", "42"],
            ["table 42 is not allowed to you", tables],
        ),
        // Inside the pool, but the host's: the conflict checks bind members too.
        (
            &["tun0=192.168.13.129", "tun1=192.168.13.2"],
            ["192.168.13.129 is already assigned to twv2", "--force"],
        ),
        (
            &["tun0=192.168.13.1", "tun1=192.168.13.140"],
            [
                "192.168.13.140 lies inside the route 192.168.13.128/25 dev twv2",
                "divert",
            ],
        ),
        (
            &["--force"],
            ["--force needs root", "only root may override"],
        ),
    ];
    for (args, needles) in cases {
        let e = assert_refused(&ns, args, me, &needles);
        assert!(
            e.stderr
                .contains("audit: uid 64001 (twmember): start refused"),
            "{e}"
        );
    }
    // The same member, asking for what the policy allows, gets a working wire: the refusals
    // above came from the rules they name, not from a member never being allowed.
    let mut tw = ns.up(&[], me);
    assert_eq!(
        ready_pair(&tw.stderr()),
        Pair {
            a: "tun0".into(),
            a_addr: "192.168.13.1".into(),
            b: "tun1".into(),
            b_addr: "192.168.13.2".into()
        }
    );
    ns.assert_ping(B4);
    stop_clean(&ns, &mut tw);
}

#[test]
#[ignore = "needs root"]
fn policy_file_refusals_cite_the_file_and_change_nothing() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    host_iface(&ns, "twv0", "10.50.0.1/24");
    // Pools, names and tables that exist only in this file: a start that follows the built-in
    // policy instead would refuse or allow different things.
    ns.write_file(
        POLICY,
        "\
# lab policy (test)
allow group tunwire

pool 10.50.0.0/16
pool 192.168.13.0/24
names tun*
names lab?
tables 13-14
",
        0o644,
    );
    let me = As::CapUser(&MEMBER);
    let pools = "(10.50.0.0/16, 192.168.13.0/24; /etc/tunwire/policy.conf)";
    let cases: [(&[&str], [&str; 2]); 7] = [
        (
            &["tun0=1.1.1.1", "tun1=192.168.13.2"],
            ["1.1.1.1 is outside the pools allowed to you", pools],
        ),
        // In the file's pool, but the address of a host interface.
        (
            &["lab0=10.50.0.1", "lab1=10.50.1.2"],
            ["10.50.0.1 is already assigned to twv0", "--force"],
        ),
        // In the file's pool, but inside the host's LAN prefix.
        (
            &["lab0=10.50.1.1", "lab1=10.50.0.7"],
            [
                "10.50.0.7 lies inside the route 10.50.0.0/24 dev twv0",
                "divert",
            ],
        ),
        (
            &["wg0=10.50.1.1", "wg1=10.50.1.2"],
            [
                "interface name 'wg0' is not allowed to you",
                "(names tun*, lab?; /etc/tunwire/policy.conf)",
            ],
        ),
        (
            &["--table", "42"],
            [
                "table 42 is not allowed to you",
                "(tables 13-14; /etc/tunwire/policy.conf)",
            ],
        ),
        (
            &["--table", "15"],
            [
                "table 15 is not allowed to you",
                "(tables 13-14; /etc/tunwire/policy.conf)",
            ],
        ),
        (
            &["--force"],
            ["--force needs root", "only root may override"],
        ),
    ];
    for (args, needles) in cases {
        assert_refused(&ns, args, me, &needles);
    }
    // What only this file allows (pool 10.50.0.0/16 outside the LAN, names lab?, table 14)
    // works, so the file, not the built-in policy, was in force.
    let mut tw = ns.up(&["--table", "14", "lab0=10.50.1.1", "lab1=10.50.1.2"], me);
    assert!(
        tw.stderr()
            .contains("ready: lab0 10.50.1.1 <-> lab1 10.50.1.2 (table 14), relaying as twmember"),
        "{}",
        tw.stderr()
    );
    ns.assert_ping("10.50.1.2");
    let e = tw.stop("TERM");
    assert_eq!(e.code, Some(0), "{e}");
    assert_no_wires(&ns);
}

#[test]
#[ignore = "needs root"]
fn deny_user_wins_over_allow_group() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    // The deny line comes after the allow line that matches too: it still wins.
    ns.write_file(
        POLICY,
        "\
# everyone in tunwire, except one
allow group tunwire
pool 192.168.13.0/24
deny user twmember
names tun*
tables 13
",
        0o644,
    );
    assert_refused(
        &ns,
        &[],
        As::CapUser(&MEMBER),
        &[
            "twmember is denied by 'deny user twmember'",
            "(/etc/tunwire/policy.conf line 4)",
        ],
    );
    // The allow line itself works for the other members of the group.
    let mut tw = ns.up(&[], As::CapUser(member(1)));
    ns.assert_ping(B4);
    stop_clean(&ns, &mut tw);

    // Without an allow line that matches, nobody else may start; the message cites it.
    ns.write_file(
        POLICY,
        "pool 192.168.13.0/24\nnames tun*\nallow user twmember2\ntables 13\n",
        0o644,
    );
    assert_refused(
        &ns,
        &[],
        As::CapUser(&MEMBER),
        &[
            "twmember is not allowed to start tunwire: the policy allows user twmember2",
            "(/etc/tunwire/policy.conf line 3)",
        ],
    );
}

#[test]
#[ignore = "needs root"]
fn unsafe_policy_file_refuses_every_member_but_not_root() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    // Group-writable: a member of that group could have written it.
    ns.write_file(POLICY, LAB_POLICY, 0o664);
    for i in [0, 1] {
        assert_refused(
            &ns,
            &[],
            As::CapUser(member(i)),
            &[
                "the policy /etc/tunwire/policy.conf is writable by group or others (mode 664)",
                "refuses non-root starts until root fixes it",
            ],
        );
    }
    // Root is not bound by the policy: it starts, and says what is wrong with the file.
    let mut tw = ns.up(&[], As::Root);
    let stderr = tw.stderr();
    assert!(
        stderr.contains("writable by group or others")
            && stderr.contains("root is not bound by it"),
        "root's start should warn about the file:\n{stderr}"
    );
    ns.assert_ping(B4);
    stop_clean(&ns, &mut tw);

    // Owned by a member, or in a directory others may write: refused the same way.
    ns.write_file(POLICY, LAB_POLICY, 0o644);
    ns.sh_ok(&format!("chown twmember {POLICY}"));
    assert_refused(
        &ns,
        &[],
        As::CapUser(member(1)),
        &["belongs to uid 64001, not root", "refuses non-root starts"],
    );
    ns.sh_ok(&format!("chown root {POLICY}; chmod 0777 /etc/tunwire"));
    assert_refused(
        &ns,
        &[],
        As::CapUser(member(1)),
        &[
            "lies in /etc/tunwire, which someone other than root may write",
            "refuses non-root starts",
        ],
    );
    // Fixed: members start again.
    ns.sh_ok("chmod 0755 /etc/tunwire");
    let mut tw = ns.up(&[], As::CapUser(member(1)));
    stop_clean(&ns, &mut tw);
}

#[test]
#[ignore = "needs root"]
fn root_needs_force_for_an_address_in_a_host_lan() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    host_iface(&ns, "twv0", "10.50.0.1/24");
    let sides = ["tun0=10.50.0.7", "tun1=10.50.0.8"];
    assert_refused(
        &ns,
        &sides,
        As::Root,
        &[
            "10.50.0.7 lies inside the route 10.50.0.0/24 dev twv0",
            "hint: root may override this with --force",
        ],
    );
    let mut tw = ns.up(&["--force", sides[0], sides[1]], As::Root);
    let stderr = tw.stderr();
    assert!(
        stderr.contains("warning: --force: 10.50.0.7 lies inside the route 10.50.0.0/24 dev twv0"),
        "the override should be logged:\n{stderr}"
    );
    ns.assert_ping("10.50.0.8");
    stop_clean(&ns, &mut tw);
    // The host's LAN is as it was.
    let lan = ns.sh_ok("ip route show 10.50.0.0/24");
    assert!(lan.contains("dev twv0"), "{lan}");
}

#[test]
#[ignore = "needs root"]
fn max_wires_limits_each_member_separately() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    ns.write_file(POLICY, LAB_POLICY, 0o644);
    let mut wires: Vec<Instance> = (0..4).map(|_| ns.up(&[], As::CapUser(&MEMBER))).collect();
    let pairs: Vec<Pair> = wires.iter().map(|w| ready_pair(&w.stderr())).collect();
    assert_disjoint(&ns, &pairs);
    assert_refused(
        &ns,
        &[],
        As::CapUser(&MEMBER),
        &[
            "you already run 4 wires, the most max-wires 4 allows",
            "(/etc/tunwire/policy.conf line 7)",
        ],
    );
    // Explicit sides are counted the same way.
    assert_refused(
        &ns,
        &["tun20=192.168.13.41", "tun21=192.168.13.42"],
        As::CapUser(&MEMBER),
        &["you already run 4 wires, the most max-wires 4 allows"],
    );
    // The limit is per member: another member still gets a wire.
    let other = ns.up(&[], As::CapUser(member(1)));
    let pair = ready_pair(&other.stderr());
    assert_eq!(
        (pair.a.as_str(), pair.b_addr.as_str()),
        ("tun8", "192.168.13.10"),
        "the fifth pair of the pool"
    );
    ns.assert_ping("192.168.13.10");
    wires.push(other);
    stop_all(&mut wires);
    assert_no_wires(&ns);
}
