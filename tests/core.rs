// SPDX-License-Identifier: MIT OR Apache-2.0
//! Integration tests for the core wire: the real binary, as root or as test users, in a private
//! network namespace per test (see tests/common). Checks use real tools: ping, tcpdump, curl,
//! `ip rule`, `ip route`, /proc/PID/status. Nothing here touches the host's network.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::fs;

const ZERO_CAPS: &str = "0000000000000000";
const NET_ADMIN_ONLY: &str = "0000000000001000";

/// Lines of `ip [-6] rule show` that contain `needle`.
fn rule_lines(ns: &Netns, family: &str, needle: &str) -> Vec<String> {
    ns.sh_ok(&format!("ip {family} rule show"))
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

fn assert_caps(status: &std::collections::BTreeMap<String, String>, who: &str, fields: &[&str]) {
    for field in fields {
        assert_eq!(
            status.get(*field).map(String::as_str),
            Some(ZERO_CAPS),
            "{who}: {field} should be empty; status: {status:#?}"
        );
    }
}

fn gid_set(ids: Vec<u32>) -> BTreeSet<u32> {
    ids.into_iter().collect()
}

#[test]
#[ignore = "needs root"]
fn harness_isolates_network_and_accounts() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    ns.sh_ok("ip link add twv0 type veth peer name twv1");
    assert!(ns.has_link("twv0"), "veth not visible inside the namespace");
    let host = std::process::Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link on the host");
    assert!(
        !String::from_utf8_lossy(&host.stdout).contains("twv0"),
        "the namespace leaked onto the host"
    );
    let id = ns.sh_ok("setpriv --reuid=64001 --regid=64001 --init-groups id -G");
    let gids: Vec<u32> = id.split_whitespace().map(|g| g.parse().unwrap()).collect();
    assert_eq!(gid_set(gids), gid_set(member_gids()), "twmember's groups");
    assert!(
        ns.sh_ok("ls -l /dev/net/tun").starts_with("crw-rw-rw-"),
        "the namespace's /dev/net/tun should be 0666"
    );
}

#[test]
#[ignore = "needs root"]
fn ping_crosses_the_pair() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let mut tw = ns.up(&[], As::Root);
    let stderr = tw.stderr();
    assert!(
        stderr.contains(
            "ready: tun0 192.168.13.1 <-> tun1 192.168.13.2 (table 13), relaying as nobody"
        ),
        "ready line (default user without SUDO_USER is nobody):\n{stderr}"
    );
    ns.assert_ping(B4);
    let exited = stop_clean(&ns, &mut tw);
    let (packets, _) = counter(&exited.stderr, "tun0 -> tun1").unwrap_or_else(|| {
        panic!(
            "no `tun0 -> tun1:` counter line at exit:\n{}",
            exited.stderr
        )
    });
    assert!(
        packets >= 3,
        "3 echo requests crossed tun0 -> tun1, counted {packets}"
    );
    let (packets, _) = counter(&exited.stderr, "tun1 -> tun0").unwrap_or_else(|| {
        panic!(
            "no `tun1 -> tun0:` counter line at exit:\n{}",
            exited.stderr
        )
    });
    assert!(
        packets >= 3,
        "3 echo replies crossed tun1 -> tun0, counted {packets}"
    );
}

#[test]
#[ignore = "needs root"]
fn tcpdump_on_tun1_sees_the_echo() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let mut tw = ns.up(&[], As::Root);
    let mut tcpdump = ns.tcpdump("-i tun1 -c 2 icmp");
    ns.assert_ping(B4);
    let dump = tcpdump.wait(EXIT_TIMEOUT);
    assert_eq!(dump.code, Some(0), "tcpdump: {dump}");
    assert!(
        dump.stdout
            .contains("192.168.13.1 > 192.168.13.2: ICMP echo request"),
        "echo request not seen on tun1: {dump}"
    );
    assert!(
        dump.stdout
            .contains("192.168.13.2 > 192.168.13.1: ICMP echo reply"),
        "echo reply not seen on tun1: {dump}"
    );
    stop_clean(&ns, &mut tw);
}

#[test]
#[ignore = "needs root"]
fn five_megabytes_over_tcp_arrive_intact() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let dir = ns.dir().display().to_string();
    ns.sh_ok(&format!(
        "mkdir {dir}/www && head -c 5242880 /dev/urandom > {dir}/www/file"
    ));
    let mut tw = ns.up(&[], As::Root);
    // The pair addresses are not in table local, so the server listens on 0.0.0.0.
    let _server = ns.spawn_bg(&format!(
        "cd {dir}/www && exec python3 -m http.server 8013 --bind 0.0.0.0"
    ));
    assert!(
        wait_until(READY_TIMEOUT, || ns
            .sh("curl -sf -o /dev/null http://127.0.0.1:8013/")
            .status
            .success()),
        "the test http server did not start"
    );
    ns.sh_ok(&format!(
        "curl -sSf --max-time 120 -o {dir}/out http://{B4}:8013/file"
    ));
    let sums = ns.sh_ok(&format!(
        "sha256sum < {dir}/www/file; sha256sum < {dir}/out"
    ));
    let sums: Vec<&str> = sums.lines().collect();
    assert_eq!(sums.len(), 2, "{sums:?}");
    assert_eq!(sums[0], sums[1], "the 5 MB file changed on the way");
    let exited = stop_clean(&ns, &mut tw);
    let (_, bytes) = counter(&exited.stderr, "tun1 -> tun0")
        .unwrap_or_else(|| panic!("no `tun1 -> tun0:` counter line:\n{}", exited.stderr));
    assert!(
        bytes >= 5 * 1024 * 1024,
        "the file (server .2 -> client .1) should have crossed tun1 -> tun0, counted {bytes} bytes"
    );
}

#[test]
#[ignore = "needs root"]
fn ipv6_ping_crosses_the_pair() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let mut tw = ns.up(&DUAL, As::Root);
    let stderr = tw.stderr();
    assert!(
        stderr
            .contains("ready: tun0 192.168.13.1,fd13::1 <-> tun1 192.168.13.2,fd13::2 (table 13)"),
        "ready line with IPv6 after IPv4:\n{stderr}"
    );
    let mut tcpdump = ns.tcpdump("-i tun1 -c 2 'ip6[40] == 128 or ip6[40] == 129'");
    ns.assert_ping(B6);
    let dump = tcpdump.wait(EXIT_TIMEOUT);
    assert_eq!(dump.code, Some(0), "tcpdump: {dump}");
    assert!(
        dump.stdout
            .contains("fd13::1 > fd13::2: ICMP6, echo request"),
        "IPv6 echo request not seen on tun1: {dump}"
    );
    assert!(
        dump.stdout.contains("fd13::2 > fd13::1: ICMP6, echo reply"),
        "IPv6 echo reply not seen on tun1: {dump}"
    );
    // Dual stack: IPv4 works too, and the reverse direction of IPv6.
    ns.assert_ping(B4);
    let out = ns.sh("ping -6 -n -c 2 -i 0.2 -W 2 -I fd13::2 fd13::1");
    assert!(out.status.success(), "ping fd13::2 -> fd13::1: {out:?}");
    stop_clean(&ns, &mut tw);
}

#[test]
#[ignore = "needs root"]
fn root_start_drops_everything_in_the_relay() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let mut tw = ns.up(&["--user", MEMBER.name], As::Root);
    assert!(
        tw.stderr().contains("relaying as twmember"),
        "ready line names the user:\n{}",
        tw.stderr()
    );
    let relay = proc_status(tw.relay_pid());
    assert_eq!(status_ids(&relay, "Uid"), vec![MEMBER.uid; 4], "relay Uid");
    assert_eq!(status_ids(&relay, "Gid"), vec![MEMBER.gid; 4], "relay Gid");
    assert_caps(
        &relay,
        "relay",
        &["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"],
    );
    assert_eq!(
        relay.get("NoNewPrivs").map(String::as_str),
        Some("1"),
        "relay NoNewPrivs"
    );

    let sup = proc_status(tw.pid());
    let uids = status_ids(&sup, "Uid");
    assert!(
        !uids.contains(&0),
        "supervisor kept uid 0 (real/eff/saved/fs): {uids:?}"
    );
    assert_eq!(uids, vec![MEMBER.uid; 4], "supervisor Uid");
    assert_eq!(
        sup.get("CapEff").map(String::as_str),
        Some(NET_ADMIN_ONLY),
        "supervisor CapEff"
    );
    assert_eq!(
        sup.get("CapPrm").map(String::as_str),
        Some(NET_ADMIN_ONLY),
        "supervisor CapPrm"
    );
    assert_eq!(
        sup.get("CapBnd").map(String::as_str),
        Some(NET_ADMIN_ONLY),
        "supervisor CapBnd"
    );

    ns.assert_ping(B4);
    // The supervisor, now only CAP_NET_ADMIN, still tears everything down.
    stop_clean(&ns, &mut tw);
}

#[test]
#[ignore = "needs root"]
fn root_start_with_user_keeps_every_group() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let mut tw = ns.up(&["--user", MEMBER.name], As::Root);
    let relay = proc_status(tw.relay_pid());
    let groups = status_ids(&relay, "Groups");
    assert_eq!(
        gid_set(groups.clone()),
        gid_set(member_gids()),
        "relay Groups should be twmember's {} groups, got {}: {groups:?}",
        member_gids().len(),
        groups.len()
    );
    assert!(
        groups.contains(&ALLOWED_GID),
        "the last group (tunwire) was cut off"
    );
    let sup = proc_status(tw.pid());
    assert!(
        !status_ids(&sup, "Gid").contains(&0) && !status_ids(&sup, "Groups").contains(&0),
        "supervisor kept root's group 0: Gid {:?} Groups {:?}",
        sup.get("Gid"),
        sup.get("Groups")
    );
    ns.assert_ping(B4);
    stop_clean(&ns, &mut tw);
}

#[test]
#[ignore = "needs root"]
fn member_in_many_groups_with_file_caps_is_allowed() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let mut tw = ns.up(&[], As::CapUser(&MEMBER));
    ns.assert_ping(B4);

    let relay = proc_status(tw.relay_pid());
    assert_eq!(status_ids(&relay, "Uid"), vec![MEMBER.uid; 4], "relay Uid");
    let groups = status_ids(&relay, "Groups");
    assert_eq!(
        gid_set(groups.clone()),
        gid_set(member_gids()),
        "relay Groups should be all {} of twmember's groups, got {}",
        member_gids().len(),
        groups.len()
    );
    assert_caps(&relay, "relay", &["CapInh", "CapPrm", "CapEff", "CapAmb"]);
    // A non-root start has no CAP_SETPCAP, so the bounding set stays as it was (emptying it
    // would need a user namespace, whose uid_map needs a dumpable moment: see privilege.rs).
    // It must never grow, and NoNewPrivs keeps it from ever granting anything.
    let relay_pid = tw.relay_pid();
    assert_eq!(
        fs::read_link(format!("/proc/{relay_pid}/ns/user")).expect("relay userns"),
        fs::read_link("/proc/self/ns/user").expect("own userns"),
        "the relay must not enter a user namespace of its own"
    );
    let own = cap_mask(&proc_status(std::process::id()), "CapBnd");
    let relay_bnd = cap_mask(&relay, "CapBnd");
    assert_eq!(
        relay_bnd & !own,
        0,
        "the relay's bounding set {relay_bnd:016x} has capabilities the one it started with \
         ({own:016x}) lacks"
    );
    assert_eq!(
        relay.get("NoNewPrivs").map(String::as_str),
        Some("1"),
        "relay NoNewPrivs"
    );

    let sup = proc_status(tw.pid());
    assert_eq!(
        status_ids(&sup, "Uid"),
        vec![MEMBER.uid; 4],
        "supervisor Uid"
    );
    assert_eq!(
        sup.get("CapEff").map(String::as_str),
        Some(NET_ADMIN_ONLY),
        "supervisor CapEff"
    );

    stop_clean(&ns, &mut tw);
}

#[test]
#[ignore = "needs root"]
fn stranger_is_refused_and_nothing_changes() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let before = ns.state();
    let e = ns.run_tunwire(&[], As::CapUser(&STRANGER));
    assert_eq!(e.code, Some(77), "a non-member must get 77: {e}");
    assert!(
        e.stderr.contains("allows group tunwire") && e.stderr.contains("usermod -aG tunwire"),
        "message names the allowed group and the fix: {e}"
    );
    assert_eq!(ns.state(), before, "a refused start changed the state");

    // --allow-group is gone: a caller can no longer pick who may start.
    let e = ns.run_tunwire(&["--allow-group", "twg007"], As::CapUser(&STRANGER));
    assert_eq!(
        e.code,
        Some(2),
        "--allow-group is an unknown option now: {e}"
    );
    assert!(e.stderr.contains("policy.conf"), "{e}");
    assert_eq!(ns.state(), before, "a refused start changed the state");
}

#[test]
#[ignore = "needs root"]
fn member_without_cap_net_admin_is_refused() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let before = ns.state();
    let e = ns.run_tunwire(&[], As::User(&MEMBER));
    assert_eq!(
        e.code,
        Some(77),
        "a member without CAP_NET_ADMIN must get 77: {e}"
    );
    assert!(!e.stderr.contains("panicked"), "{e}");
    assert_eq!(ns.state(), before, "a refused start changed the state");
}

#[test]
#[ignore = "needs root"]
fn sigterm_cleans_up_everything() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let before = ns.state();
    let mut tw = ns.up(&DUAL, As::Root);
    for family in ["-4", "-6"] {
        for dev in ["tun0", "tun1"] {
            let lines = rule_lines(&ns, family, &format!("iif {dev} lookup 13"));
            assert_eq!(lines.len(), 1, "one {family} rule for {dev}: {lines:?}");
            assert!(
                lines[0].starts_with("100:") && lines[0].contains("proto 199"),
                "rule has pref 100 and proto 199: {lines:?}"
            );
        }
    }
    let table = ns.table(13);
    assert!(
        table.contains("local 192.168.13.2 dev tun1") && table.contains("local fd13::2 dev tun1"),
        "local routes moved to table 13:\n{table}"
    );
    stop_clean(&ns, &mut tw);
    assert_eq!(
        ns.state(),
        before,
        "state after SIGTERM differs from before the start"
    );
}

#[test]
#[ignore = "needs root"]
fn sigint_and_sigterm_to_the_relay_clean_up() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let before = ns.state();
    let mut tw = ns.up(&[], As::Root);
    let e = tw.stop("INT");
    assert_eq!(e.code, Some(0), "SIGINT to the supervisor: {e}");
    ns.assert_restored(&before, "after SIGINT");

    let mut tw = ns.up(&[], As::Root);
    tw.signal_relay("TERM");
    let e = tw.wait_exit(EXIT_TIMEOUT);
    assert_eq!(e.code, Some(0), "SIGTERM to the relay: {e}");
    ns.assert_restored(&before, "after SIGTERM to the relay");
}

#[test]
#[ignore = "needs root"]
fn sigkill_of_the_relay_makes_the_supervisor_clean_up() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let before = ns.state();
    let mut tw = ns.up(&DUAL, As::Root);
    tw.signal_relay("KILL");
    let e = tw.wait_exit(EXIT_TIMEOUT);
    assert_eq!(e.code, Some(1), "supervisor after the relay's SIGKILL: {e}");
    ns.assert_restored(&before, "after the relay's SIGKILL");
}

#[test]
#[ignore = "needs root"]
fn teardown_removes_only_our_leftovers() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let before = ns.state();
    let mut tw = ns.up(&DUAL, As::Root);
    tw.kill_all();
    assert!(
        wait_until(READY_TIMEOUT, || !ns.has_link("tun0")
            && !ns.has_link("tun1")),
        "the TUNs should vanish with the relay's fds"
    );
    for family in ["-4", "-6"] {
        for dev in ["tun0", "tun1"] {
            let lines = rule_lines(&ns, family, &format!("iif {dev}"));
            assert!(
                lines.len() == 1
                    && lines[0].contains("proto 199")
                    && lines[0].contains("[detached]"),
                "a killed instance leaves its {family} rule for {dev}, detached: {lines:?}"
            );
        }
    }
    // A rule that is not ours: same interface and table, no proto 199.
    ns.sh_ok(
        "ip -4 rule add iif tun0 lookup 13 pref 200
         ip -6 rule add iif tun0 lookup 13 pref 200",
    );
    let mut args = vec!["teardown"];
    args.extend(DUAL);
    let e = ns.run_tunwire(&args, As::Root);
    assert_eq!(e.code, Some(0), "teardown: {e}");
    let rules = ns.rules();
    assert!(
        !rules.contains("proto 199"),
        "teardown left our rules:\n{rules}"
    );
    for family in ["-4", "-6"] {
        let lines = rule_lines(&ns, family, "iif tun0");
        assert!(
            lines.len() == 1 && lines[0].starts_with("200:"),
            "teardown must leave the foreign {family} rule alone: {lines:?}"
        );
    }
    ns.sh_ok(
        "ip -4 rule del iif tun0 lookup 13 pref 200
         ip -6 rule del iif tun0 lookup 13 pref 200",
    );
    assert_eq!(ns.state(), before, "state after teardown");
}

#[test]
#[ignore = "needs root"]
fn restart_after_sigkill_leaves_no_duplicate_rules() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let before = ns.state();
    let mut tw = ns.up(&DUAL, As::Root);
    tw.kill_all();
    assert!(
        rule_lines(&ns, "-4", "proto 199").len() == 2,
        "leftover rules expected after SIGKILL:\n{}",
        ns.rules()
    );
    let mut tw = ns.up(&DUAL, As::Root);
    for family in ["-4", "-6"] {
        for dev in ["tun0", "tun1"] {
            let lines = rule_lines(&ns, family, &format!("iif {dev} "));
            assert_eq!(
                lines.len(),
                1,
                "exactly one {family} rule for {dev}: {lines:?}"
            );
        }
    }
    ns.assert_ping(B4);
    ns.assert_ping(B6);
    stop_clean(&ns, &mut tw);
    assert_eq!(
        ns.state(),
        before,
        "state after the restarted instance stopped"
    );
}

#[test]
#[ignore = "needs root"]
fn second_instance_on_the_same_names_fails_and_the_first_keeps_working() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let mut first = ns.up(&DUAL, As::Root);
    let rules_before = ns.rules();
    let mut second = ns.start(ns.tunwire_cmd(&DUAL, As::Root));
    let e = second.wait_exit(EXIT_TIMEOUT);
    assert_eq!(e.code, Some(1), "the second instance must fail with 1: {e}");
    assert!(
        e.stderr.contains("tun0") && e.stderr.contains("busy"),
        "the error names tun0 and says it is busy: {e}"
    );
    assert!(!e.stderr.contains("ready:"), "{e}");
    assert!(!first.has_exited(), "the first instance died");
    assert_eq!(
        ns.rules(),
        rules_before,
        "the second instance changed the rules"
    );
    ns.assert_ping(B4);
    ns.assert_ping(B6);
    stop_clean(&ns, &mut first);
}

#[test]
#[ignore = "needs root"]
fn teardown_refuses_while_an_instance_runs() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let mut tw = ns.up(&DUAL, As::Root);
    let rules = ns.rules();
    let mut args = vec!["teardown"];
    args.extend(DUAL);
    let e = ns.run_tunwire(&args, As::Root);
    assert_eq!(
        e.code,
        Some(1),
        "teardown with the TUNs present must refuse: {e}"
    );
    assert!(e.stderr.contains("tun0"), "the refusal names tun0: {e}");
    assert_eq!(ns.rules(), rules, "a refused teardown changed the rules");
    assert!(!tw.has_exited(), "the running instance died");
    ns.assert_ping(B4);
    ns.assert_ping(B6);
    stop_clean(&ns, &mut tw);
}

#[test]
#[ignore = "needs root"]
fn user_option_is_refused_for_a_non_root_start() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let before = ns.state();
    let e = ns.run_tunwire(&["--user", STRANGER.name], As::CapUser(&MEMBER));
    assert_eq!(e.code, Some(2), "--user without root must give 2: {e}");
    assert!(e.stderr.contains("--user"), "the error names --user: {e}");
    assert_eq!(ns.state(), before, "a refused start changed the state");
}

#[test]
#[ignore = "needs root"]
fn bad_inputs_exit_2_and_change_nothing() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let dir = ns.dir().display().to_string();
    let unknown_key = format!("{dir}/unknown-key.conf");
    fs::write(&unknown_key, "# a comment\ntable 14\nfrobnicate 1\n").unwrap();
    let bad_value = format!("{dir}/bad-value.conf");
    fs::write(&bad_value, "table 254\n").unwrap();
    let long_name = "tun0123456789abc=192.168.13.1"; // 16 characters
    let cases: Vec<Vec<&str>> = vec![
        vec!["--table", "0"],
        vec!["--table", "253"],
        vec!["--table", "254"],
        vec!["--table", "255"],
        vec!["--table", "abc"],
        vec!["--table", "-1"],
        vec!["--table", "4294967296"],
        vec!["--mtu", "67"],
        vec!["--mtu", "65536"],
        vec!["--mtu", "1279", DUAL[0], DUAL[1]],
        vec!["--priority", "40000"],
        vec!["--priority", "32767"],
        vec!["--priority", "x"],
        vec!["tun0=300.1.1.1", "tun1=192.168.13.2"],
        vec!["tun0=192.168.13.1", "tun1=fd13::2"],
        vec!["tun0=192.168.13.1,fd13::1", "tun1=192.168.13.2"],
        vec!["tun0=192.168.13.1"],
        vec!["tun0=192.168.13.1", "tun0=192.168.13.2"],
        vec![long_name, "tun1=192.168.13.2"],
        vec!["tun0=192.168.13.1", "tun1=192.168.13.1"],
        vec!["tun0=1.1.1.1,2.2.2.2", "tun1=192.168.13.2"],
        vec!["tun0", "tun1"],
        vec![
            "tun0=192.168.13.1",
            "tun1=192.168.13.2",
            "tun2=192.168.13.3",
        ],
        vec!["--bogus"],
        vec!["--offload", "maybe"],
        vec!["--config", "/nonexistent/tunwire.conf"],
        vec!["--config", &unknown_key],
        vec!["--config", &bad_value],
        vec!["--pcap-format", "xml"],
        vec!["--snaplen", "0"],
        vec!["--pcap-max-size", "10Q"],
        vec!["frobnicate"],
        vec!["check", "--table", "254"],
        vec!["teardown", "--table", "0"],
    ];
    let mut failures = Vec::new();
    for args in &cases {
        let before = ns.state();
        let e = ns.run_tunwire(args, As::Root);
        let lines: Vec<&str> = e.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut why = Vec::new();
        if e.code != Some(2) {
            why.push(format!("exit {:?} (signal {:?}), want 2", e.code, e.signal));
        }
        if lines.is_empty() || lines.len() > 2 {
            why.push(format!("{} stderr lines, want 1 or 2", lines.len()));
        }
        if e.stderr.contains("panicked") {
            why.push("panicked".to_owned());
        }
        if ns.state() != before {
            why.push("the state changed".to_owned());
        }
        if !why.is_empty() {
            failures.push(format!("tunwire {args:?}: {}\n{e}", why.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad inputs misbehaved:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
#[ignore = "needs root"]
fn check_prints_the_plan_and_changes_nothing() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let before = ns.state();
    let e = ns.run_tunwire(&["check"], As::Root);
    assert_eq!(e.code, Some(0), "check: {e}");
    for needle in ["ip rule add", "iif tun0", "iif tun1", "lookup 13"] {
        assert!(
            e.stdout.contains(needle),
            "check's stdout lacks {needle:?}: {e}"
        );
    }
    assert_eq!(ns.state(), before, "check changed the state");

    // Boundaries of the documented ranges are accepted.
    for args in [
        vec!["check", "--table", "1"],
        vec!["check", "--table", "4294967295"],
        vec!["check", "--mtu", "68"],
        vec!["check", "--mtu", "65535"],
        vec!["check", "--mtu", "1280", DUAL[0], DUAL[1]],
        vec!["check", "--priority", "32765"],
        vec!["check", "--offload", "off"],
    ] {
        let e = ns.run_tunwire(&args, As::Root);
        assert_eq!(e.code, Some(0), "tunwire {args:?}: {e}");
    }

    // The command line wins over the config file.
    let conf = ns.dir().join("good.conf");
    fs::write(&conf, "# comment\n\ntable 14\npriority 120\n").unwrap();
    let conf = conf.display().to_string();
    let e = ns.run_tunwire(&["check", "--config", &conf, "--table", "15"], As::Root);
    assert_eq!(e.code, Some(0), "check with a config file: {e}");
    assert!(
        e.stdout.contains("lookup 15") && !e.stdout.contains("lookup 14"),
        "--table 15 on the command line should win over `table 14`: {e}"
    );
    assert!(
        e.stdout.contains("120"),
        "priority 120 from the file is used: {e}"
    );
    assert_eq!(ns.state(), before, "check changed the state");
}

/// A minimal relay in the spirit of the TUN/TAP article's sample program: it attaches to the
/// two persistent TUNs that `tunwire check`'s script creates and copies packets between them.
const PYTHON_RELAY: &str = r#"
import fcntl, os, select, struct, sys
TUNSETIFF = 0x400454ca
FLAGS = 0x0001 | 0x1000 | (0x4000 if sys.argv[1] == "vnet_hdr" else 0)
def attach(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), FLAGS))
    return fd
a, b = attach("tun0"), attach("tun1")
print("relay ready", file=sys.stderr, flush=True)
while True:
    for fd in select.select([a, b], [], [])[0]:
        os.write(b if fd == a else a, os.read(fd, 65600))
"#;

#[test]
#[ignore = "needs root"]
fn check_script_pasted_into_a_fresh_namespace_gives_a_working_wire() {
    if !require_root() {
        return;
    }
    for offload in ["on", "off"] {
        let planner = Netns::new();
        let plan =
            planner.run_tunwire(&["check", "--offload", offload, DUAL[0], DUAL[1]], As::Root);
        assert_eq!(plan.code, Some(0), "check: {plan}");
        drop(planner);
        let vnet = plan.stdout.contains("vnet_hdr");
        assert_eq!(
            vnet,
            offload == "on",
            "vnet_hdr exactly with offload on:\n{}",
            plan.stdout
        );

        let ns = Netns::new();
        let script = ns.dir().join("plan.sh");
        fs::write(&script, &plan.stdout).unwrap();
        ns.sh_ok(&format!("bash -e {}", script.display()));
        let relay_py = ns.dir().join("relay.py");
        fs::write(&relay_py, PYTHON_RELAY).unwrap();
        let mut relay = ns.spawn_bg(&format!(
            "exec python3 {} {}",
            relay_py.display(),
            if vnet { "vnet_hdr" } else { "plain" }
        ));
        relay.wait_stderr("relay ready", READY_TIMEOUT);
        let mut tcpdump = ns.tcpdump("-i tun1 -c 2 icmp");
        ns.assert_ping(B4);
        let dump = tcpdump.wait(EXIT_TIMEOUT);
        assert!(
            dump.stdout
                .contains("192.168.13.1 > 192.168.13.2: ICMP echo request"),
            "offload {offload}: the ping did not cross the pasted wire: {dump}"
        );
        ns.assert_ping(B6);
        let rules = ns.rules();
        assert!(
            rules.contains("iif tun0 lookup 13") && rules.contains("proto 199"),
            "{rules}"
        );
    }
}

#[test]
#[ignore = "needs root"]
fn a_name_held_by_another_kind_of_device_fails_clearly() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    for dev in ["tun0", "tun1"] {
        // A dummy if the kernel has the module, else a bridge: any non-TUN device will do.
        let kind = ns
            .sh_ok(&format!(
                "if ip link add {dev} type dummy 2>/dev/null; then echo dummy;
                 else ip link add {dev} type bridge && echo bridge; fi"
            ))
            .trim()
            .to_owned();
        let before = ns.state();
        // Explicit sides are taken exactly as given, or refused (without sides a start would
        // take the next free pair, tun2 and tun3).
        let e = ns.run_tunwire(&DEFAULT, As::Root);
        assert_eq!(
            e.code,
            Some(1),
            "start over a {kind} {dev} must fail with 1: {e}"
        );
        assert!(
            e.stderr.contains(&format!("create TUN {dev}")) && e.stderr.contains("left alone"),
            "the error names {dev} and says it was left alone: {e}"
        );
        assert!(!e.stderr.contains("panicked"), "{e}");
        let link = ns.sh_ok(&format!("ip -d link show dev {dev}"));
        assert!(
            link.contains(&kind),
            "the {kind} {dev} was changed:\n{link}"
        );
        assert_eq!(
            ns.state(),
            before,
            "a failed start over a {kind} {dev} changed the state"
        );
        ns.sh_ok(&format!("ip link del {dev}"));
    }
}

#[test]
#[ignore = "needs root"]
fn dual_stack_setup_is_reliable_across_restarts() {
    if !require_root() {
        return;
    }
    // The kernel installs an IPv6 address's local route asynchronously; a setup that races it
    // fails now and then, so start and stop a few times in a row.
    let ns = Netns::new();
    let before = ns.state();
    for round in 1..=10 {
        let mut tw = match ns.try_up(&DUAL, As::Root) {
            Ok(tw) => tw,
            Err(e) => panic!("dual-stack start {round} of 10 failed: {e}"),
        };
        let e = tw.stop("TERM");
        assert_eq!(e.code, Some(0), "stop {round}: {e}");
        assert_eq!(ns.state(), before, "state after round {round}");
    }
}

#[test]
#[ignore = "needs root"]
fn systemd_notify_and_journal_format() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    // Abstract unix sockets belong to the network namespace: this one is private to the test.
    let listener = ns.spawn_bg(
        r#"exec python3 -u -c '
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0tunwire-test-notify")
s.settimeout(30)
print("listening")
while True:
    m = s.recv(4096).decode()
    print(m)
    if m.startswith("STOPPING"):
        break
'"#,
    );
    assert!(
        wait_until(READY_TIMEOUT, || listener.stdout().contains("listening")),
        "notify listener did not start: {}",
        listener.stderr()
    );
    let mut cmd = ns.tunwire_cmd(&[], As::Root);
    cmd.env("NOTIFY_SOCKET", "@tunwire-test-notify")
        .env("JOURNAL_STREAM", "8:12345");
    let mut tw = ns.start(cmd);
    tw.wait_ready().expect("ready under a systemd environment");
    assert!(
        wait_until(READY_TIMEOUT, || listener.stdout().contains("READY=1")),
        "no READY=1 after the ready line: {}",
        listener.stdout()
    );
    ns.assert_ping("192.168.13.2");
    let e = tw.stop("TERM");
    assert_eq!(e.code, Some(0), "{e}");
    assert!(
        wait_until(READY_TIMEOUT, || listener.stdout().contains("STOPPING=1")),
        "no STOPPING=1 at stop: {}",
        listener.stdout()
    );
    // Journal format: a syslog priority, no timestamp, no program name (the journal adds both).
    let ready = e
        .stderr
        .lines()
        .find(|l| l.contains("ready:"))
        .unwrap_or_else(|| panic!("no ready line:\n{e}"))
        .to_string();
    assert!(ready.starts_with("<6>ready: tun0 192.168.13.1"), "{ready}");
    ns.assert_no_leftovers();
}

#[test]
#[ignore = "needs root"]
fn a_link_flap_is_repaired_and_traffic_crosses_the_wire_again() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let mut tw = ns.up(&DUAL, As::Root);
    // Down and up undoes part of the setup: the IPv4 local route returns to table local (then
    // traffic would take lo) and the IPv6 address goes.
    ns.sh_ok("ip link set tun1 down && ip link set tun1 up");
    tw.wait_stderr("tun1 came back up", READY_TIMEOUT)
        .unwrap_or_else(|e| panic!("no repair after the flap: {e}"));
    let local = ns.sh_ok("ip route show table local; ip -6 route show table local");
    assert!(
        !local.contains("192.168.13.") && !local.contains("fd13::"),
        "the pair's local routes are back in table local:\n{local}"
    );
    // Three echoes each way per family; ICMPv6 types 128/129 only (no neighbour discovery).
    let mut tcpdump =
        ns.tcpdump("-i tun1 -c 12 '(icmp or (icmp6 and (ip6[40] == 128 or ip6[40] == 129)))'");
    ns.assert_ping(B4);
    ns.assert_ping(B6);
    let dump = tcpdump.wait(EXIT_TIMEOUT);
    assert!(
        dump.stdout
            .contains("192.168.13.1 > 192.168.13.2: ICMP echo request")
            && dump
                .stdout
                .contains("fd13::1 > fd13::2: ICMP6, echo request"),
        "after the flap the pings must cross tun1: {dump}"
    );
    stop_clean(&ns, &mut tw);
}
