// SPDX-License-Identifier: MIT OR Apache-2.0
//! Integration tests for seeded, reproducible link impairment (`--impair`, `--seed`): the real
//! binary in a private network + mount namespace per test (see tests/common), traffic only to
//! 192.168.13.x / fd13:: inside it, measured with the real tools (ping, iperf3, nstat, tshark,
//! capinfos) and small Python senders and receivers.
//!
//! Conventions:
//! - Receivers listen on 0.0.0.0: a pair address cannot be bound (design.md).
//! - A receiver stops on an `END` datagram sent over `lo`, never through the wire, and only
//!   once the relay's counters (SIGUSR1) say every datagram was handled: no idle timeouts.
//! - The relay writes captures as `twmember` (`--user twmember`, a directory it owns).
//! - Tests that measure time (RTT, throughput) and tests that load the CPU take `exclusive()`,
//!   so that two of them never run at once in this binary and a flood never skews a delay.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The two directions, as the counter lines and the capture header name them.
const FWD: &str = "tun0 -> tun1";
const REV: &str = "tun1 -> tun0";

/// UDP ports of the receivers (on 0.0.0.0).
const PORT: u16 = 40013;
const REV_PORT: u16 = 40014;

/// How long to wait for the relay to handle what was sent (never reached when it works).
const SETTLE: Duration = Duration::from_secs(20);

// ----------------------------------------------------------------------------------------------
// Private helpers
// ----------------------------------------------------------------------------------------------

/// Serialises the tests whose results depend on timing or that load the CPU (see the module
/// documentation). A test that panicked while holding it does not poison the others.
fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `["--user", "twmember", args...]`: the relay (which writes the capture) runs as twmember.
fn as_member<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--user", MEMBER.name];
    all.extend_from_slice(args);
    all
}

/// Receives numbered datagrams on 0.0.0.0:PORT until an `END` datagram; prints the numbers in
/// arrival order on one line. The big receive buffer (SO_RCVBUFFORCE) keeps a busy machine
/// from dropping datagrams in the receiver.
const RECEIVER_PY: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(120)
print("listening", file=sys.stderr, flush=True)
seqs = []
while True:
    data = s.recv(65536)
    if data == b"END":
        break
    seqs.append(data.split(b" ")[0].decode())
print(" ".join(seqs), flush=True)
"#;

/// Sends datagrams numbered 1..=COUNT (`N ` then padding to SIZE bytes) to DST:PORT, GAP
/// seconds apart.
const SENDER_PY: &str = r#"
import socket, sys, time
dst, port, count, gap, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(1, count + 1):
    head = b"%d " % i
    s.sendto(head + b"x" * max(0, size - len(head)), (dst, port))
    if gap > 0:
        time.sleep(gap)
"#;

/// Sends SIZE-byte datagrams to DST:PORT for SECS seconds, at most PPS per second (0: as fast
/// as it can); prints how many it sent.
const FLOOD_PY: &str = r#"
import socket, sys, time
dst, port, secs, size, pps = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = b"f" * size
n = 0
start = time.monotonic()
print("flooding", file=sys.stderr, flush=True)
while True:
    for _ in range(64):
        try:
            s.sendto(payload, (dst, port))
            n += 1
        except OSError:
            pass
    now = time.monotonic()
    if now - start >= secs:
        break
    if pps > 0 and n > pps * (now - start):
        time.sleep(n / pps - (now - start))
print(n, flush=True)
"#;

/// Reads and discards datagrams on 0.0.0.0:PORT until killed.
const SINK_PY: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
s.bind(("0.0.0.0", int(sys.argv[1])))
print("listening", file=sys.stderr, flush=True)
while True:
    s.recv(65536)
"#;

/// Write the Python helper `name` into the test's scratch directory; returns its path.
fn script(ns: &Netns, name: &str, text: &str) -> PathBuf {
    let path = ns.dir().join(name);
    fs::write(&path, text).expect("write python helper");
    path
}

/// The receiver on 0.0.0.0:`port`, started and listening.
fn receiver(ns: &Netns, port: u16) -> Bg {
    let py = script(ns, "recv.py", RECEIVER_PY);
    let mut bg = ns.spawn_bg(&format!("exec python3 -u {} {port}", q(p(&py))));
    bg.wait_stderr("listening", READY_TIMEOUT);
    bg
}

/// A sink on 0.0.0.0:`port` (so that datagrams to it cause no ICMP errors), listening.
fn sink(ns: &Netns, port: u16) -> Bg {
    let py = script(ns, "sink.py", SINK_PY);
    let mut bg = ns.spawn_bg(&format!("exec python3 -u {} {port}", q(p(&py))));
    bg.wait_stderr("listening", READY_TIMEOUT);
    bg
}

/// Send datagrams 1..=count of `size` bytes to `dst`:PORT, `gap` seconds apart (blocking).
fn send_numbered(ns: &Netns, dst: &str, count: u32, gap: f64, size: usize) {
    let py = script(ns, "send.py", SENDER_PY);
    ns.sh_ok(&format!(
        "python3 {} {dst} {PORT} {count} {gap} {size}",
        q(p(&py))
    ));
}

/// Stop the receiver (an `END` over lo, not through the wire) and return the numbers it got,
/// in arrival order.
fn finish_receiver(ns: &Netns, mut rx: Bg, port: u16) -> Vec<u32> {
    ns.sh_ok(&format!("echo -n END > /dev/udp/127.0.0.1/{port}"));
    let done = rx.wait(EXIT_TIMEOUT);
    assert_eq!(done.code, Some(0), "receiver: {done}");
    done.stdout
        .split_whitespace()
        .map(|n| {
            n.parse()
                .unwrap_or_else(|e| panic!("receiver printed {n:?}: {e}"))
        })
        .collect()
}

/// One direction's `LABEL: N packets, B bytes, D dropped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Leg {
    packets: u64,
    bytes: u64,
    dropped: u64,
}

/// One direction's `LABEL impairment: L lost, Q queue full, U duplicated, C corrupted,
/// R reordered, D delayed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Imp {
    lost: u64,
    queue_full: u64,
    duplicated: u64,
    corrupted: u64,
    reordered: u64,
    delayed: u64,
}

/// `text` up to its last newline: a line being written is not parsed half-way.
fn complete(text: &str) -> &str {
    &text[..text.rfind('\n').map_or(0, |i| i + 1)]
}

/// "N word, M other words, ..." -> (word, N) pairs; panics on anything else.
fn numbered_words(line: &str, rest: &str) -> Vec<(String, u64)> {
    rest.split(',')
        .map(|part| {
            let part = part.trim();
            let (n, word) = part
                .split_once(' ')
                .unwrap_or_else(|| panic!("counter {part:?} in {line:?}"));
            let n = n
                .parse()
                .unwrap_or_else(|e| panic!("counter {part:?} in {line:?}: {e}"));
            (word.to_owned(), n)
        })
        .collect()
}

/// Every `LABEL: ...` counter line of `stderr`, in order.
fn legs(stderr: &str, label: &str) -> Vec<Leg> {
    let key = format!(" {label}: ");
    complete(stderr)
        .lines()
        .filter_map(|l| Some((l, l.split_once(&key)?.1)))
        .map(|(line, rest)| {
            let mut leg = Leg::default();
            let words = numbered_words(line, rest);
            let names: Vec<&str> = words.iter().map(|(w, _)| w.as_str()).collect();
            assert_eq!(
                names,
                ["packets", "bytes", "dropped"],
                "counter line {line:?}"
            );
            (leg.packets, leg.bytes, leg.dropped) = (words[0].1, words[1].1, words[2].1);
            leg
        })
        .collect()
}

/// Every `LABEL impairment: ...` line of `stderr`, in order.
fn imps(stderr: &str, label: &str) -> Vec<Imp> {
    let key = format!(" {label} impairment: ");
    complete(stderr)
        .lines()
        .filter_map(|l| Some((l, l.split_once(&key)?.1)))
        .map(|(line, rest)| {
            let words = numbered_words(line, rest);
            let names: Vec<&str> = words.iter().map(|(w, _)| w.as_str()).collect();
            assert_eq!(
                names,
                [
                    "lost",
                    "queue full",
                    "duplicated",
                    "corrupted",
                    "reordered",
                    "delayed"
                ],
                "impairment counter line {line:?}"
            );
            let v: Vec<u64> = words.iter().map(|(_, n)| *n).collect();
            Imp {
                lost: v[0],
                queue_full: v[1],
                duplicated: v[2],
                corrupted: v[3],
                reordered: v[4],
                delayed: v[5],
            }
        })
        .collect()
}

/// The last counters of one direction in `stderr`: its leg line and, if it has an engine, its
/// impairment line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dir {
    leg: Leg,
    imp: Option<Imp>,
}

fn last_dir(stderr: &str, label: &str) -> Option<Dir> {
    Some(Dir {
        leg: *legs(stderr, label).last()?,
        imp: imps(stderr, label).last().copied(),
    })
}

/// Whether the reverse direction (packets read from tun1) has an engine, so that its counter
/// dump ends with an impairment line: the ready line names every impaired side.
fn rev_impaired(stderr: &str) -> bool {
    stderr
        .lines()
        .find(|l| l.contains("ready:"))
        .is_some_and(|l| l.contains("; tun1: "))
}

/// SIGUSR1 to the relay; waits for the whole dump of both directions and returns the forward
/// and reverse counters it shows. (A capture line may follow; see `capture_recorded`.)
fn usr1(tw: &mut Instance) -> (Dir, Dir) {
    let text = tw.stderr();
    let before = legs(&text, REV).len();
    let rev_engine = rev_impaired(&text);
    tw.signal_relay("USR1");
    let mut text = String::new();
    let dumped = wait_until(SETTLE, || {
        text = tw.stderr();
        let rev_legs = legs(&text, REV).len();
        // The reverse direction is logged last; its impairment line, if any, right after.
        rev_legs > before && (!rev_engine || imps(&text, REV).len() == rev_legs)
    });
    assert!(dumped, "no counters after SIGUSR1 to the relay:\n{text}");
    (
        last_dir(&text, FWD).expect("forward counters"),
        last_dir(&text, REV).expect("reverse counters"),
    )
}

/// The `N` of every complete `capture: N packets recorded, M lost` line, in order.
fn capture_recorded(stderr: &str) -> Vec<u64> {
    complete(stderr)
        .lines()
        .filter_map(|l| {
            l.split_once(" capture: ")?
                .1
                .split_once(" packets recorded")
        })
        .map(|(n, _)| n.parse().expect("capture counter"))
        .collect()
}

/// SIGUSR1 to the relay until `done(forward, reverse)`; returns the last counters.
fn usr1_until(
    tw: &mut Instance,
    what: &str,
    mut done: impl FnMut(&Dir, &Dir) -> bool,
) -> (Dir, Dir) {
    let mut last = None;
    let ok = wait_until(SETTLE, || {
        let (f, r) = usr1(tw);
        last = Some((f, r));
        done(&f, &r)
    });
    let last = last.expect("at least one dump");
    assert!(
        ok,
        "the relay never reported {what}; last counters {last:?}; stderr:\n{}",
        tw.stderr()
    );
    last
}

/// The counters an exited instance logged last, for both directions.
fn exit_counters(exited: &Exited) -> (Dir, Dir) {
    (
        last_dir(&exited.stderr, FWD).unwrap_or_else(|| panic!("no {FWD} counters:\n{exited}")),
        last_dir(&exited.stderr, REV).unwrap_or_else(|| panic!("no {REV} counters:\n{exited}")),
    )
}

/// Real-time scheduling (SCHED_FIFO) for the relay, so that RTTs measure the configured delays
/// and not how long a busy machine (other tests, other users) keeps the relay waiting for a
/// CPU. The relay only polls, so it cannot hog one.
fn realtime(ns: &Netns, tw: &mut Instance) {
    let relay = tw.relay_pid();
    ns.sh_ok(&format!("chrt -f -p 10 {relay}"));
}

/// What one `ping` run showed: (icmp_seq, RTT in ms) per reply, duplicates left out, and
/// ping's own mdev (ms).
struct Pings {
    replies: Vec<(u32, f64)>,
    mdev: f64,
}

impl Pings {
    fn rtts(&self) -> Vec<f64> {
        self.replies.iter().map(|&(_, t)| t).collect()
    }
}

/// `ping -c COUNT -i INTERVAL` to 192.168.13.2, at real-time priority like the relay (see
/// `realtime`). Asserts every reply came back.
fn ping_rtts(ns: &Netns, count: u32, interval: f64) -> Pings {
    let out = ns.sh(&format!(
        "chrt -f 10 ping -4 -n -W 2 -c {count} -i {interval} {B4}"
    ));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success()
            && text.contains(&format!("{count} packets transmitted, {count} received")),
        "ping -c {count} -i {interval} {B4} failed ({}):\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // 64 bytes from 192.168.13.2: icmp_seq=1 ttl=64 time=27.3 ms
    let field = |l: &str, key: &str| -> String {
        l.split_once(key)
            .and_then(|(_, r)| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {key} in {l:?}"))
            .to_owned()
    };
    let replies: Vec<(u32, f64)> = text
        .lines()
        .filter(|l| l.contains("icmp_seq=") && !l.contains("DUP!"))
        .map(|l| {
            let (seq, t) = (field(l, "icmp_seq="), field(l, "time="));
            (
                seq.parse()
                    .unwrap_or_else(|e| panic!("icmp_seq {seq:?} in {l:?}: {e}")),
                t.parse()
                    .unwrap_or_else(|e| panic!("time {t:?} in {l:?}: {e}")),
            )
        })
        .collect();
    assert_eq!(replies.len(), count as usize, "one RTT per reply:\n{text}");
    // rtt min/avg/max/mdev = 0.041/0.052/0.069/0.010 ms
    let mdev = text
        .lines()
        .find_map(|l| l.strip_prefix("rtt min/avg/max/mdev = "))
        .and_then(|r| r.split(['/', ' ']).nth(3))
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no rtt summary in:\n{text}"));
    Pings { replies, mdev }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Standard deviation as ping computes its mdev: sqrt(mean(x²) - mean(x)²).
fn mdev(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64 - m * m)
        .max(0.0)
        .sqrt()
}

/// Sorted copy.
fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// `nstat -asz NAMES`: absolute values of the namespace's counters, without touching nstat's
/// history file (shared by every namespace through /tmp).
fn nstat(ns: &Netns, names: &[&str]) -> Vec<u64> {
    let out = ns.sh_ok(&format!("nstat -asz {}", names.join(" ")));
    names
        .iter()
        .map(|name| {
            out.lines()
                .find_map(|l| {
                    let mut w = l.split_whitespace();
                    (w.next() == Some(*name)).then(|| w.next()?.parse().ok())?
                })
                .unwrap_or_else(|| panic!("no {name} in nstat output:\n{out}"))
        })
        .collect()
}

/// The comment of every section header block (SHB) of the pcapng file, in order (None for a
/// section without one). Checks the block structure on the way.
fn shb_comments(bytes: &[u8]) -> Vec<Option<String>> {
    const SHB: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
    let mut out = Vec::new();
    let mut off = 0;
    let mut le = true;
    while off < bytes.len() {
        assert!(off + 12 <= bytes.len(), "truncated block at {off}");
        let is_shb = bytes[off..off + 4] == SHB;
        if is_shb {
            le = bytes[off + 8..off + 12] == [0x4d, 0x3c, 0x2b, 0x1a];
        }
        let u16_at = |o: usize| {
            let b = [bytes[o], bytes[o + 1]];
            if le {
                u16::from_le_bytes(b)
            } else {
                u16::from_be_bytes(b)
            }
        };
        let u32_at = |o: usize| {
            let b = [bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]];
            if le {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }
        };
        let len = u32_at(off + 4) as usize;
        assert!(
            len >= 12 && len % 4 == 0 && off + len <= bytes.len(),
            "bad block length {len} at {off}"
        );
        assert_eq!(
            u32_at(off + len - 4) as usize,
            len,
            "trailing length at {off}"
        );
        if is_shb {
            // type, length, byte-order magic, version (2+2), section length (8): 24 bytes.
            let mut o = off + 24;
            let mut comment = None;
            while o + 4 <= off + len - 4 {
                let (code, olen) = (u16_at(o), u16_at(o + 2) as usize);
                if code == 0 {
                    break;
                }
                if code == 1 {
                    comment =
                        Some(String::from_utf8_lossy(&bytes[o + 4..o + 4 + olen]).into_owned());
                }
                o += 4 + olen.div_ceil(4) * 4;
            }
            out.push(comment);
        }
        off += len;
    }
    out
}

// ----------------------------------------------------------------------------------------------
// 1 + 2: seeded loss drops the same datagrams, whatever the other direction carries
// ----------------------------------------------------------------------------------------------

/// What one run of `count` numbered datagrams from 192.168.13.1 to 192.168.13.2 showed.
struct UdpRun {
    /// Sequence numbers that arrived, in arrival order.
    received: Vec<u32>,
    fwd: Dir,
    rev: Dir,
    /// Datagrams the reverse flood sent (0 without one).
    flood_sent: u64,
}

/// Start a wire with `args`, send `count` paced datagrams forward (with a concurrent flood
/// from 192.168.13.2 to 192.168.13.1 when `flood`), wait until the relay handled every one,
/// stop the wire cleanly and report.
fn udp_run(ns: &Netns, args: &[&str], count: u32, flood: bool) -> UdpRun {
    let mut tw = ns.up(args, As::Root);
    let rx = receiver(ns, PORT);
    // The flood needs a listener: datagrams to a closed port would send ICMP errors the other
    // way, through the direction under test.
    let _sink = flood.then(|| sink(ns, REV_PORT));
    let mut flooder = flood.then(|| {
        let py = script(ns, "flood.py", FLOOD_PY);
        let mut bg = ns.spawn_bg(&format!(
            "exec python3 -u {} {A4} {REV_PORT} 2 64 20000",
            q(p(&py))
        ));
        bg.wait_stderr("flooding", READY_TIMEOUT);
        bg
    });
    // ~0.6 s for 1000 datagrams: paced so that no queue on the way overflows.
    send_numbered(ns, B4, count, 0.0005, 64);
    // Every datagram read from tun0 was either written to tun1 or dropped by the engine.
    usr1_until(&mut tw, "every datagram handled", |f, _| {
        let imp = f.imp.unwrap_or_default();
        f.leg.packets + f.leg.dropped + imp.lost + imp.queue_full >= u64::from(count)
    });
    let received = finish_receiver(ns, rx, PORT);
    let flood_sent = match flooder.as_mut() {
        Some(bg) => {
            let done = bg.wait(EXIT_TIMEOUT);
            assert_eq!(done.code, Some(0), "flood: {done}");
            done.stdout.trim().parse().expect("flood count")
        }
        None => 0,
    };
    let exited = stop_clean(ns, &mut tw);
    let (fwd, rev) = exit_counters(&exited);
    UdpRun {
        received,
        fwd,
        rev,
        flood_sent,
    }
}

/// Checks one run of 1000 datagrams under `loss 10%`: about 900 arrive, and exactly those the
/// engine did not drop (nothing else lost them). Returns the set that arrived.
fn check_loss_run(run: &UdpRun, what: &str) -> BTreeSet<u32> {
    let imp = run
        .fwd
        .imp
        .unwrap_or_else(|| panic!("{what}: no {FWD} impairment counters"));
    let got: BTreeSet<u32> = run.received.iter().copied().collect();
    eprintln!(
        "{what}: {} of 1000 arrived; {FWD} {:?}; {REV} {:?}; flood sent {}",
        got.len(),
        run.fwd,
        run.rev,
        run.flood_sent
    );
    assert_eq!(
        got.len(),
        run.received.len(),
        "{what}: a datagram arrived twice"
    );
    assert!(
        got.iter().all(|s| (1..=1000).contains(s)),
        "{what}: unexpected sequence numbers {got:?}"
    );
    assert!(
        (850..=950).contains(&got.len()),
        "{what}: loss 10% let {} of 1000 through, want 850..=950",
        got.len()
    );
    assert_eq!(
        (imp.lost, imp.queue_full, run.fwd.leg.dropped),
        (1000 - got.len() as u64, 0, 0),
        "{what}: every missing datagram must be one the engine lost (lost, queue full, write \
         drops); counters {:?}",
        run.fwd
    );
    assert_eq!(
        run.fwd.leg.packets,
        got.len() as u64,
        "{what}: {:?}",
        run.fwd
    );
    got
}

#[test]
#[ignore = "needs root"]
fn seeded_loss_drops_the_same_datagrams_in_every_run() {
    if !require_root() {
        return;
    }
    let args = ["--seed", "7", "--impair", "tun0: loss 10%"];
    let ns = Netns::new();
    let first = udp_run(&ns, &args, 1000, false);
    let second = udp_run(&ns, &args, 1000, false);
    let a = check_loss_run(&first, "run 1");
    let b = check_loss_run(&second, "run 2");
    let only_a: Vec<_> = a.difference(&b).collect();
    let only_b: Vec<_> = b.difference(&a).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "--seed 7 must drop the same datagrams in both runs; only run 1 got {only_a:?}, only \
         run 2 got {only_b:?}"
    );
    // The reverse direction has no impairment: no engine, no impairment line.
    assert_eq!(first.rev.imp, None, "{:?}", first.rev);
}

#[test]
#[ignore = "needs root"]
fn traffic_the_other_way_does_not_change_this_directions_drops() {
    if !require_root() {
        return;
    }
    let _x = exclusive();
    // Both directions impaired, so the flood draws from the reverse direction's streams: the
    // forward decisions must not move.
    let args = ["--seed", "7", "--impair", "loss 10%"];
    let ns = Netns::new();
    let quiet = udp_run(&ns, &args, 1000, false);
    let flooded = udp_run(&ns, &args, 1000, true);
    let a = check_loss_run(&quiet, "without reverse traffic");
    let b = check_loss_run(&flooded, "with a reverse flood");
    assert_eq!(
        quiet.rev.leg.packets, 0,
        "no reverse traffic in the quiet run: {:?}",
        quiet.rev
    );
    let rev_imp = flooded.rev.imp.expect("reverse impairment counters");
    let rev_read =
        flooded.rev.leg.packets + flooded.rev.leg.dropped + rev_imp.lost + rev_imp.queue_full;
    assert!(
        flooded.flood_sent >= 10_000 && rev_read >= 10_000 && rev_imp.lost >= 500,
        "the flood should have crossed the reverse direction and drawn from its loss stream: \
         sent {}, counters {:?}",
        flooded.flood_sent,
        flooded.rev
    );
    let only_a: Vec<_> = a.difference(&b).collect();
    let only_b: Vec<_> = b.difference(&a).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "reverse traffic changed the forward drops: only the quiet run got {only_a:?}, only the \
         flooded run got {only_b:?}"
    );
}

// ----------------------------------------------------------------------------------------------
// 3: delay and jitter, measured by ping
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn delay_adds_its_time_to_the_rtt() {
    if !require_root() {
        return;
    }
    let _x = exclusive();
    let ns = Netns::new();
    // Baseline: the same wire without impairment.
    let mut tw = ns.up(&[], As::Root);
    realtime(&ns, &mut tw);
    let base = ping_rtts(&ns, 10, 0.02).rtts();
    stop_clean(&ns, &mut tw);
    let base_avg = mean(&base);
    assert!(
        base_avg < 2.0,
        "the bare wire's RTT should be well under 2 ms: {base:?}"
    );

    let mut tw = ns.up(&["--seed", "1", "--impair", "tun0: delay 50ms"], As::Root);
    realtime(&ns, &mut tw);
    let rtts = ping_rtts(&ns, 20, 0.02).rtts();
    stop_clean(&ns, &mut tw);
    let s = sorted(&rtts);
    // Only the echo requests (read from tun0) are delayed: one delay per round trip. A packet
    // never leaves early, so every RTT is at least 50 ms.
    assert!(s[0] >= 50.0, "an RTT below the 50 ms delay: {rtts:?}");
    let added = mean(&rtts) - base_avg;
    assert!(
        (45.0..=55.0).contains(&added),
        "delay 50ms should add 50 ± 5 ms to the RTT; added {added:.3} ms (baseline {base_avg:.3} \
         ms): {rtts:?}"
    );
}

/// What `count` pings `interval` s apart through a wire impaired with `tun0: WORDS` showed.
struct Jitter {
    /// Every reply's RTT (ms), in sequence order.
    rtts: Vec<f64>,
    /// ping's mdev (ms).
    mdev: f64,
    /// The RTTs of the replies the host delivered on time: at most `LATE_MS` above the delay
    /// the capture says the echo request was given.
    on_time: Vec<f64>,
}

/// More than this above its planned delay, a reply was held up by the host, not the wire.
const LATE_MS: f64 = 2.0;

/// Runs the pings with a capture, then checks each RTT against the delay its echo request
/// was given (`tunwire: delay NNNus`): never less, and mostly within `LATE_MS`. On a busy
/// machine a few replies are late for reasons no priority of ours covers (packet work the
/// kernel defers to ksoftirqd, a vCPU the hypervisor holds back); those are left out of
/// `on_time`, and they may be at most 10%.
fn jitter_pings(impair: &str, seed: &str, count: u32, interval: f64) -> Jitter {
    let ns = Netns::new();
    let file = ns.dir_for(&MEMBER).join("jitter.pcapng");
    let spec = format!("tun0: {impair}");
    let args = as_member(&["--seed", seed, "--impair", &spec, "--pcap", p(&file)]);
    let mut tw = ns.up(&args, As::Root);
    realtime(&ns, &mut tw);
    let pings = ping_rtts(&ns, count, interval);
    stop_clean(&ns, &mut tw);
    let planned: std::collections::BTreeMap<u32, f64> = tshark_fields(
        &ns,
        &file,
        "frame.interface_name == \"tun0\" && icmp.type == 8",
        &["icmp.seq", "frame.comment"],
    )
    .into_iter()
    .map(|r| {
        let us: f64 = r[1]
            .strip_prefix("tunwire: delay ")
            .and_then(|c| c.strip_suffix("us"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("comment {r:?} should be `tunwire: delay NNNus`"));
        (r[0].parse().expect("icmp.seq"), us / 1000.0)
    })
    .collect();
    let mut on_time = Vec::new();
    let mut late = Vec::new();
    for &(seq, rtt) in &pings.replies {
        let delay = *planned
            .get(&seq)
            .unwrap_or_else(|| panic!("no record of echo request {seq}"));
        // ping prints 3 significant digits: 27.3 for 27.34 ms.
        assert!(
            rtt >= delay - 0.1,
            "icmp_seq={seq}: RTT {rtt} ms below the {delay} ms the capture says it was delayed"
        );
        if rtt <= delay + LATE_MS {
            on_time.push(rtt);
        } else {
            late.push((seq, rtt, delay));
        }
    }
    let rtts = pings.rtts();
    let s = sorted(&rtts);
    eprintln!(
        "{impair}: ping's mdev {} ms, on-time mdev {:.3}, mean {:.3}, min {}, max {}; late \
         (seq, RTT, delay): {late:?}",
        pings.mdev,
        mdev(&on_time),
        mean(&s),
        s[0],
        s[s.len() - 1]
    );
    assert!(
        late.len() * 10 <= rtts.len(),
        "{} of {} replies came more than {LATE_MS} ms after their planned delay (seq, RTT, \
         delay): {late:?}; is the machine overloaded?",
        late.len(),
        rtts.len()
    );
    Jitter {
        rtts,
        mdev: pings.mdev,
        on_time,
    }
}

#[test]
#[ignore = "needs root"]
fn uniform_jitter_spreads_the_rtt_as_configured() {
    if !require_root() {
        return;
    }
    let _x = exclusive();
    // Uniform in [10, 30] ms, as netem without a table: deviation 20/sqrt(12) = 10/sqrt(3) ms.
    // Pings 20 ms apart: a delay can never pass the one before it, so order-keeping does not
    // narrow the spread.
    let j = jitter_pings("delay 20ms 10ms", "3", 100, 0.02);
    let rtts = &j.rtts;
    assert!(
        sorted(rtts)[0] >= 10.0,
        "an RTT below the 10 ms minimum delay: {rtts:?}"
    );
    // The spread of the replies the host delivered on time: a reply held up by the host (see
    // jitter_pings) says nothing about the wire, and a range is decided by one extreme.
    let want_sd = 10.0 / 3f64.sqrt();
    let sd = mdev(&j.on_time);
    assert!(
        (want_sd * 0.8..=want_sd * 1.2).contains(&sd),
        "mdev {sd:.3} ms (ping's, all replies: {} ms), want {want_sd:.3} ± 20%: {rtts:?}",
        j.mdev
    );
    let on_time = sorted(&j.on_time);
    let spread = on_time[on_time.len() - 1] - on_time[0];
    assert!(
        (16.0..=24.0).contains(&spread),
        "RTT spread {spread:.3} ms, want 20 ms ± 20%: {rtts:?}"
    );
}

#[test]
#[ignore = "needs root"]
fn normal_jitter_has_the_configured_deviation() {
    if !require_root() {
        return;
    }
    let _x = exclusive();
    // Normal, mean 20 ms, deviation 10 ms. Pings 40 ms apart: order-keeping (a delay may not
    // pass the one before) narrows the spread only for the rare pair 40 ms apart in delay.
    let j = jitter_pings("delay 20ms 10ms distribution normal", "3", 150, 0.04);
    let rtts = &j.rtts;
    let sd = mdev(&j.on_time);
    assert!(
        (8.0..=12.0).contains(&sd),
        "mdev {sd:.3} ms of the on-time replies (ping's, all replies: {} ms), want 10 ms ± 20%: \
         {rtts:?}",
        j.mdev
    );
    let avg = mean(&j.on_time);
    assert!(
        (17.0..=23.0).contains(&avg),
        "mean RTT {avg:.3} ms, want about 20 ms: {rtts:?}"
    );
}

// ----------------------------------------------------------------------------------------------
// 4: rate
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn rate_limits_tcp_throughput() {
    if !require_root() {
        return;
    }
    let _x = exclusive();
    let ns = Netns::new();
    let mut tw = ns.up(&["--seed", "1", "--impair", "tun0: rate 10mbit"], As::Root);
    // A relay kept from the CPU reads late, and the link idles meanwhile (netem, in the kernel,
    // sees each packet at once): keep it on time, as for the delays.
    realtime(&ns, &mut tw);
    let mut server = ns.spawn_bg("exec iperf3 -s -1 -B 0.0.0.0 --forceflush");
    assert!(
        wait_until(READY_TIMEOUT, || server
            .stdout()
            .contains("Server listening")),
        "iperf3 server did not start: {}{}",
        server.stdout(),
        server.stderr()
    );
    let json = ns.sh_ok(&format!("iperf3 -c {B4} -t 3 -J"));
    let server_done = server.wait(EXIT_TIMEOUT);
    assert_eq!(server_done.code, Some(0), "iperf3 -s -1: {server_done}");
    // end.sum_received.bits_per_second: what the receiver got. Avoid a JSON crate: python.
    let py = script(
        &ns,
        "bps.py",
        "import json,sys\n\
         j = json.load(sys.stdin)\n\
         print(j['end']['sum_received']['bits_per_second'])\n\
         print('intervals (Mbit/s):', [round(i['sum']['bits_per_second'] / 1e6, 2) for i in \
         j['intervals']], 'received over', j['end']['sum_received']['seconds'], 's', \
         file=sys.stderr)",
    );
    let json_file = ns.dir().join("iperf3.json");
    fs::write(&json_file, &json).expect("write iperf3 json");
    let out = ns.sh(&format!("python3 {} < {}", q(p(&py)), q(p(&json_file))));
    let detail = String::from_utf8_lossy(&out.stderr).into_owned();
    let bps: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("iperf3 JSON: {e}: {detail}"));
    let mbps = bps / 1e6;
    eprintln!("rate 10mbit: iperf3 receiver {mbps:.3} Mbit/s; sender's {detail}");
    stop_clean(&ns, &mut tw);
    // 10 Mbit/s of IP packets carry 10 * 1448/1500 = 9.65 Mbit/s of TCP payload.
    assert!(
        (9.0..=10.5).contains(&mbps),
        "rate 10mbit: iperf3 receiver got {mbps:.3} Mbit/s, want 9.0..=10.5; sender's {detail}"
    );
}

// ----------------------------------------------------------------------------------------------
// 5: duplicate
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn duplicate_delivers_every_echo_twice() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let mut tw = ns.up(
        &["--seed", "1", "--impair", "tun0: duplicate 100%"],
        As::Root,
    );
    let echos_before = nstat(&ns, &["IcmpInEchos"])[0];
    let count = 5;
    let out = ns.sh(&format!("ping -4 -n -W 2 -c {count} -i 0.1 {B4}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "ping failed:\n{text}");
    // The receiving host saw every echo request twice.
    let handled = usr1_until(&mut tw, "both copies of every echo sent", |f, _| {
        f.leg.packets >= 2 * count
    });
    let echos_after = nstat(&ns, &["IcmpInEchos"])[0];
    assert_eq!(
        echos_after - echos_before,
        2 * count,
        "192.168.13.2 should have received each of the {count} echo requests twice; ping:\n{text}"
    );
    let dir = handled.0;
    assert_eq!(
        (dir.leg.packets, dir.imp.map(|i| i.duplicated)),
        (2 * count, Some(count)),
        "counters {dir:?}"
    );
    // ping shows a DUP! for every sequence number. It exits as soon as it has its last
    // (first) reply, so the last duplicate may come after it stopped listening.
    for seq in 1..=count {
        let replies = text
            .lines()
            .filter(|l| l.contains(&format!("icmp_seq={seq} ")))
            .count();
        let dups = text
            .lines()
            .filter(|l| l.contains(&format!("icmp_seq={seq} ")) && l.contains("(DUP!)"))
            .count();
        if seq < count {
            assert_eq!(
                (replies, dups),
                (2, 1),
                "icmp_seq={seq}: reply and DUP!:\n{text}"
            );
        } else {
            assert!(replies >= 1 && dups <= 1, "icmp_seq={seq}:\n{text}");
        }
    }
    stop_clean(&ns, &mut tw);
}

// ----------------------------------------------------------------------------------------------
// 6: corrupt
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn corruption_is_caught_by_checksums_and_marked_in_the_capture() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let dir = ns.dir_for(&MEMBER);
    let file = dir.join("corrupt.pcapng");
    let args = as_member(&[
        "--seed",
        "4",
        "--impair",
        "tun0: corrupt 100%",
        "--pcap",
        p(&file),
    ]);
    let mut tw = ns.up(&args, As::Root);
    let names = [
        "IcmpInCsumErrors",
        "UdpInCsumErrors",
        "IpExtInCsumErrors",
        "IpInHdrErrors",
    ];
    let before = nstat(&ns, &names);
    let rx = receiver(&ns, PORT);
    let (datagrams, pings) = (200u64, 10u64);
    send_numbered(&ns, B4, datagrams as u32, 0.0005, 128);
    let ping = ns.sh(&format!("ping -4 -n -q -W 0.5 -c {pings} -i 0.05 {B4}"));
    let ping_text = String::from_utf8_lossy(&ping.stdout).into_owned();
    let (f, _) = usr1_until(&mut tw, "every packet sent", |f, _| {
        f.leg.packets + f.leg.dropped >= datagrams + pings
    });
    let received = finish_receiver(&ns, rx, PORT);
    let after = nstat(&ns, &names);
    let rise: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let exited = stop_clean(&ns, &mut tw);
    eprintln!("corrupt: {names:?} rose by {rise:?}; {f:?}");

    let imp = f.imp.expect("impairment counters");
    assert_eq!(
        imp.corrupted,
        datagrams + pings,
        "corrupt 100%: every packet read from tun0 is corrupted: {f:?}"
    );
    // A flipped bit always breaks the Internet checksum: nothing gets through.
    assert!(
        received.is_empty(),
        "corrupted datagrams reached the application: {received:?}"
    );
    assert!(
        ping_text.contains(&format!("{pings} packets transmitted, 0 received")),
        "corrupted echo requests were answered:\n{ping_text}"
    );
    let report: Vec<String> = names
        .iter()
        .zip(&rise)
        .map(|(n, r)| format!("{n} +{r}"))
        .collect();
    // The receiver's checksum counters rose: the ICMP and UDP checksums catch flips past the IP
    // header, the IP header checksum (IpExtInCsumErrors, also counted in IpInHdrErrors) the
    // rest. A flip that makes the packet malformed in another way (a length, the version) is
    // counted elsewhere, so allow a few.
    let [icmp, udp, ip_csum, ip_hdr] = rise[..] else {
        unreachable!()
    };
    assert!(
        icmp >= 1 && udp >= datagrams / 2 && ip_csum >= 1 && ip_hdr >= ip_csum,
        "checksum counters should rise: {report:?}"
    );
    assert!(
        icmp + udp + ip_hdr >= (datagrams + pings) * 9 / 10
            && icmp + udp + ip_hdr <= datagrams + pings,
        "most corrupted packets should be counted as checksum or header errors: {report:?}"
    );

    // The capture marks every forward record: a comment naming the bit, and the CRC-error flag.
    let rows = tshark_fields(
        &ns,
        &file,
        "frame.interface_name == \"tun0\"",
        &["frame.comment", "frame.packet_flags_crc_error", "frame.len"],
    );
    assert_eq!(
        rows.len() as u64,
        datagrams + pings,
        "one record per packet read from tun0:\n{exited}"
    );
    for row in &rows {
        let (comment, crc, len) = (&row[0], &row[1], &row[2]);
        let len: usize = len.parse().expect("frame.len");
        // tunwire: delay 0us, corrupt byte B bit N
        let pos = comment
            .strip_prefix("tunwire: delay 0us, corrupt byte ")
            .and_then(|r| r.split_once(" bit "))
            .and_then(|(b, n)| Some((b.parse::<usize>().ok()?, n.parse::<u8>().ok()?)));
        assert!(
            pos.is_some_and(|(byte, bit)| byte < len && bit < 8),
            "record comment {comment:?} should name a byte of the {len}-byte packet and a bit"
        );
        assert_eq!(crc, "1", "epb CRC-error flag on {row:?}");
    }
    assert_eq!(
        tshark_count(&ns, &file, "frame.packet_flags_crc_error == 1"),
        rows.len(),
        "only the corrupted records carry the CRC-error flag"
    );
}

// ----------------------------------------------------------------------------------------------
// 7: the capture records every decision
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn capture_records_every_drop_and_delay_with_the_seed_in_the_header() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let dir = ns.dir_for(&MEMBER);
    let file = dir.join("loss.pcapng");
    let args = as_member(&[
        "--seed",
        "7",
        "--impair",
        "tun0: loss 20% delay 5ms",
        "--pcap",
        p(&file),
    ]);
    let mut tw = ns.up(&args, As::Root);
    let rx = receiver(&ns, PORT);
    let count = 300u64;
    send_numbered(&ns, B4, count as u32, 0.001, 64);
    usr1_until(&mut tw, "every datagram handled", |f, _| {
        let imp = f.imp.unwrap_or_default();
        f.leg.packets + f.leg.dropped + imp.lost + imp.queue_full >= count
    });
    let received: BTreeSet<u32> = finish_receiver(&ns, rx, PORT).into_iter().collect();
    let exited = stop_clean(&ns, &mut tw);
    let (fwd, _) = exit_counters(&exited);
    let imp = fwd.imp.expect("impairment counters");

    // Drops: as many records as the counters say, and exactly the datagrams that never came.
    let drops = tshark_fields(
        &ns,
        &file,
        "frame.comment contains \"tunwire: drop\"",
        &["frame.interface_name", "frame.comment", "udp.payload"],
    );
    assert_eq!(
        drops.len() as u64,
        imp.lost + imp.queue_full,
        "drop records vs the exit counters {imp:?}"
    );
    assert!(imp.lost > count / 10, "loss 20% lost only {}", imp.lost);
    let payload_seq = |hex: &str| -> u32 {
        // udp.payload "31:32:20:78:..." (colons removed below) -> "12 x..." -> 12
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex payload"))
            .collect();
        let text = String::from_utf8_lossy(&bytes);
        text.split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("payload {text:?}"))
    };
    let mut dropped = BTreeSet::new();
    for row in &drops {
        assert_eq!(row[0], "tun0", "only tun0's packets are impaired: {row:?}");
        assert_eq!(row[1], "tunwire: drop loss", "{row:?}");
        dropped.insert(payload_seq(&row[2].replace(':', "")));
    }
    let missing: BTreeSet<u32> = (1..=count as u32)
        .filter(|s| !received.contains(s))
        .collect();
    assert_eq!(
        dropped, missing,
        "the datagrams recorded as dropped should be exactly those that never arrived"
    );

    // Every other forward record says it was delayed by the configured 5 ms: no jitter, and
    // datagrams 1 ms apart never wait for one another, so the delay is exactly 5000us.
    let sent = tshark_fields(
        &ns,
        &file,
        "frame.interface_name == \"tun0\" && !(frame.comment contains \"tunwire: drop\")",
        &["frame.comment", "frame.packet_id"],
    );
    assert_eq!(
        sent.len() as u64,
        fwd.leg.packets + fwd.leg.dropped,
        "one record per sent copy: {fwd:?}"
    );
    for row in &sent {
        assert_eq!(row[0], "tunwire: delay 5000us", "{row:?}");
    }
    // Each packet read has exactly one record, by packet id 1..=count.
    let mut ids: Vec<u64> = tshark_fields(
        &ns,
        &file,
        "frame.interface_name == \"tun0\"",
        &["frame.packet_id"],
    )
    .iter()
    .map(|r| r[0].parse().expect("packet id"))
    .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (1..=count).collect::<Vec<_>>(),
        "packet ids of tun0's records"
    );
    // Nothing went the other way: UDP has no replies, and the receiver was listening.
    assert_eq!(
        tshark_count(&ns, &file, "frame.interface_name == \"tun1\""),
        0
    );

    // The section header names the seed and the impairment of both directions.
    let info = ns.sh_ok(&format!("capinfos -k {}", q(p(&file))));
    let want = format!("tunwire: seed 7; {FWD}: delay 5ms loss 20%; {REV}: none");
    assert!(
        info.contains(&format!("Capture comment:     {want}")),
        "capinfos -k should show {want:?}:\n{info}"
    );
    let bytes = fs::read(&file).expect("read capture");
    assert_eq!(shb_comments(&bytes), vec![Some(want)], "one section");
}

// ----------------------------------------------------------------------------------------------
// 8: bad words
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn bad_impairment_words_and_seeds_exit_2_changing_nothing() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let before = ns.state();
    let cases: [(&[&str], &str); 7] = [
        (&["--impair", "delay 20xs"], "'20xs'"),
        (&["--impair", "loss 120%"], "'120%'"),
        (&["--impair", "reorder 10%"], "'reorder'"),
        (&["--impair", "lose 1%"], "'lose'"),
        (
            &["--impair", "tun9: delay 1ms", DEFAULT[0], DEFAULT[1]],
            "'tun9'",
        ),
        (&["--seed", "-1"], "'-1'"),
        (&["--seed", "x"], "'x'"),
    ];
    for (args, quoted) in cases {
        let e = ns.run_tunwire(args, As::Root);
        assert_eq!(e.code, Some(2), "{args:?} should exit 2: {e}");
        let errors: Vec<&str> = e.stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: one error line: {e}");
        assert!(
            errors[0].contains(quoted) && errors[0].contains(args[0]),
            "{args:?}: the error should quote {quoted} and name {}: {e}",
            args[0]
        );
        assert!(
            !e.stderr.contains("ready:") && !e.stderr.contains("start allowed"),
            "{args:?}: nothing may start: {e}"
        );
        assert_eq!(ns.state(), before, "{args:?} changed the state");
    }
}

// ----------------------------------------------------------------------------------------------
// 9: memory stays bounded
// ----------------------------------------------------------------------------------------------

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
#[ignore = "needs root"]
fn delay_queue_memory_stays_bounded_under_a_flood() {
    if !require_root() {
        return;
    }
    let _x = exclusive();
    let ns = Netns::new();
    let mut tw = ns.up(&["--seed", "1", "--impair", "tun0: delay 1s"], As::Root);
    let (sup, relay) = (tw.pid(), tw.relay_pid());
    let _sink = sink(&ns, PORT);
    // 64-byte datagrams as fast as Python sends them, for 3 s. (iperf3 -u would do too, but its
    // TCP control connection crosses the 1 s delay and the full queue, which takes it ~9 s.)
    let py = script(&ns, "flood.py", FLOOD_PY);
    let mut flood = ns.spawn_bg(&format!("exec python3 -u {} {B4} {PORT} 3 64 0", q(p(&py))));
    flood.wait_stderr("flooding", READY_TIMEOUT);
    let mut peak = 0;
    let mut samples = 0;
    // The flood prints its count when it is done.
    wait_until(SETTLE, || {
        let (Some(a), Some(b)) = (vm_rss_kib(sup), vm_rss_kib(relay)) else {
            return true;
        };
        peak = peak.max(a + b);
        samples += 1;
        !flood.stdout().is_empty()
    });
    let done = flood.wait(EXIT_TIMEOUT);
    assert_eq!(done.code, Some(0), "flood: {done}");
    let sent: u64 = done.stdout.trim().parse().expect("flood count");
    assert!(
        alive(relay) && !tw.has_exited(),
        "the wire died under the flood:\n{}",
        tw.stderr()
    );
    let exited = stop_clean(&ns, &mut tw);
    let (fwd, _) = exit_counters(&exited);
    let imp = fwd.imp.expect("impairment counters");
    eprintln!("flood: {sent} datagrams, peak RSS {peak} KiB over {samples} samples, {fwd:?}");
    assert!(samples >= 10, "too few RSS samples ({samples})");
    assert!(
        peak < 64 * 1024,
        "supervisor + relay RSS peaked at {peak} KiB, want < 64 MiB"
    );
    assert!(
        imp.queue_full > 0,
        "a 1 s delay under a flood must fill the queue: {fwd:?}"
    );
    // The queue holds at most `limit` (the default) packets, which leave after 1 s: over the
    // flood's 3 s (plus the drain at exit) at most about 5 x limit can have been sent.
    let limit = u64::from(tunwire::config::impair::DEFAULT_LIMIT);
    assert!(
        fwd.leg.packets + fwd.leg.dropped <= 6 * limit,
        "more packets left than a {limit}-packet queue with a 1 s delay lets through: {fwd:?}"
    );
}

// ----------------------------------------------------------------------------------------------
// 10: counters per cause
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn counters_per_cause_on_sigusr1_and_at_exit() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let mut tw = ns.up(
        &[
            "--seed",
            "3",
            "--impair",
            "tun0: delay 2ms loss 25% duplicate 20% corrupt 10% reorder 10%",
        ],
        As::Root,
    );
    let _sink = sink(&ns, PORT);
    let count = 300u64;
    send_numbered(&ns, B4, count as u32, 0.001, 64);
    // Every copy queued was sent: copies with a delay plus those reorder sent at once.
    let (f, r) = usr1_until(&mut tw, "every copy sent", |f, _| {
        let imp = f.imp.unwrap_or_default();
        f.leg.packets + f.leg.dropped >= count - imp.lost - imp.queue_full + imp.duplicated
    });
    let imp = f.imp.expect("SIGUSR1: tun0 -> tun1 impairment line");
    assert_eq!(
        f.leg.packets + f.leg.dropped,
        imp.delayed + imp.reordered,
        "every sent copy was either delayed or reordered: {f:?}"
    );
    assert_eq!(imp.queue_full, 0, "{f:?}");
    let kept = count - imp.lost;
    assert!(
        (count * 15 / 100..=count * 35 / 100).contains(&imp.lost),
        "loss 25% of {count}: {f:?}"
    );
    assert!(
        (kept / 10..=kept * 3 / 10).contains(&imp.duplicated),
        "duplicate 20% of {kept}: {f:?}"
    );
    assert!(
        (1..=kept * 2 / 10).contains(&imp.corrupted),
        "corrupt 10% of {kept}: {f:?}"
    );
    assert!(
        (1..=kept * 2 / 10).contains(&imp.reordered),
        "reorder 10% of {kept}: {f:?}"
    );
    assert_eq!(
        (r.leg.packets, r.imp),
        (0, None),
        "the reverse direction: nothing sent, no engine: {r:?}"
    );
    // At exit: the same numbers, as nothing moved since.
    let exited = stop_clean(&ns, &mut tw);
    assert_eq!(
        exit_counters(&exited),
        (f, r),
        "exit counters vs SIGUSR1:\n{exited}"
    );
}

// ----------------------------------------------------------------------------------------------
// 11: SIGHUP re-reads the configuration
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn sighup_rereads_the_config_and_starts_a_new_capture_section() {
    if !require_root() {
        return;
    }
    let _x = exclusive();
    let ns = Netns::new();
    let conf = ns.dir().join("wire.conf");
    let conf_s = p(&conf).to_owned();
    ns.write_file(&conf_s, "impair tun0: delay 50ms\nseed 1\n", 0o644);
    // The capture goes to stdout, which is a file here: a stream gets each new section inline.
    let args = as_member(&["--config", &conf_s, "--pcap", "-"]);
    let mut tw = ns.up(&args, As::Root);
    realtime(&ns, &mut tw);
    assert!(
        tw.stderr().contains(", seed 1; tun0: delay 50ms"),
        "ready line with the file's seed and impairment:\n{}",
        tw.stderr()
    );
    // RTT ~ the delay: never below it, the median within 5 ms of it. (Single replies can be
    // late on a busy machine; the capture checks below see every packet's planned delay.)
    let rtt_near = |rtts: &[f64], delay: f64, what: &str| {
        let s = sorted(rtts);
        assert!(
            s[0] >= delay && s[s.len() / 2] < delay + 5.0,
            "{what}: RTTs should be {delay} ms plus well under 5: {rtts:?}"
        );
    };
    let before = ping_rtts(&ns, 5, 0.05).rtts();
    rtt_near(&before, 50.0, "delay 50ms from the file");

    ns.write_file(&conf_s, "impair tun0: delay 10ms\nseed 2\n", 0o644);
    tw.signal("HUP");
    if let Err(e) = tw.wait_stderr("impairment changed", READY_TIMEOUT) {
        panic!("no `impairment changed` after SIGHUP: {e}");
    }
    let line = tw
        .stderr()
        .lines()
        .find(|l| l.contains("impairment changed"))
        .map(str::to_owned)
        .expect("line");
    assert!(
        line.contains(&format!("seed 2; {FWD}: delay 10ms; {REV}: none")),
        "the log line should show the new seed and impairment: {line}"
    );
    let after = ping_rtts(&ns, 5, 0.05).rtts();
    rtt_near(&after, 10.0, "after SIGHUP to delay 10ms");
    // At once: the very first echo after the reload is not held for 50 ms.
    assert!(
        after[0] < 30.0,
        "the first RTT after SIGHUP still looks like the old 50 ms delay: {after:?}"
    );
    // The same file again: nothing changes, no new section, the streams go on.
    tw.signal("HUP");
    if let Err(e) = tw.wait_stderr("the impairment and the seed are unchanged", READY_TIMEOUT) {
        panic!("a SIGHUP with an unchanged file should say so: {e}");
    }
    assert_eq!(
        tw.stderr().matches("impairment changed").count(),
        1,
        "an unchanged file is no change:\n{}",
        tw.stderr()
    );
    let exited = stop_clean(&ns, &mut tw);

    let cap = tw.stdout_path().to_path_buf();
    let bytes = fs::read(&cap).expect("read the stdout capture");
    assert_eq!(
        shb_comments(&bytes),
        vec![
            Some(format!("tunwire: seed 1; {FWD}: delay 50ms; {REV}: none")),
            Some(format!("tunwire: seed 2; {FWD}: delay 10ms; {REV}: none")),
        ],
        "two sections, the second with the new seed:\n{exited}"
    );
    let rows = tshark_fields(
        &ns,
        &cap,
        "icmp.type == 8",
        &["frame.section_number", "frame.comment"],
    );
    let by_section = |s: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| r[0] == s)
            .map(|r| r[1].clone())
            .collect()
    };
    assert_eq!(
        by_section("1"),
        vec!["tunwire: delay 50000us"; 5],
        "{rows:?}"
    );
    assert_eq!(
        by_section("2"),
        vec!["tunwire: delay 10000us"; 5],
        "{rows:?}"
    );
}

#[test]
#[ignore = "needs root"]
fn sighup_cannot_add_impairment_to_a_wire_with_offload_on() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let conf = ns.dir().join("wire.conf");
    let conf_s = p(&conf).to_owned();
    ns.write_file(&conf_s, "mtu 1500\n", 0o644);
    let args = as_member(&["--config", &conf_s]);
    let mut tw = ns.up(&args, As::Root);
    let link = ns.sh_ok("ip -d link show dev tun0");
    assert!(link.contains("vnet_hdr on"), "offload is on:\n{link}");
    ns.write_file(&conf_s, "mtu 1500\nimpair delay 200ms\n", 0o644);
    tw.signal("HUP");
    if let Err(e) = tw.wait_stderr("started with offload on", READY_TIMEOUT) {
        panic!("SIGHUP adding impairment to an offload wire should be refused: {e}");
    }
    assert!(
        !tw.stderr().contains("impairment changed"),
        "{}",
        tw.stderr()
    );
    // Still unimpaired: no echo waits 2 x 200 ms.
    let rtts = ping_rtts(&ns, 3, 0.2).rtts();
    assert!(rtts.iter().all(|&r| r < 200.0), "{rtts:?}");
    stop_clean(&ns, &mut tw);
}

// ----------------------------------------------------------------------------------------------
// 12: only the users' packets cross the wire
// ----------------------------------------------------------------------------------------------

/// Starts an impaired wire with a capture on `sides`, checks it is idle for 3 s (the kernel's
/// router solicitations and MLD reports would come within about a second of link-up), then that
/// two pings are all the capture holds.
fn assert_idle_wire_is_silent(sides: [&str; 2], v6: bool) {
    let ns = Netns::new();
    let dir = ns.dir_for(&MEMBER);
    let file = dir.join("idle.pcapng");
    let args = as_member(&[
        "--seed",
        "1",
        "--impair",
        "delay 1ms",
        "--pcap",
        p(&file),
        sides[0],
        sides[1],
    ]);
    let mut tw = ns.up(&args, As::Root);
    for dev in ["tun0", "tun1"] {
        let link = ns.sh_ok(&format!("ip -d link show dev {dev}"));
        assert!(
            link.contains("addrgenmode none"),
            "{dev} should not generate IPv6 addresses:\n{link}"
        );
        let addrs = ns.sh_ok(&format!("ip -6 addr show dev {dev}"));
        assert!(
            !addrs.contains("scope link") && !addrs.contains("fe80"),
            "{dev} has an IPv6 link-local address:\n{addrs}"
        );
        if v6 {
            let mine = if dev == "tun0" { A6 } else { B6 };
            assert_eq!(
                addrs.matches("inet6 ").count(),
                1,
                "{dev}: only {mine}:\n{addrs}"
            );
            assert!(addrs.contains(&format!("inet6 {mine} ")), "{dev}:\n{addrs}");
        } else {
            assert!(
                addrs.trim().is_empty(),
                "{dev}: IPv4-only, no IPv6 at all:\n{addrs}"
            );
        }
    }
    // An observation window: silence cannot be waited for.
    std::thread::sleep(Duration::from_secs(3));
    let captured_before = capture_recorded(&tw.stderr()).len();
    let (f, r) = usr1(&mut tw);
    assert_eq!(
        (
            f.leg.packets,
            r.leg.packets,
            f.imp.map(|i| i.delayed),
            r.imp.map(|i| i.delayed)
        ),
        (0, 0, Some(0), Some(0)),
        "an idle wire carried packets: {f:?} {r:?}"
    );
    // The capture line comes last in the dump.
    let mut recorded = Vec::new();
    wait_until(SETTLE, || {
        recorded = capture_recorded(&tw.stderr());
        recorded.len() > captured_before
    });
    assert_eq!(
        recorded.last(),
        Some(&0),
        "the idle capture should be empty:\n{}",
        tw.stderr()
    );
    ns.assert_ping(B4);
    if v6 {
        ns.assert_ping(B6);
    }
    stop_clean(&ns, &mut tw);
    let pings = if v6 { 12 } else { 6 };
    assert_eq!(
        tshark_count(&ns, &file, ""),
        pings,
        "the capture should hold the pings and nothing else: {:?}",
        tshark_fields(&ns, &file, "", &["frame.interface_name", "_ws.col.Info"])
    );
}

#[test]
#[ignore = "needs root"]
fn ipv4_wire_carries_nothing_when_idle() {
    if !require_root() {
        return;
    }
    assert_idle_wire_is_silent(DEFAULT, false);
}

#[test]
#[ignore = "needs root"]
fn dual_stack_wire_carries_nothing_when_idle() {
    if !require_root() {
        return;
    }
    assert_idle_wire_is_silent(DUAL, true);
}

// ----------------------------------------------------------------------------------------------
// 13: offload
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn impairment_turns_offload_off() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let vnet = |ns: &Netns| -> String {
        let link = ns.sh_ok("ip -d link show dev tun0");
        link.split_whitespace()
            .skip_while(|w| *w != "vnet_hdr")
            .nth(1)
            .unwrap_or_else(|| panic!("no vnet_hdr in:\n{link}"))
            .to_owned()
    };
    let note = "offload is off";

    let mut tw = ns.up(&["--offload", "on"], As::Root);
    assert_eq!(vnet(&ns), "on", "--offload on without impairment");
    ns.assert_ping(B4);
    let e = stop_clean(&ns, &mut tw);
    assert!(!e.stderr.contains(note), "{e}");

    let mut tw = ns.up(&["--offload", "on", "--impair", "delay 1ms"], As::Root);
    assert_eq!(vnet(&ns), "off", "--offload on with impairment");
    ns.assert_ping(B4);
    let e = stop_clean(&ns, &mut tw);
    let lines: Vec<&str> = e.stderr.lines().filter(|l| l.contains(note)).collect();
    assert_eq!(lines.len(), 1, "one line saying offload is off: {e}");
    assert!(
        lines[0].contains("impairment acts on wire-size packets"),
        "the line should say why: {}",
        lines[0]
    );

    // The default (offload on) with impairment: off as well, without a note nobody asked for.
    let mut tw = ns.up(&["--impair", "delay 1ms"], As::Root);
    assert_eq!(vnet(&ns), "off", "default offload with impairment");
    let e = stop_clean(&ns, &mut tw);
    assert!(!e.stderr.contains(note), "{e}");
}

// ----------------------------------------------------------------------------------------------
// 14: reproducible delays
// ----------------------------------------------------------------------------------------------

/// The forward records' comments, in packet order, of one run of 20 datagrams 40 ms apart.
fn delay_comments(ns: &Netns, run: usize) -> Vec<String> {
    let dir = ns.dir_for(&MEMBER);
    let file = dir.join(format!("delays{run}.pcapng"));
    let args = as_member(&[
        "--seed",
        "5",
        "--impair",
        "tun0: delay 10ms 5ms",
        "--pcap",
        p(&file),
    ]);
    let mut tw = ns.up(&args, As::Root);
    // A relay kept from the CPU for over 30 ms would read two datagrams at once, and the later
    // one could then have to wait for the earlier: keep it on time.
    realtime(ns, &mut tw);
    let _sink = sink(ns, PORT);
    // 40 ms apart: a delay of 5..15 ms never has to wait for the datagram before it, so each
    // comment is the drawn delay itself, not a wait that depends on timing.
    send_numbered(ns, B4, 20, 0.04, 64);
    usr1_until(&mut tw, "all 20 datagrams sent", |f, _| f.leg.packets >= 20);
    stop_clean(ns, &mut tw);
    let mut rows = tshark_fields(
        ns,
        &file,
        "frame.interface_name == \"tun0\"",
        &["frame.packet_id", "frame.comment"],
    );
    rows.sort_by_key(|r| r[0].parse::<u64>().expect("packet id"));
    rows.into_iter().map(|mut r| r.remove(1)).collect()
}

#[test]
#[ignore = "needs root"]
fn seeded_jitter_gives_the_same_delays_in_every_run() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let first = delay_comments(&ns, 1);
    let second = delay_comments(&ns, 2);
    assert_eq!(first.len(), 20, "{first:?}");
    let delays: Vec<u64> = first
        .iter()
        .map(|c| {
            c.strip_prefix("tunwire: delay ")
                .and_then(|r| r.strip_suffix("us"))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("comment {c:?} should be `tunwire: delay NNNus`"))
        })
        .collect();
    assert!(
        delays.iter().all(|d| (5000..=15000).contains(d)),
        "delay 10ms 5ms: every delay in 5..15 ms: {delays:?}"
    );
    let distinct: BTreeSet<u64> = delays.iter().copied().collect();
    assert!(
        distinct.len() >= 10,
        "the jitter should vary the delays: {delays:?}"
    );
    assert_eq!(
        first, second,
        "--seed 5 must give the same delays in both runs"
    );
}
