// SPDX-License-Identifier: MIT OR Apache-2.0
//! Integration tests for the issue "Watch a running wire": `tunwire capture` (live readers that
//! attach to a running wire through its relay's abstract socket `tunwire-capture-PID`), who may
//! attach, many readers and slow ones, the socket's lifetime, and the Wireshark extcap interface
//! driven by the real tshark. The real binary runs as root or as the test members in a private
//! network + mount namespace per test (see tests/common); a test's policy file exists only in
//! that namespace's /etc overlay, and the extcap folder tshark searches is a temporary HOME.
//! Traffic goes only to 192.168.13.x inside the namespace.
//!
//! Wires run as the member `twmember` through the `cap_net_admin+ep` copy (`As::CapUser`), as a
//! student would run them; readers run through the copy without capabilities (`As::User`): a
//! reader needs none.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The policy file; the path is fixed in the binary.
const POLICY: &str = "/etc/tunwire/policy.conf";
/// Exit status of every refusal.
const NOPERM: Option<i32> = Some(77);
/// What a background script must not inherit from the test runner (see `scrub_env`).
const CLEAN_ENV: &str = "unset RUST_LOG SUDO_USER SUDO_UID SUDO_GID NOTIFY_SOCKET JOURNAL_STREAM; ";
/// pcapng's Section Header Block type, the first four bytes of every pcapng file.
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
/// The built-in policy, written out so that a test can add `capture` lines to it.
const BUILTIN_POLICY: &str = "allow group tunwire
pool 192.168.13.0/24
pool fd13::/64
names tun*
tables 13
max-wires 4
";

// ----------------------------------------------------------------------------------------------
// Private helpers
// ----------------------------------------------------------------------------------------------

/// A fresh namespace with both binary copies made up front (no "Text file busy" when tests run
/// in parallel) and no IPv6 on new interfaces: the TUNs send no router solicitations, so the
/// pings of a test are the only packets that cross its wire.
fn netns() -> Netns {
    let ns = Netns::new();
    ns.prepare_binary_copies();
    ns.sh_ok("sysctl -qw net.ipv6.conf.default.disable_ipv6=1");
    ns
}

/// The shell words that run the binary as `who` (the same binaries as `tunwire_cmd`).
fn bin_as(ns: &Netns, who: As) -> String {
    match who {
        As::Root => q(BIN),
        As::CapUser(u) | As::User(u) => format!(
            "setpriv --reuid={} --regid={} --init-groups {}",
            u.uid,
            u.gid,
            q(p(&ns.binary_copy(matches!(who, As::CapUser(_)))))
        ),
    }
}

/// A 0755 directory `name` in the scratch directory, owned by `user`, for its capture files.
fn dir_of(ns: &Netns, user: &TestUser, name: &str) -> PathBuf {
    let dir = ns.dir().join(name);
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid)).expect("chown dir");
    dir
}

/// twmember's wire with the default pair, through the file capability, ready.
fn member_wire(ns: &Netns, args: &[&str]) -> Instance {
    ns.up(args, As::CapUser(&MEMBER))
}

/// Wait until the wire logs `capture reader N attached`: the reader's request was taken and
/// every packet from now on reaches it. Panics with both sides' output otherwise.
fn wait_attached(tw: &Instance, n: u32, reader_err: impl Fn() -> String) {
    let needle = format!("capture reader {n} attached");
    assert!(
        wait_until(READY_TIMEOUT, || tw.stderr().contains(&needle)),
        "the wire never logged {needle:?}; wire:\n{}\nreader:\n{}",
        tw.stderr(),
        reader_err()
    );
}

/// `tunwire capture ARGS` as `who`, started in the background; returned once the wire logs it
/// as reader `n`.
fn reader(ns: &Netns, tw: &Instance, n: u32, args: &[&str], who: As) -> Instance {
    let mut all = vec!["capture"];
    all.extend_from_slice(args);
    let r = ns.start(ns.tunwire_cmd(&all, who));
    wait_attached(tw, n, || r.stderr());
    r
}

/// Wait for a reader to end by itself (COUNT, --duration, the wire's end) and expect exit 0.
fn reader_done(r: &mut Instance) -> Exited {
    let e = r.wait_exit(EXIT_TIMEOUT);
    assert_eq!(e.code, Some(0), "the reader should end with exit 0: {e}");
    e
}

/// The pcapng direction flag of a frame (`0x00000002` -> 2).
fn direction(flags: &str) -> u32 {
    u32::from_str_radix(flags.trim_start_matches("0x"), 16)
        .unwrap_or_else(|e| panic!("packet flags {flags:?}: {e}"))
        & 3
}

/// Assert that `file` is a pcapng capture of the 5 pings just sent: 10 ICMP frames, each
/// request on tun0 and each reply on tun1, all marked outbound (epb_flags direction 2: the
/// host sent it on that TUN and the relay read it), and nothing else.
fn assert_five_pings(ns: &Netns, file: &Path) {
    let head = fs::read(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    assert!(
        head.starts_with(&PCAPNG_MAGIC),
        "{} is not pcapng (starts {:02x?})",
        file.display(),
        &head[..head.len().min(8)]
    );
    let rows = tshark_fields(
        ns,
        file,
        "",
        &[
            "frame.interface_name",
            "frame.packet_flags_direction",
            "icmp.type",
            "icmp.seq",
        ],
    );
    assert_eq!(rows.len(), 10, "10 frames, the 5 pings: {rows:?}");
    let mut requests = Vec::new();
    let mut replies = Vec::new();
    for row in &rows {
        assert_eq!(direction(&row[1]), 2, "direction of {row:?}; all: {rows:?}");
        match (row[0].as_str(), row[2].as_str()) {
            ("tun0", "8") => requests.push(row[3].clone()),
            ("tun1", "0") => replies.push(row[3].clone()),
            _ => panic!("unexpected frame {row:?}: requests on tun0, replies on tun1: {rows:?}"),
        }
    }
    let seqs: Vec<String> = (1..=5).map(|n| n.to_string()).collect();
    assert_eq!(requests, seqs, "requests on tun0, each once: {rows:?}");
    assert_eq!(replies, seqs, "replies on tun1, each once: {rows:?}");
}

/// Wait until tshark finds at least `n` frames matching `filter` in `file`, which a reader may
/// still be writing (a torn last record makes tshark fail: it is tried again).
fn wait_frames(ns: &Netns, file: &Path, filter: &str, n: usize) {
    let mut seen = 0;
    let found = wait_until(READY_TIMEOUT, || {
        let out = ns.sh(&format!(
            "tshark -n -r {} -Y {} 2>/dev/null",
            q(p(file)),
            q(filter)
        ));
        seen = String::from_utf8_lossy(&out.stdout).lines().count();
        out.status.success() && seen >= n
    });
    assert!(
        found,
        "{} shows {seen} frames matching {filter:?}, want {n}",
        file.display()
    );
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Whether the namespace's /proc/net/unix lists the abstract name `@tunwire-capture-PID`.
fn listening(ns: &Netns, supervisor: u32) -> bool {
    let name = format!("@tunwire-capture-{supervisor}");
    ns.sh_ok("cat /proc/net/unix")
        .lines()
        .any(|l| l.split_whitespace().last() == Some(name.as_str()))
}

/// The `capture:` verdict of `tunwire capture --list` for the wire whose first side is `a`.
fn list_verdict(ns: &Netns, who: As, a: &str) -> String {
    let e = ns.run_tunwire(&["capture", "--list"], who);
    assert_eq!(e.code, Some(0), "capture --list as {who:?}: {e}");
    e.stdout
        .lines()
        .find(|l| l.starts_with(&format!("{a} ")))
        .and_then(|l| l.split_once("capture: "))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_else(|| panic!("capture --list as {who:?} shows no wire {a}: {e}"))
}

/// Pids of processes in the namespace whose command line contains every one of `words`.
fn pids_with_args(ns: &Netns, words: &[&str]) -> Vec<u32> {
    ns.pids_inside()
        .into_iter()
        .filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<String> = cmdline
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            words.iter().all(|w| args.iter().any(|a| a == w))
        })
        .collect()
}

/// How often a refusal is tried: a refused reader must get its reason every time, not only
/// when it wins the race with the relay's answer (see `assert_capture_refused`).
const REFUSALS: usize = 5;

/// `tunwire capture -c 1 -w FILE` as `user` (no capability) is refused, every one of
/// `REFUSALS` times: exit 77, a message that contains every needle, and nothing written.
fn assert_capture_refused(ns: &Netns, user: &'static TestUser, needles: &[&str]) {
    let dir = ns.dir().join(format!("refused-{}", user.name));
    if !dir.exists() {
        dir_of(ns, user, &format!("refused-{}", user.name));
    }
    let file = dir.join("x.pcapng");
    for attempt in 1..=REFUSALS {
        let e = ns.run_tunwire(&["capture", "-c", "1", "-w", p(&file)], As::User(user));
        assert_eq!(
            e.code, NOPERM,
            "{} must be refused with exit 77 (attempt {attempt} of {REFUSALS}): {e}",
            user.name
        );
        for needle in needles {
            assert!(
                e.stderr.contains(needle),
                "{}: the refusal should say {needle:?} (attempt {attempt}): {e}",
                user.name
            );
        }
        let got = fs::read(&file).unwrap_or_default();
        assert!(got.is_empty(), "{} got {} bytes", user.name, got.len());
    }
}

// ----------------------------------------------------------------------------------------------
// 1: the owner captures their own wire
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn owner_captures_ten_packets_of_both_directions_to_a_file() {
    if !require_root() {
        return;
    }
    let ns = netns();
    let mut tw = member_wire(&ns, &[]);
    let dir = dir_of(&ns, &MEMBER, "cap");
    let file = dir.join("live.pcapng");
    let mut r = reader(
        &ns,
        &tw,
        1,
        &["tun0", "-c", "10", "-w", p(&file)],
        As::User(&MEMBER),
    );
    ping_ok(&ns, 5, "-i 0.2");
    let e = reader_done(&mut r);
    assert!(
        e.stderr.contains("10 packets captured"),
        "the reader reports its count: {e}"
    );
    assert_five_pings(&ns, &file);
    assert_interfaces_described(&ns, &file);
    assert!(
        wait_until(READY_TIMEOUT, || tw
            .stderr()
            .contains("capture reader 1 detached")),
        "the wire logs the reader's end:\n{}",
        tw.stderr()
    );
    stop_clean(&ns, &mut tw);
}

#[test]
#[ignore = "needs root"]
fn owner_streams_to_tshark_naming_either_side_or_none() {
    if !require_root() {
        return;
    }
    let ns = netns();
    let mut tw = member_wire(&ns, &[]);
    let reader = bin_as(&ns, As::User(&MEMBER));
    // `-w -` into `tshark -r -` (a pipe, as in `tunwire capture | wireshark -k -i -`), naming
    // the wire by its second side, by its first, then not at all (one wire runs).
    for (n, wire) in [(1, "tun1"), (2, "tun0"), (3, "")] {
        let out = ns.dir().join(format!("tshark{n}.txt"));
        let bg = ns.spawn_bg(&format!(
            "{CLEAN_ENV}{reader} capture {wire} -c 10 -w - | tshark -n -r - -T fields \
             -E separator=/t -e frame.interface_name -e frame.packet_flags_direction \
             -e icmp.type > {out}; echo \"exit ${{PIPESTATUS[*]}}\" >&2",
            out = q(p(&out))
        ));
        wait_attached(&tw, n, || bg.stderr());
        ping_ok(&ns, 5, "-i 0.2");
        let mut bg = bg;
        let e = bg.wait(EXIT_TIMEOUT);
        assert!(
            e.stderr.contains("exit 0 0"),
            "capture {wire:?} -w - | tshark -r -: both should exit 0: {e}"
        );
        let text = fs::read_to_string(&out).expect("read tshark output");
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
        assert_eq!(rows.len(), 10, "capture {wire:?}: 10 frames: {rows:?}");
        for row in &rows {
            let expected = if row[2] == "8" { "tun0" } else { "tun1" };
            assert_eq!(row[0], expected, "capture {wire:?}: {rows:?}");
            assert_eq!(direction(row[1]), 2, "capture {wire:?}: {rows:?}");
        }
        assert_eq!(
            rows.iter().filter(|r| r[2] == "8").count(),
            5,
            "capture {wire:?}: 5 requests, 5 replies: {rows:?}"
        );
    }
    // A name that is no side of a running wire.
    let e = ns.run_tunwire(&["capture", "tun9", "-c", "1"], As::User(&MEMBER));
    assert_eq!(e.code, Some(1), "capture tun9: {e}");
    assert!(
        e.stderr
            .contains("no running wire has an interface named tun9"),
        "{e}"
    );
    stop_clean(&ns, &mut tw);
}

#[test]
#[ignore = "needs root"]
fn with_two_wires_the_reader_must_name_one_and_gets_only_that_one() {
    if !require_root() {
        return;
    }
    let ns = netns();
    let mut first = member_wire(&ns, &[]);
    let mut second = ns.up(&[], As::CapUser(&EXTRA_MEMBERS[0]));
    assert!(
        second
            .stderr()
            .contains("ready: tun2 192.168.13.3 <-> tun3 192.168.13.4"),
        "the second wire takes the next pair:\n{}",
        second.stderr()
    );
    let e = ns.run_tunwire(&["capture", "-c", "1", "-w", "-"], As::Root);
    assert_eq!(e.code, Some(2), "capture without WIRE, two wires: {e}");
    assert!(
        e.stderr.contains("2 wires are running") && e.stderr.contains("tun0, tun2"),
        "the refusal names the wires: {e}"
    );
    // Root reads twmember2's wire by its second side while both wires carry pings.
    let file = ns.dir().join("second.pcapng");
    let mut r = reader(
        &ns,
        &second,
        1,
        &["tun3", "-c", "6", "-w", p(&file)],
        As::Root,
    );
    ns.sh_ok(&format!(
        "ping -4 -n -q -c 3 -i 0.2 {B4} & ping -4 -n -q -c 3 -i 0.2 192.168.13.4; wait"
    ));
    reader_done(&mut r);
    let rows = tshark_fields(&ns, &file, "", &["frame.interface_name", "ip.dst"]);
    assert_eq!(rows.len(), 6, "{rows:?}");
    for row in &rows {
        assert!(
            (row[0] == "tun2" && row[1] == "192.168.13.4")
                || (row[0] == "tun3" && row[1] == "192.168.13.3"),
            "only the second wire's packets: {rows:?}"
        );
    }
    assert!(
        !first.stderr().contains("capture reader"),
        "the first wire saw no reader:\n{}",
        first.stderr()
    );
    for w in [&mut first, &mut second] {
        let e = w.stop("TERM");
        assert_eq!(e.code, Some(0), "{e}");
    }
    ns.assert_no_leftovers();
}

#[test]
#[ignore = "needs root"]
fn snaplen_64_keeps_64_bytes_and_duration_1_stops_after_a_second() {
    if !require_root() {
        return;
    }
    let ns = netns();
    let mut tw = member_wire(&ns, &[]);
    let dir = dir_of(&ns, &MEMBER, "cap");

    let short = dir.join("short.pcapng");
    let mut r = reader(
        &ns,
        &tw,
        1,
        &["--snaplen", "64", "-c", "10", "-w", p(&short)],
        As::User(&MEMBER),
    );
    assert!(
        tw.stderr()
            .contains("capture reader 1 attached (snaplen 64)"),
        "{}",
        tw.stderr()
    );
    ping_ok(&ns, 5, "-i 0.2");
    reader_done(&mut r);
    let rows = tshark_fields(&ns, &short, "", &["frame.cap_len", "frame.len"]);
    assert_eq!(rows.len(), 10, "{rows:?}");
    for row in &rows {
        assert_eq!(
            row,
            &["64", "84"],
            "64 of the 84 bytes of each echo stored: {rows:?}"
        );
    }

    // --duration 1 with no traffic: it stops by the clock, not by a packet, and exits 0 with a
    // readable (empty) capture.
    let timed = dir.join("timed.pcapng");
    let mut r = reader(
        &ns,
        &tw,
        2,
        &["--duration", "1", "-w", p(&timed)],
        As::User(&MEMBER),
    );
    let attached = Instant::now();
    let e = reader_done(&mut r);
    let took = attached.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(10),
        "--duration 1 took {took:?} after attaching: {e}"
    );
    assert!(
        fs::read(&timed)
            .expect("read timed")
            .starts_with(&PCAPNG_MAGIC),
        "--duration 1 writes the pcapng header"
    );
    assert!(tshark_fields(&ns, &timed, "", &["frame.number"]).is_empty());
    stop_clean(&ns, &mut tw);
}

// ----------------------------------------------------------------------------------------------
// 2: who may attach
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn root_the_owner_and_the_policys_readers_attach_others_are_refused() {
    if !require_root() {
        return;
    }
    let ns = netns();
    // twmember is in twg005 as the 7th of its 122 groups (SO_PEERGROUPS must see it);
    // twmember3 is named; twmember4 is a member of tunwire the policy does not name.
    ns.write_file(
        POLICY,
        &format!("{BUILTIN_POLICY}capture group twg005\ncapture user twmember3\n"),
        0o644,
    );
    let owner = &EXTRA_MEMBERS[0];
    let named = &EXTRA_MEMBERS[1];
    let other = &EXTRA_MEMBERS[2];
    let mut tw = ns.up(&[], As::CapUser(owner));
    // Five pings a second for the whole test: every allowed reader gets packets.
    let _pinger = ns.spawn_bg(&format!("exec ping -4 -n -q -i 0.2 {B4}"));

    let allowed: [(As, &str); 4] = [
        (As::Root, "root"),
        (As::User(owner), "the owner"),
        (As::User(&MEMBER), "a member of twg005"),
        (As::User(named), "capture user twmember3"),
    ];
    for (n, (who, what)) in allowed.iter().enumerate() {
        assert_eq!(
            list_verdict(&ns, *who, "tun0"),
            "yes, you may attach",
            "{what}"
        );
        let file = ns.dir().join(format!("allowed{n}.pcapng"));
        fs::write(&file, b"").expect("create capture file");
        if let As::User(u) = who {
            std::os::unix::fs::chown(&file, Some(u.uid), Some(u.gid)).expect("chown");
        }
        let e = ns.run_tunwire(&["capture", "-c", "2", "-w", p(&file)], *who);
        assert_eq!(e.code, Some(0), "{what} may attach: {e}");
        let rows = tshark_fields(&ns, &file, "icmp", &["frame.number"]);
        assert_eq!(rows.len(), 2, "{what} got 2 packets: {rows:?}");
    }

    let refused = [
        (other, "a member of tunwire the policy does not name"),
        (&STRANGER, "a stranger"),
    ];
    for (user, what) in refused {
        assert_eq!(
            list_verdict(&ns, As::User(user), "tun0"),
            "no, you may not attach",
            "{what}"
        );
    }
    assert_eq!(
        tw.stderr().matches(" attached (snaplen").count(),
        4,
        "four readers attached:\n{}",
        tw.stderr()
    );
    for (user, _) in refused {
        // The refusal names what is missing: a capture line in the policy.
        assert_capture_refused(
            &ns,
            user,
            &["may not capture on tun0", "capture group", POLICY],
        );
        let logged = format!("capture reader uid {} refused", user.uid);
        assert!(
            wait_until(READY_TIMEOUT, || tw.stderr().contains(&logged)),
            "the wire logs {logged:?}:\n{}",
            tw.stderr()
        );
    }
    // The refusals did not hurt the wire, and attached nobody.
    ping_ok(&ns, 2, "-i 0.2");
    assert_eq!(tw.stderr().matches(" attached (snaplen").count(), 4);
    stop_clean(&ns, &mut tw);
}

#[test]
#[ignore = "needs root"]
fn without_capture_lines_only_root_and_the_owner_attach() {
    if !require_root() {
        return;
    }
    let ns = netns();
    // The built-in policy (no file): no capture readers.
    let mut tw = member_wire(&ns, &[]);
    assert_eq!(
        list_verdict(&ns, As::User(&EXTRA_MEMBERS[0]), "tun0"),
        "no, you may not attach"
    );
    assert_eq!(
        list_verdict(&ns, As::User(&MEMBER), "tun0"),
        "yes, you may attach"
    );
    let e = ns.run_tunwire(&["capture", "--duration", "1", "-w", "-"], As::Root);
    assert_eq!(e.code, Some(0), "root: {e}");
    assert!(
        e.stdout.starts_with("\n\r\r\n"),
        "root gets a pcapng stream"
    );
    // The refusal says the policy names no readers, and how to name some.
    assert_capture_refused(
        &ns,
        &EXTRA_MEMBERS[0],
        &["names no capture readers", "'capture group NAME'"],
    );
    stop_clean(&ns, &mut tw);
}

// ----------------------------------------------------------------------------------------------
// 3: many readers, each may leave
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn three_readers_at_once_and_one_killed_mid_stream() {
    if !require_root() {
        return;
    }
    let ns = netns();
    let mut tw = member_wire(&ns, &[]);
    let dir = dir_of(&ns, &MEMBER, "cap");
    // A reader drops every capability, root's too: root's file goes to a directory of root's.
    let files: Vec<PathBuf> = (1..=3)
        .map(|i| {
            let d = if i == 2 { ns.dir() } else { &dir };
            d.join(format!("reader{i}.pcapng"))
        })
        .collect();
    let who = [As::User(&MEMBER), As::Root, As::User(&MEMBER)];
    let mut readers: Vec<Instance> = (0..3)
        .map(|i| reader(&ns, &tw, i as u32 + 1, &["-w", p(&files[i])], who[i]))
        .collect();
    ping_ok(&ns, 5, "-i 0.2");
    for file in &files {
        wait_frames(&ns, file, "icmp", 10);
    }
    // The second reader dies mid-stream (no goodbye); the wire notices at once.
    readers[1].signal("KILL");
    let killed = readers[1].wait_exit(EXIT_TIMEOUT);
    assert_eq!(killed.signal, Some(9), "{killed}");
    assert!(
        wait_until(READY_TIMEOUT, || tw
            .stderr()
            .contains("capture reader 2 detached")),
        "the wire logs the killed reader's detach:\n{}",
        tw.stderr()
    );
    ping_ok(&ns, 5, "-i 0.2");
    assert!(!tw.has_exited(), "the wire goes on");
    // The others leave on SIGTERM/SIGINT with exit 0 and a whole file.
    wait_frames(&ns, &files[0], "icmp", 20);
    wait_frames(&ns, &files[2], "icmp", 20);
    readers[0].signal("TERM");
    readers[2].signal("INT");
    for i in [0, 2] {
        let e = reader_done(&mut readers[i]);
        assert!(e.stderr.contains("20 packets captured"), "reader {i}: {e}");
        let rows = tshark_fields(&ns, &files[i], "icmp", &["icmp.seq"]);
        assert_eq!(rows.len(), 20, "reader {} got every ping: {rows:?}", i + 1);
    }
    // The killed reader kept what it got before it died: the first 5 pings, whole.
    let rows = tshark_fields(&ns, &files[1], "icmp", &["icmp.seq"]);
    assert_eq!(
        rows.len(),
        10,
        "the killed reader's first 10 frames: {rows:?}"
    );
    let log = tw.stderr();
    for n in 1..=3 {
        for what in ["attached", "detached"] {
            let line = format!("capture reader {n} {what}");
            assert!(log.contains(&line), "no {line:?} in:\n{log}");
        }
    }
    stop_clean(&ns, &mut tw);
}

// ----------------------------------------------------------------------------------------------
// 4: a stalled reader loses records and never slows the wire
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn a_stalled_reader_loses_whole_records_and_never_slows_the_wire() {
    if !require_root() {
        return;
    }
    let ns = netns();
    let www = ns.dir().join("www");
    fs::create_dir(&www).expect("create www");
    let size = 5 << 20;
    let sha = ns.sh_ok(&format!(
        "head -c {size} /dev/urandom > {0}/file.bin && chmod 0644 {0}/file.bin && \
         sha256sum < {0}/file.bin",
        q(p(&www))
    ));
    let mut tw = member_wire(&ns, &[]);
    let mut server = ns.spawn_bg(&format!(
        "exec python3 -u -m http.server --bind 0.0.0.0 --directory {} {HTTP_PORT} 1>&2",
        q(p(&www))
    ));
    server.wait_stderr("Serving HTTP", READY_TIMEOUT);

    // The reader writes into a pipe nobody reads until `go` exists: once the pipe is full it
    // blocks in write(2) and stops reading its socket.
    let dir = dir_of(&ns, &MEMBER, "cap");
    let (go, out, pid) = (dir.join("go"), dir.join("out.pcapng"), dir.join("pid"));
    let mut stalled = ns.spawn_bg(&format!(
        "{CLEAN_ENV}{{ echo $BASHPID > {pid}; exec {reader} capture -w -; }} | \
         {{ while [ ! -e {go} ]; do sleep 0.1; done; exec cat > {out}; }}",
        pid = q(p(&pid)),
        reader = bin_as(&ns, As::User(&MEMBER)),
        go = q(p(&go)),
        out = q(p(&out)),
    ));
    wait_attached(&tw, 1, || stalled.stderr());

    let started = Instant::now();
    let got = ns.sh_ok(&format!(
        "curl -sS --fail --max-time 60 -o {0} http://{B4}:{HTTP_PORT}/file.bin && sha256sum < {0}",
        q(p(&ns.dir().join("download.bin")))
    ));
    let took = started.elapsed();
    assert_eq!(got, sha, "the 5 MiB transfer across the wire was corrupted");
    ping_ok(&ns, 3, "-i 0.2");
    assert!(
        !tw.stderr().contains("capture reader 1 detached"),
        "the stalled reader is still attached (it is slow, not gone):\n{}",
        tw.stderr()
    );
    eprintln!("5 MiB across the wire with a stalled reader: {took:?}");

    // The reader resumes: it gets the records its buffer kept, then the new ones, the first
    // of which says how many were lost.
    fs::write(&go, b"").expect("create go");
    // What the relay kept for it arrives first; once the output stops growing the reader is
    // level with the wire again, and the next pings reach it.
    let mut last = 0;
    assert!(
        wait_until(READY_TIMEOUT, || {
            sleep_ms(200);
            let now = fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            let settled = now > 0 && now == last;
            last = now;
            settled
        }),
        "the resumed reader's output stays empty"
    );
    // 128-byte pings, told apart from the 84-byte ones sent while it was stalled.
    ping_ok(&ns, 3, "-i 0.2 -s 100");
    wait_frames(&ns, &out, "icmp.type == 0 && frame.len == 128", 3);
    let reader_pid: u32 = fs::read_to_string(&pid)
        .expect("read reader pid")
        .trim()
        .parse()
        .expect("pid");
    assert!(signal(reader_pid, "TERM"), "SIGTERM the reader");
    let e = stalled.wait(EXIT_TIMEOUT);
    assert_eq!(e.code, Some(0), "the reader's pipeline: {e}");

    let rows = tshark_fields(
        &ns,
        &out,
        "",
        &["frame.number", "frame.drop_count", "icmp.type", "frame.len"],
    );
    let dropped: u64 = rows.iter().filter_map(|r| r[1].parse::<u64>().ok()).sum();
    let flagged: Vec<&Vec<String>> = rows.iter().filter(|r| !r[1].is_empty()).collect();
    assert!(
        dropped > 0 && !flagged.is_empty(),
        "the stalled reader lost records, and a record says how many (frame.drop_count); \
         {} frames, none with a drop count",
        rows.len()
    );
    let resumed = rows
        .iter()
        .filter(|r| !r[2].is_empty() && r[3] == "128")
        .count();
    assert_eq!(
        resumed, 6,
        "the 3 pings after the reader resumed reached it, each direction"
    );
    // The losses are counted exactly: records kept plus records reported lost is every packet
    // that crossed the wire while it was attached, which is all of them (the kernel's
    // counters of both TUNs; IPv6 is off, so nothing else crossed).
    let json = ns.sh_ok(&format!("{} list --json", q(BIN)));
    let sent: u64 = [
        "\"a_to_b\":{\"sent_packets\":",
        "\"b_to_a\":{\"sent_packets\":",
    ]
    .iter()
    .map(|key| {
        json.split_once(key)
            .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {key} in {json}"))
    })
    .sum();
    assert_eq!(
        rows.len() as u64 + dropped,
        sent,
        "{} records kept + {dropped} reported lost should be the {sent} packets that crossed",
        rows.len()
    );
    eprintln!(
        "stalled reader: {} records kept, {dropped} lost ({} records say so), {sent} crossed",
        rows.len(),
        flagged.len()
    );
    stop_clean(&ns, &mut tw);
}

// ----------------------------------------------------------------------------------------------
// 5: impairment decisions reach live readers
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn impairment_comments_reach_live_readers() {
    if !require_root() {
        return;
    }
    let ns = netns();
    let mut tw = member_wire(&ns, &["--impair", "tun0: loss 50%", "--seed", "1"]);
    let dir = dir_of(&ns, &MEMBER, "cap");
    let file = dir.join("impaired.pcapng");
    let mut r = reader(
        &ns,
        &tw,
        1,
        &["-c", "30", "-w", p(&file)],
        As::User(&MEMBER),
    );
    // Half the requests are lost: ping fails, by design.
    ns.sh(&format!("ping -4 -n -q -W 1 -c 40 -i 0.05 {B4}"));
    reader_done(&mut r);
    let rows = tshark_fields(
        &ns,
        &file,
        "",
        &["frame.interface_name", "icmp.type", "frame.comment"],
    );
    assert_eq!(rows.len(), 30, "{rows:?}");
    let drops: Vec<&Vec<String>> = rows
        .iter()
        .filter(|r| r[2].contains("tunwire: drop loss"))
        .collect();
    assert!(
        !drops.is_empty(),
        "the live stream carries `tunwire: drop loss` comments: {rows:?}"
    );
    for d in &drops {
        assert_eq!(
            (d[0].as_str(), d[1].as_str()),
            ("tun0", "8"),
            "only requests read from tun0 are impaired: {rows:?}"
        );
    }
    let replies = rows.iter().filter(|r| r[1] == "0").count();
    assert!(
        replies > 0,
        "the requests that passed were answered: {rows:?}"
    );
    stop_clean(&ns, &mut tw);
}

// ----------------------------------------------------------------------------------------------
// 6: a reader is not fooled by a squatter on the socket name
// ----------------------------------------------------------------------------------------------

/// A listener on `\0tunwire-capture-PID` that answers like a wire: `OK` and bytes that are no
/// pcapng. A reader that trusted it would write them.
const SQUATTER: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(b"\0tunwire-capture-" + sys.argv[1].encode())
s.listen(8)
while True:
    c, _ = s.accept()
    c.settimeout(1)
    try:
        c.recv(128)
        c.sendall(b"OK\n" + b"\x0a\x0d\x0d\x0a" + b"squatted" * 64)
    except OSError:
        pass
    c.close()
"#;

#[test]
#[ignore = "needs root"]
fn a_socket_name_taken_by_another_user_is_refused_by_readers() {
    if !require_root() {
        return;
    }
    let ns = netns();
    let squatter = ns.dir().join("squatter.py");
    fs::write(&squatter, SQUATTER).expect("write squatter");
    // The wrapper's pid becomes the supervisor's (exec, twice: setpriv, then tunwire): the
    // squatter, started first as twstranger, takes the name the relay will want.
    let script = format!(
        "setpriv --reuid={s} --regid={s} --clear-groups /usr/bin/python3 {py} $$ &
         for i in $(seq 200); do
             grep -q '@tunwire-capture-'$$'$' /proc/net/unix && break; sleep 0.05
         done
         grep -q '@tunwire-capture-'$$'$' /proc/net/unix || {{ echo 'squatter not bound' >&2; exit 99; }}
         exec \"$0\" \"$@\"",
        s = STRANGER.uid,
        py = q(p(&squatter)),
    );
    let args = [
        format!("--reuid={}", MEMBER.uid),
        format!("--regid={}", MEMBER.gid),
        "--init-groups".into(),
        p(&ns.binary_copy(true)).into(),
    ];
    let mut cmd = ns.command("bash");
    cmd.arg("-c").arg(&script).arg("setpriv").args(&args);
    scrub_env(&mut cmd);
    let mut tw = ns.start(cmd);
    if let Err(e) = tw.wait_stderr("ready:", READY_TIMEOUT) {
        panic!("the wire did not start next to the squatter: {e}");
    }
    let sup = tw.pid();
    assert!(
        tw.stderr().contains("live capture is unavailable")
            && tw.stderr().contains(&format!("tunwire-capture-{sup}")),
        "the wire says why it takes no readers:\n{}",
        tw.stderr()
    );
    // The wire itself works.
    ping_ok(&ns, 3, "-i 0.2");

    for who in [As::User(&MEMBER), As::Root] {
        // A reader drops every capability, root's too: each writes to a directory of its own.
        let file = match who {
            As::Root => ns.dir().join("root.pcapng"),
            _ => dir_of(&ns, &MEMBER, "cap").join("x.pcapng"),
        };
        let e = ns.run_tunwire(&["capture", "-c", "1", "-w", p(&file)], who);
        assert_eq!(e.code, NOPERM, "{who:?} must refuse the squatter: {e}");
        assert!(
            e.stderr.contains(&format!("held by uid {}", STRANGER.uid))
                && e.stderr.contains("not reading from it"),
            "{who:?}: the refusal names the uid holding the socket: {e}"
        );
        let got = fs::read(&file).unwrap_or_default();
        assert!(
            got.is_empty(),
            "{who:?} wrote {} bytes of the squatter's",
            got.len()
        );
    }
    // The extcap capture refuses the same way, before it opens Wireshark's FIFO.
    let fifo = ns.dir().join("fifo");
    ns.sh_ok(&format!("mkfifo -m 0666 {}", q(p(&fifo))));
    let e = ns.run_tunwire(
        &[
            "--capture",
            "--extcap-interface",
            "tunwire-tun0",
            "--fifo",
            p(&fifo),
        ],
        As::User(&MEMBER),
    );
    assert_eq!(e.code, NOPERM, "extcap capture next to a squatter: {e}");
    tw.signal("TERM");
    let e = tw.wait_exit(EXIT_TIMEOUT);
    assert_eq!(e.code, Some(0), "{e}");
    ns.assert_no_leftovers();
}

// ----------------------------------------------------------------------------------------------
// 7: the socket goes with the wire
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn the_socket_goes_with_the_wire_after_sigterm_and_sigkill() {
    if !require_root() {
        return;
    }
    let ns = netns();
    let dir = dir_of(&ns, &MEMBER, "cap");

    // SIGTERM, with a reader attached: the reader ends with the wire, exit 0.
    let mut tw = member_wire(&ns, &[]);
    let sup = tw.pid();
    assert!(
        listening(&ns, sup),
        "the wire listens as @tunwire-capture-{sup}"
    );
    let mut r = reader(
        &ns,
        &tw,
        1,
        &["-w", p(&dir.join("ends.pcapng"))],
        As::User(&MEMBER),
    );
    ping_ok(&ns, 2, "-i 0.2");
    stop_clean(&ns, &mut tw);
    let e = reader_done(&mut r);
    assert!(e.stderr.contains("4 packets captured"), "{e}");
    assert!(!listening(&ns, sup), "the socket is gone after SIGTERM");
    let e = ns.run_tunwire(&["capture", "-c", "1"], As::User(&MEMBER));
    assert_ne!(e.code, Some(0), "{e}");
    assert!(e.stderr.contains("no wire is running"), "{e}");

    // SIGKILL of both processes: the kernel closes the socket with the relay.
    let mut tw = member_wire(&ns, &[]);
    let sup = tw.pid();
    assert!(listening(&ns, sup));
    tw.kill_all();
    assert!(
        wait_until(READY_TIMEOUT, || !listening(&ns, sup)),
        "the socket is gone after SIGKILL"
    );
    let e = ns.run_tunwire(&["capture", "-c", "1"], As::User(&MEMBER));
    assert_ne!(e.code, Some(0), "{e}");
    assert!(e.stderr.contains("no wire is running"), "{e}");
    let e = ns.run_tunwire(&["--extcap-interfaces"], As::User(&MEMBER));
    assert_eq!(
        e.stdout.matches("interface {").count(),
        0,
        "no extcap interface for a killed wire: {e}"
    );

    // A new wire starts and takes readers.
    let mut tw = member_wire(&ns, &[]);
    assert!(listening(&ns, tw.pid()));
    let file = dir.join("after.pcapng");
    let mut r = reader(
        &ns,
        &tw,
        1,
        &["-c", "10", "-w", p(&file)],
        As::User(&MEMBER),
    );
    ping_ok(&ns, 5, "-i 0.2");
    reader_done(&mut r);
    assert_five_pings(&ns, &file);
    stop_clean(&ns, &mut tw);
    let unix = ns.sh_ok("cat /proc/net/unix");
    assert!(
        !unix.contains("@tunwire-capture-"),
        "no capture socket left:\n{unix}"
    );
}

// ----------------------------------------------------------------------------------------------
// 8: a program that holds the devices leaves nothing to capture
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn a_wire_whose_program_holds_the_devices_has_no_live_capture() {
    if !require_root() {
        return;
    }
    let ns = netns();
    let mut tw = member_wire(&ns, &["--", "/bin/sleep", "600"]);
    assert!(
        !listening(&ns, tw.pid()),
        "no capture socket without a relay"
    );
    let e = ns.run_tunwire(&["capture", "-c", "1", "-w", "-"], As::User(&MEMBER));
    assert_eq!(e.code, Some(1), "{e}");
    assert!(
        e.stderr.contains("takes no live readers") && e.stderr.contains("--pcap"),
        "the refusal says why and what to do: {e}"
    );
    assert!(e.stdout.is_empty(), "{e}");
    assert_eq!(
        list_verdict(&ns, As::User(&MEMBER), "tun0"),
        "no live capture (a program holds the devices)"
    );
    let listed = extcap(&ns, &["--extcap-interfaces"], As::User(&MEMBER));
    assert!(
        listed.starts_with("extcap ") && !listed.contains("interface {"),
        "a wire without live capture is no Wireshark interface:\n{listed}"
    );
    tw.signal("TERM");
    tw.wait_exit(EXIT_TIMEOUT);
    ns.assert_no_leftovers();

    // With --pcap tunwire stays in the path (as the message advises): readers may attach.
    let dir = dir_of(&ns, &MEMBER, "cap");
    let mut args: Vec<&str> = vec!["--pcap"];
    let pcap = dir.join("prog.pcapng");
    args.push(p(&pcap));
    args.extend(["--", "/bin/sleep", "600"]);
    let mut tw = ns.start(ns.tunwire_cmd(&args, As::CapUser(&MEMBER)));
    if let Err(e) = tw.wait_stderr("ready:", READY_TIMEOUT) {
        panic!("--pcap -- sleep did not start: {e}");
    }
    assert!(listening(&ns, tw.pid()));
    assert_eq!(
        list_verdict(&ns, As::User(&MEMBER), "tun0"),
        "yes, you may attach"
    );
    let listed = extcap(&ns, &["--extcap-interfaces"], As::User(&MEMBER));
    assert!(
        listed.contains("interface {value=tunwire-tun0}"),
        "{listed}"
    );
    let live = dir.join("live.pcapng");
    let e = ns.run_tunwire(
        &["capture", "--duration", "1", "-w", p(&live)],
        As::User(&MEMBER),
    );
    assert_eq!(e.code, Some(0), "{e}");
    assert!(fs::read(&live).expect("read").starts_with(&PCAPNG_MAGIC));
    tw.signal("TERM");
    tw.wait_exit(EXIT_TIMEOUT);
    ns.assert_no_leftovers();
}

// ----------------------------------------------------------------------------------------------
// 9 + 11: the extcap interface
// ----------------------------------------------------------------------------------------------

/// `tunwire ARGS --extcap-version=4.0` as `who`: exit 0 expected; returns stdout.
fn extcap(ns: &Netns, args: &[&str], who: As) -> String {
    let mut all = args.to_vec();
    all.push("--extcap-version=4.0");
    let e = ns.run_tunwire(&all, who);
    assert_eq!(e.code, Some(0), "extcap call {all:?}: {e}");
    e.stdout
}

#[test]
#[ignore = "needs root"]
fn extcap_lists_each_wire_with_its_link_type_and_settings() {
    if !require_root() {
        return;
    }
    let ns = netns();
    let mut tun = member_wire(&ns, &[]);
    let mut tap = ns.up(&["--mode", "tap"], As::CapUser(&EXTRA_MEMBERS[0]));
    // Wireshark runs as whoever uses it: a stranger may list.
    let listed = extcap(&ns, &["--extcap-interfaces"], As::User(&STRANGER));
    assert_eq!(
        listed,
        format!(
            "extcap {{version={}}}{{help=man:tunwire(8)}}\n\
             interface {{value=tunwire-tun0}}{{display=tunwire: tun0 <-> tun1 (twmember)}}\n\
             interface {{value=tunwire-tun2}}{{display=tunwire: tun2 <-> tun3 (twmember2)}}\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    let dlt = |iface: &str| {
        extcap(
            &ns,
            &["--extcap-interface", iface, "--extcap-dlts"],
            As::User(&STRANGER),
        )
    };
    assert_eq!(
        dlt("tunwire-tun0"),
        "dlt {number=101}{name=RAW}{display=Raw IP (TUN)}\n"
    );
    assert_eq!(
        dlt("tunwire-tun2"),
        "dlt {number=1}{name=EN10MB}{display=Ethernet (TAP)}\n"
    );
    let config = extcap(
        &ns,
        &["--extcap-interface", "tunwire-tun0", "--extcap-config"],
        As::User(&STRANGER),
    );
    let args: Vec<&str> = config.lines().filter(|l| l.starts_with("arg ")).collect();
    assert_eq!(args.len(), 1, "{config}");
    for part in [
        "{number=0}",
        "{call=--snaplen}",
        "{type=integer}",
        "{range=1,262144}",
        "{default=262144}",
    ] {
        assert!(args[0].contains(part), "{part} in {config}");
    }
    // Wireshark checks a capture filter by calling without --capture: any output means "invalid".
    let filter = |f: &str| {
        extcap(
            &ns,
            &[
                "--extcap-interface",
                "tunwire-tun0",
                "--extcap-capture-filter",
                f,
            ],
            As::User(&STRANGER),
        )
    };
    let said = filter("port 80");
    assert!(
        said.contains("capture filter"),
        "a filter is refused: {said:?}"
    );
    assert_eq!(filter(""), "", "an empty filter is fine");

    // The TAP wire's live stream is Ethernet, as its DLT says.
    let dir = dir_of(&ns, &EXTRA_MEMBERS[0], "cap");
    let file = dir.join("tap.pcapng");
    let e = ns.run_tunwire(
        &["capture", "tun3", "--duration", "1", "-w", p(&file)],
        As::User(&EXTRA_MEMBERS[0]),
    );
    assert_eq!(e.code, Some(0), "{e}");
    let info = ns.sh_ok(&format!("capinfos -E {}", q(p(&file))));
    assert!(info.contains("Ethernet"), "{info}");
    for w in [&mut tun, &mut tap] {
        let e = w.stop("TERM");
        assert_eq!(e.code, Some(0), "{e}");
    }
    ns.assert_no_leftovers();
    let listed = extcap(&ns, &["--extcap-interfaces"], As::User(&STRANGER));
    assert_eq!(listed.lines().count(), 1, "only the extcap line: {listed}");
}

#[test]
#[ignore = "needs root"]
fn ten_wires_are_ten_extcap_interfaces() {
    if !require_root() {
        return;
    }
    let ns = netns();
    let users: Vec<&TestUser> = std::iter::once(&MEMBER)
        .chain(EXTRA_MEMBERS.iter())
        .collect();
    let mut wires: Vec<Instance> = users.iter().map(|u| ns.up(&[], As::CapUser(u))).collect();
    let listed = extcap(&ns, &["--extcap-interfaces"], As::User(&STRANGER));
    let interfaces: Vec<&str> = listed
        .lines()
        .filter(|l| l.starts_with("interface "))
        .collect();
    assert_eq!(interfaces.len(), 10, "{listed}");
    for (i, user) in users.iter().enumerate() {
        let line = format!(
            "interface {{value=tunwire-tun{a}}}{{display=tunwire: tun{a} <-> tun{b} ({u})}}",
            a = 2 * i,
            b = 2 * i + 1,
            u = user.name
        );
        assert!(interfaces.contains(&line.as_str()), "{line} in:\n{listed}");
    }
    for w in &mut wires {
        let e = w.stop("TERM");
        assert_eq!(e.code, Some(0), "{e}");
    }
}

// ----------------------------------------------------------------------------------------------
// 10: the real client, tshark
// ----------------------------------------------------------------------------------------------

/// A HOME whose personal extcap folder holds a copy of the binary named `tunwire`: the folder
/// tshark names in `tshark -G folders` ("Personal Extcap path", Wireshark >= 4.1), else the
/// extcap folder of the personal configuration, which Wireshark 4.0 searches. Returns the
/// environment prefix for tshark.
fn extcap_home(ns: &Netns) -> String {
    let home = ns.dir().join("home");
    fs::create_dir(&home).expect("create HOME");
    let env = format!(
        "unset XDG_CONFIG_HOME XDG_DATA_HOME WIRESHARK_CONFIG_DIR; HOME={}; export HOME; ",
        q(p(&home))
    );
    let folders = ns.sh_ok(&format!("{env}tshark -G folders 2>/dev/null"));
    let field = |name: &str| {
        folders.lines().find_map(|l| {
            l.strip_prefix(name)
                .map(|v| v.trim_start_matches(':').trim().to_owned())
        })
    };
    let folder = field("Personal Extcap path")
        .or_else(|| field("Personal configuration").map(|c| format!("{c}/extcap")))
        .unwrap_or_else(|| panic!("no personal folder in `tshark -G folders`:\n{folders}"));
    assert!(
        folder.starts_with(p(&home)),
        "the personal extcap folder {folder} is not under HOME:\n{folders}"
    );
    ns.sh_ok(&format!(
        "install -D -m 0755 {} {}/tunwire",
        q(BIN),
        q(&folder)
    ));
    env
}

#[test]
#[ignore = "needs root"]
fn tshark_lists_the_wire_and_captures_through_the_extcap() {
    if !require_root() {
        return;
    }
    let ns = netns();
    let mut tw = member_wire(&ns, &[]);
    let env = extcap_home(&ns);
    let listed = ns.sh_ok(&format!("{env}tshark -D 2>/dev/null"));
    assert!(
        listed
            .lines()
            .any(|l| l.ends_with(". tunwire-tun0 (tunwire: tun0 <-> tun1 (twmember))")),
        "tshark -D lists the wire:\n{listed}"
    );

    // tshark -i tunwire-tun0 -c 10: the extcap attaches, tshark stops it after 10 packets.
    let file = ns.dir().join("tshark.pcapng");
    let mut ts = ns.spawn_bg(&format!(
        "{env}exec tshark -n -i tunwire-tun0 -c 10 -w {}",
        q(p(&file))
    ));
    wait_attached(&tw, 1, || ts.stderr());
    ping_ok(&ns, 5, "-i 0.2");
    let e = ts.wait(EXIT_TIMEOUT);
    assert_eq!(e.code, Some(0), "tshark -i tunwire-tun0 -c 10: {e}");
    assert_five_pings(&ns, &file);
    assert!(
        wait_until(READY_TIMEOUT, || tw
            .stderr()
            .contains("capture reader 1 detached")),
        "the extcap left when tshark was done:\n{}",
        tw.stderr()
    );

    // Wireshark stops a capture with SIGTERM to the extcap: it ends at once, tshark ends with
    // what it got, and the wire goes on.
    // tshark prints each packet as it comes (-l), so the test sees when all have arrived.
    let mut ts = ns.spawn_bg(&format!(
        "{env}exec tshark -l -n -i tunwire-tun0 -T fields -e icmp.type -e icmp.seq"
    ));
    wait_attached(&tw, 2, || ts.stderr());
    ping_ok(&ns, 3, "-i 0.2");
    let printed = || ts.stdout().lines().count();
    assert!(
        wait_until(READY_TIMEOUT, || printed() >= 6),
        "tshark printed {} of the 6 packets:\n{}{}",
        printed(),
        ts.stdout(),
        ts.stderr()
    );
    let extcaps = pids_with_args(&ns, &["--capture", "--fifo", "tunwire-tun0"]);
    assert_eq!(extcaps.len(), 1, "one extcap capture process: {extcaps:?}");
    let extcap = extcaps[0];
    assert!(signal(extcap, "TERM"));
    assert!(
        wait_until(EXIT_TIMEOUT, || !alive(extcap)),
        "the extcap ends on SIGTERM"
    );
    assert!(
        wait_until(READY_TIMEOUT, || tw
            .stderr()
            .contains("capture reader 2 detached")),
        "{}",
        tw.stderr()
    );
    let e = ts.wait(EXIT_TIMEOUT);
    assert_eq!(e.code, Some(0), "tshark after its extcap stopped: {e}");
    assert!(
        !e.stderr.to_lowercase().contains("error"),
        "tshark reports no extcap error: {e}"
    );
    let rows: Vec<&str> = e.stdout.lines().collect();
    assert_eq!(
        rows,
        ["8\t1", "0\t1", "8\t2", "0\t2", "8\t3", "0\t3"],
        "the 3 pings before the stop: {e}"
    );
    ping_ok(&ns, 2, "-i 0.2");
    stop_clean(&ns, &mut tw);
}

#[test]
#[ignore = "needs root"]
fn an_extcap_capture_ends_cleanly_on_sigterm() {
    if !require_root() {
        return;
    }
    let ns = netns();
    let mut tw = member_wire(&ns, &[]);
    // As Wireshark does it, run by the owner: a FIFO, its reader, then the extcap.
    let dir = dir_of(&ns, &MEMBER, "cap");
    let (fifo, out) = (dir.join("fifo"), dir.join("out.pcapng"));
    ns.sh_ok(&format!(
        "mkfifo -m 0600 {0} && chown {1}:{1} {0}",
        q(p(&fifo)),
        MEMBER.uid
    ));
    let mut cat = ns.spawn_bg(&format!("exec cat {} > {}", q(p(&fifo)), q(p(&out))));
    let mut ext = ns.start(ns.tunwire_cmd(
        &[
            "--extcap-version=4.0",
            "--capture",
            "--extcap-interface",
            "tunwire-tun0",
            "--fifo",
            p(&fifo),
            "--snaplen",
            "64",
        ],
        As::User(&MEMBER),
    ));
    wait_attached(&tw, 1, || ext.stderr());
    assert!(tw.stderr().contains("(snaplen 64)"), "{}", tw.stderr());
    ping_ok(&ns, 3, "-i 0.2");
    wait_frames(&ns, &out, "icmp", 6);
    let e = ext.stop("TERM");
    assert_eq!(e.code, Some(0), "the extcap on SIGTERM: {e}");
    let e = cat.wait(EXIT_TIMEOUT);
    assert_eq!(e.code, Some(0), "{e}");
    let rows = tshark_fields(&ns, &out, "", &["icmp.type", "frame.cap_len"]);
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert!(rows.iter().all(|r| r[1] == "64"), "{rows:?}");
    stop_clean(&ns, &mut tw);
}
