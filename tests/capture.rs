// SPDX-License-Identifier: MIT OR Apache-2.0
//! Integration tests for `--pcap` (issue "Capture both directions for Wireshark"): the real
//! binary in a private network + mount namespace per test (see tests/common), traffic only to
//! 192.168.13.x inside it, and the files checked with the real readers (tshark, capinfos).
//!
//! The relay opens the capture after dropping root, so every test captures into a directory
//! owned by the test user `twmember` and starts the instance as root with `--user twmember`.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// `--user twmember`: the relay writes the capture as this account.
const AS_MEMBER: [&str; 2] = ["--user", MEMBER.name];

// ----------------------------------------------------------------------------------------------
// Private helpers
// ----------------------------------------------------------------------------------------------

/// Start (as root, `--user twmember`) and wait until ready; panics with the output otherwise.
fn up_member(ns: &Netns, args: &[&str]) -> Instance {
    let mut all: Vec<&str> = AS_MEMBER.to_vec();
    all.extend_from_slice(args);
    ns.up(&all, As::Root)
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// Every frame's `frame.time_epoch` lies in [from - 60 s, to + 60 s].
fn assert_times_near(ns: &Netns, file: &Path, from: f64, to: f64) {
    let rows = tshark_fields(ns, file, "", &["frame.time_epoch"]);
    assert!(!rows.is_empty(), "{}: no frames", file.display());
    for row in rows {
        let t: f64 = row[0]
            .parse()
            .unwrap_or_else(|e| panic!("frame.time_epoch {:?}: {e}", row[0]));
        assert!(
            t >= from - 60.0 && t <= to + 60.0,
            "{}: timestamp {t} not within a minute of the test ({from}..{to}); a wrong \
             if_tsresol makes it 1000x off",
            file.display()
        );
    }
}

/// (N, M) from the relay's last `capture: N packets recorded, M lost` line.
fn capture_counters(stderr: &str) -> Option<(u64, u64)> {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains("capture:") && l.contains("recorded"))?;
    let rest = line.split_once("capture:")?.1;
    let mut words = rest.split_whitespace();
    let recorded = words.next()?.parse().ok()?;
    let lost = rest
        .split(',')
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((recorded, lost))
}

/// Lines of `text` that contain every needle.
fn lines_with<'a>(text: &'a str, needles: &[&str]) -> Vec<&'a str> {
    text.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .collect()
}

/// The namespace's TCP RetransSegs (from /proc/net/snmp): the kernel's own count of segments it
/// sent again. It tells real retransmissions from ones a capture invents.
fn kernel_retrans_segs(ns: &Netns) -> u64 {
    let snmp = ns.sh_ok("cat /proc/net/snmp");
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(keys), Some(values)) = (tcp.next(), tcp.next()) else {
        panic!("no Tcp lines in /proc/net/snmp:\n{snmp}");
    };
    keys.split_whitespace()
        .zip(values.split_whitespace())
        .find(|(k, _)| *k == "RetransSegs")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no RetransSegs in /proc/net/snmp:\n{snmp}"))
}

/// curl http://192.168.13.2:PORT/NAME to `out` across the wire; returns the sha256 of what
/// arrived (asserts curl succeeded).
fn curl_sha(ns: &Netns, name: &str, out: &Path) -> String {
    ns.sh_ok(&format!(
        "curl -sS --fail --max-time 120 -o {0} http://{B4}:{HTTP_PORT}/{name} && sha256sum < {0}",
        q(p(out))
    ))
    .split_whitespace()
    .next()
    .expect("sha256sum output")
    .to_owned()
}

// ----------------------------------------------------------------------------------------------
// 1 + 3: pcapng, per interface and direction, each packet once, wall-clock timestamps
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn pcapng_records_each_direction_once_on_its_interface() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    // No IPv6 on the new TUNs: no router solicitations, so the pings are the only traffic and
    // nothing but the idle flush can push their records to the file.
    ns.sh_ok("sysctl -qw net.ipv6.conf.default.disable_ipv6=1");
    let dir = member_dir(&ns, "cap");
    let file = dir.join("cap.pcapng");
    let t0 = now_secs();
    let mut tw = up_member(&ns, &["--pcap", p(&file)]);
    ping_ok(&ns, 5, "-i 0.2");
    // Buffered records reach the file while it runs, with no further traffic (the idle flush):
    // a reader such as `tail -f | wireshark` sees them without stopping the instance.
    let mut running = 0;
    let flushed = wait_until(READY_TIMEOUT, || {
        // Not tshark_fields: a read racing a write may see a torn last record; retry then.
        let out = ns.sh(&format!("tshark -n -r {} -Y icmp 2>/dev/null", q(p(&file))));
        running = String::from_utf8_lossy(&out.stdout).lines().count();
        out.status.success() && running == 10
    });
    assert!(
        flushed,
        "while running, the file shows {running} of 10 ICMP frames; stderr:\n{}",
        tw.stderr()
    );
    let exited = stop_clean(&ns, &mut tw);
    let t1 = now_secs();

    let rows = tshark_fields(
        &ns,
        &file,
        "icmp",
        &[
            "frame.interface_name",
            "frame.packet_flags_direction",
            "icmp.type",
            "icmp.seq",
        ],
    );
    let mut requests = Vec::new();
    let mut replies = Vec::new();
    for row in &rows {
        let (iface, dir_flag, kind, seq) = (&row[0], &row[1], &row[2], &row[3]);
        // epb_flags direction 2 = outbound: the host sent it on that TUN, the relay read it.
        assert_eq!(
            u32::from_str_radix(dir_flag.trim_start_matches("0x"), 16).ok(),
            Some(2),
            "direction flag of {row:?} should be 2 (outbound); all: {rows:?}"
        );
        match (iface.as_str(), kind.as_str()) {
            ("tun0", "8") => requests.push(seq.clone()),
            ("tun1", "0") => replies.push(seq.clone()),
            _ => panic!("unexpected ICMP frame {row:?}: requests belong on tun0, replies on tun1; all: {rows:?}"),
        }
    }
    assert_eq!(
        tshark_count(&ns, &file, ""),
        10,
        "only the 10 ICMP packets crossed the wire, each recorded once"
    );
    let seqs: Vec<String> = (1..=5).map(|n| n.to_string()).collect();
    assert_eq!(
        requests, seqs,
        "echo requests on tun0, each once; all: {rows:?}"
    );
    assert_eq!(
        replies, seqs,
        "echo replies on tun1, each once; all: {rows:?}"
    );

    assert_interfaces_described(&ns, &file);

    // 3: timestamps are wall clock (nanosecond resolution declared correctly).
    assert_times_near(&ns, &file, t0, t1);

    // Default umask 022 of the test: 0644, owned by the relay's user.
    let meta = fs::metadata(&file).expect("stat capture");
    assert_eq!(meta.mode() & 0o7777, 0o644, "mode of {}", file.display());
    assert_eq!(meta.uid(), MEMBER.uid, "owner of {}", file.display());

    // The exit counters agree with the file: nothing lost.
    let (recorded, lost) = capture_counters(&exited.stderr)
        .unwrap_or_else(|| panic!("no `capture: N packets recorded, M lost` line:\n{exited}"));
    assert_eq!(lost, 0, "{exited}");
    assert_eq!(
        recorded as usize,
        tshark_count(&ns, &file, ""),
        "recorded counter vs frames in the file:\n{exited}"
    );
}

// ----------------------------------------------------------------------------------------------
// Classic pcap
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn classic_pcap_is_raw_ip_without_interfaces() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let dir = member_dir(&ns, "cap");
    let file = dir.join("cap.pcap");
    let t0 = now_secs();
    let mut tw = up_member(&ns, &["--pcap", p(&file), "--pcap-format", "pcap"]);
    ping_ok(&ns, 5, "-i 0.2");
    stop_clean(&ns, &mut tw);
    let t1 = now_secs();

    let info = ns.sh_ok(&format!("capinfos -t -E {}", q(p(&file))));
    assert!(
        info.contains("Raw IP"),
        "encapsulation should be Raw IP:\n{info}"
    );
    assert!(
        info.contains("pcap") && !info.contains("pcapng"),
        "file type should be classic pcap:\n{info}"
    );
    let head = fs::read(&file).expect("read capture");
    assert!(head.len() >= 24, "pcap file shorter than its header");
    // Nanosecond magic 0xa1b23c4d in either byte order.
    let magic = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    assert!(
        magic == 0xa1b2_3c4d || magic == 0x4d3c_b2a1,
        "not a nanosecond pcap file: magic {magic:#x}"
    );

    let rows = tshark_fields(
        &ns,
        &file,
        "icmp",
        &[
            "frame.interface_name",
            "frame.packet_flags_direction",
            "icmp.type",
        ],
    );
    assert_eq!(rows.len(), 10, "5 requests + 5 replies: {rows:?}");
    for row in &rows {
        assert!(
            row[0].is_empty() && row[1].is_empty(),
            "classic pcap has no interface names or direction flags: {row:?}"
        );
    }
    assert_eq!(rows.iter().filter(|r| r[2] == "8").count(), 5, "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r[2] == "0").count(), 5, "{rows:?}");
    assert_times_near(&ns, &file, t0, t1);
}

// ----------------------------------------------------------------------------------------------
// 2: an HTTP transfer reassembles, with no retransmissions that were not real
// ----------------------------------------------------------------------------------------------

fn http_transfer_is_clean(offload: &str) {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let www = ns.dir().join("www");
    fs::create_dir(&www).expect("create www");
    let sha = random_file(&ns, &www.join("file.bin"), 1 << 20);
    let dir = member_dir(&ns, "cap");
    let file = dir.join("http.pcapng");
    let mut tw = up_member(&ns, &["--pcap", p(&file), "--offload", offload]);
    let _server = http_server(&ns, &www);
    let retrans_before = kernel_retrans_segs(&ns);
    let got = curl_sha(&ns, "file.bin", &ns.dir().join("download.bin"));
    assert_eq!(got, sha, "the transfer across the wire was corrupted");
    let real_retrans = kernel_retrans_segs(&ns) - retrans_before;
    let exited = stop_clean(&ns, &mut tw);

    let tcp = tshark_count(&ns, &file, &format!("tcp.port == {HTTP_PORT}"));
    assert!(tcp > 10, "too few TCP frames captured ({tcp}):\n{exited}");
    let flagged = tshark_fields(
        &ns,
        &file,
        "tcp.analysis.retransmission || tcp.analysis.fast_retransmission || \
         tcp.analysis.spurious_retransmission",
        &["frame.number", "frame.interface_name", "_ws.expert.message"],
    );
    // Every retransmission tshark sees must be one the kernel really sent (a packet recorded
    // twice, or on the wrong side, shows up as a retransmission that never happened).
    assert!(
        flagged.len() as u64 <= real_retrans,
        "--offload {offload}: tshark flags {} retransmissions, the kernel sent {real_retrans}: \
         {flagged:?}\n{exited}",
        flagged.len()
    );
    if real_retrans == 0 {
        // A lossless transfer: no analysis flag at all.
        let bad = tshark_fields(
            &ns,
            &file,
            "tcp.analysis.retransmission || tcp.analysis.fast_retransmission || \
             tcp.analysis.spurious_retransmission || tcp.analysis.duplicate_ack || \
             tcp.analysis.out_of_order || tcp.analysis.lost_segment || \
             tcp.analysis.ack_lost_segment",
            &["frame.number", "frame.interface_name", "_ws.expert.message"],
        );
        assert!(
            bad.is_empty(),
            "--offload {offload}: tshark flags frames of a clean transfer: {bad:?}"
        );
    } else {
        eprintln!(
            "note: --offload {offload}: the kernel retransmitted {real_retrans} segments (real \
             loss under load); only checked that tshark flags no more than that"
        );
    }
    let responses = tshark_fields(
        &ns,
        &file,
        "http.response",
        &[
            "http.response.code",
            "http.content_length",
            "frame.interface_name",
        ],
    );
    assert_eq!(
        responses,
        vec![vec![
            "200".to_owned(),
            (1u32 << 20).to_string(),
            "tun1".to_owned()
        ]],
        "--offload {offload}: one reassembled HTTP 200 response of 1 MiB, sent from the server \
         side (tun1)"
    );
    let requests = tshark_fields(
        &ns,
        &file,
        "http.request",
        &["http.request.uri", "frame.interface_name"],
    );
    assert_eq!(
        requests,
        vec![vec!["/file.bin".to_owned(), "tun0".to_owned()]],
        "--offload {offload}: one GET from the client side (tun0)"
    );
    // The reassembled stream holds the whole body: follow,tcp,raw prints the server's bytes
    // as hex (2 characters per byte), indented by a tab.
    let follow = ns.sh_ok(&format!(
        "tshark -n -r {} -q -z follow,tcp,raw,0 2>/dev/null",
        q(p(&file))
    ));
    let server_hex: usize = follow
        .lines()
        .filter(|l| l.starts_with('\t'))
        .map(|l| l.trim().len())
        .sum();
    assert!(
        server_hex / 2 > 1 << 20,
        "--offload {offload}: follow,tcp shows {} server bytes, want > 1 MiB",
        server_hex / 2
    );
}

#[test]
#[ignore = "needs root"]
fn http_transfer_reassembles_without_spurious_flags_offload_on() {
    http_transfer_is_clean("on");
}

#[test]
#[ignore = "needs root"]
fn http_transfer_reassembles_without_spurious_flags_offload_off() {
    http_transfer_is_clean("off");
}

// ----------------------------------------------------------------------------------------------
// 4: owner and mode
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn file_is_owned_by_the_target_user_and_honours_the_umask() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let dir = member_dir(&ns, "cap");
    let file = dir.join("owned.pcapng");
    let mut args: Vec<&str> = AS_MEMBER.to_vec();
    args.extend(["--pcap", p(&file)]);
    let mut tw = ns.start(ns.tunwire_script(r#"umask 027 && exec "$0" "$@""#, &args));
    if let Err(e) = tw.wait_ready() {
        panic!("tunwire with umask 027 did not become ready: {e}");
    }
    ping_ok(&ns, 2, "-i 0.2");
    stop_clean(&ns, &mut tw);
    let meta = fs::metadata(&file).expect("stat capture");
    assert_eq!(
        (meta.uid(), meta.gid()),
        (MEMBER.uid, MEMBER.gid),
        "{} should belong to twmember, not root",
        file.display()
    );
    assert_eq!(
        meta.mode() & 0o7777,
        0o640,
        "umask 027 should give 0640, got {:o}",
        meta.mode() & 0o7777
    );
    assert_eq!(tshark_count(&ns, &file, "icmp"), 4);
}

// ----------------------------------------------------------------------------------------------
// 5: live reading from stdout; the reader going away does not hurt the wire
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn live_reader_sees_packets_and_its_exit_does_not_stop_the_wire() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let fifo = ns.dir().join("live.fifo");
    ns.sh_ok(&format!("mkfifo -m 0600 {}", q(p(&fifo))));
    // The reader first: opening the FIFO for writing blocks until it is open for reading.
    let mut reader = ns.spawn_bg(&format!(
        "exec tshark -n -l -i - -c 4 -T fields -e frame.interface_name -e icmp.type < {}",
        q(p(&fifo))
    ));
    let mut args: Vec<&str> = AS_MEMBER.to_vec();
    args.extend(["--pcap", "-"]);
    let script = format!(r#"exec "$0" "$@" > {}"#, q(p(&fifo)));
    let mut tw = ns.start(ns.tunwire_script(&script, &args));
    if let Err(e) = tw.wait_ready() {
        panic!(
            "tunwire --pcap - did not become ready: {e}\nreader: {}",
            reader.stderr()
        );
    }
    let relay = tw.relay_pid();
    ping_ok(&ns, 5, "-i 0.2");
    let read = reader.wait(EXIT_TIMEOUT);
    assert_eq!(read.code, Some(0), "tshark -c 4 should exit 0: {read}");
    let frames: Vec<&str> = read.stdout.lines().collect();
    assert_eq!(frames.len(), 4, "tshark -c 4 printed: {read}");
    assert!(
        frames
            .iter()
            .any(|l| l.starts_with("tun0\t8") || l.starts_with("tun1\t0")),
        "the live reader saw no echo request/reply with its interface: {read}"
    );

    // The reader is gone: the wire keeps relaying, the relay lives, one warning.
    ping_ok(&ns, 5, "-i 0.2");
    assert!(alive(relay), "the relay died with the capture reader");
    assert!(
        !tw.has_exited(),
        "the instance exited with the capture reader"
    );
    ping_ok(&ns, 3, "-i 0.2");
    let stderr = tw.stderr();
    let warnings = lines_with(&stderr, &["capture reader went away"]);
    assert_eq!(warnings.len(), 1, "exactly one warning expected:\n{stderr}");
    assert!(
        lines_with(&stderr, &["error: "]).is_empty(),
        "a reader going away is not an error:\n{stderr}"
    );
    let exited = stop_clean(&ns, &mut tw);
    assert_eq!(
        lines_with(&exited.stderr, &["capture reader went away"]).len(),
        1,
        "{exited}"
    );
    let (_, lost) = capture_counters(&exited.stderr)
        .unwrap_or_else(|| panic!("no capture counter line:\n{exited}"));
    assert!(
        lost > 0,
        "packets after the reader left count as lost:\n{exited}"
    );
}

// ----------------------------------------------------------------------------------------------
// 6: rotation
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn ring_keeps_the_newest_files_each_readable() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let dir = member_dir(&ns, "ring");
    let base = dir.join("cap.pcapng");
    let mut tw = up_member(
        &ns,
        &[
            "--pcap",
            p(&base),
            "--pcap-max-size",
            "20K",
            "--pcap-files",
            "3",
        ],
    );
    // 400 records of 1028 + 44 bytes: about 21 files of 20 KiB.
    ping_ok(&ns, 200, "-s 1000 -i 0.01");
    let exited = stop_clean(&ns, &mut tw);

    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("list ring dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .into_string()
                .expect("UTF-8")
        })
        .collect();
    names.sort();
    assert_eq!(
        names.len(),
        3,
        "--pcap-files 3 keeps exactly 3 files (enough traffic for ~21): {names:?}\n{exited}"
    );
    let max_record = 44 + 1028;
    let mut seqs = Vec::new();
    let mut last_end = 0.0;
    let mut total = 0;
    for name in &names {
        // cap_NNNNN_YYYYmmddHHMMSS.pcapng
        let mid = name
            .strip_prefix("cap_")
            .and_then(|r| r.strip_suffix(".pcapng"))
            .unwrap_or_else(|| panic!("ring file {name:?} is not cap_*.pcapng"));
        let (seq, stamp) = mid
            .split_once('_')
            .unwrap_or_else(|| panic!("ring file {name:?}: no _SEQ_STAMP"));
        assert!(
            seq.len() == 5 && stamp.len() == 14 && stamp.starts_with("20"),
            "ring file name {name:?} should be cap_NNNNN_YYYYmmddHHMMSS.pcapng"
        );
        seqs.push(seq.parse::<u32>().expect("numeric sequence"));
        let path = dir.join(name);
        let size = fs::metadata(&path).expect("stat ring file").len();
        assert!(
            size <= 20 * 1024 + max_record,
            "{name}: {size} bytes > 20K + one packet"
        );
        ns.sh_ok(&format!("capinfos {} >/dev/null", q(p(&path))));
        let times: Vec<f64> = tshark_fields(&ns, &path, "", &["frame.time_epoch"])
            .iter()
            .map(|r| r[0].parse().expect("time_epoch"))
            .collect();
        assert!(!times.is_empty(), "{name}: no packets");
        assert!(
            times[0] >= last_end,
            "{name} starts before the previous file ends: names do not sort in time order"
        );
        last_end = *times.last().expect("non-empty");
        total += times.len();
        // Each file stands alone: its own header with both interfaces.
        let ifaces = tshark_fields(&ns, &path, "", &["frame.interface_name"]);
        assert!(
            ifaces.iter().all(|r| r[0] == "tun0" || r[0] == "tun1"),
            "{name}: frames without a tun0/tun1 interface: {ifaces:?}"
        );
    }
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1) && seqs[0] > 3,
        "the newest three files should remain, consecutive: {names:?}"
    );
    assert!(total >= 3, "{total} packets in the remaining files");
}

// ----------------------------------------------------------------------------------------------
// 7: snaplen
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn snaplen_truncates_stored_bytes_only() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let dir = member_dir(&ns, "cap");
    let file = dir.join("snap.pcapng");
    let mut tw = up_member(&ns, &["--pcap", p(&file), "--snaplen", "64"]);
    ping_ok(&ns, 3, "-s 500 -i 0.2");
    stop_clean(&ns, &mut tw);
    let rows = tshark_fields(
        &ns,
        &file,
        "icmp",
        &["frame.cap_len", "frame.len", "icmp.type"],
    );
    assert_eq!(rows.len(), 6, "3 requests + 3 replies: {rows:?}");
    for row in &rows {
        assert_eq!(
            (row[0].as_str(), row[1].as_str()),
            ("64", "528"),
            "cap_len 64 of len 528 (20 IPv4 + 8 ICMP + 500): {rows:?}"
        );
    }
}

// ----------------------------------------------------------------------------------------------
// 8: a full disk stops the capture, not the wire
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn full_disk_stops_capture_not_the_wire() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let small = ns.dir().join("small");
    fs::create_dir(&small).expect("create mount point");
    // Only inside the anchor's private mount namespace; the host sees an empty directory.
    ns.sh_ok(&format!(
        "mount -t tmpfs -o size=512k,mode=0755,uid={},gid={} tunwire-test {}",
        MEMBER.uid,
        MEMBER.gid,
        q(p(&small))
    ));
    let file = small.join("full.pcapng");
    let www = ns.dir().join("www");
    fs::create_dir(&www).expect("create www");
    let sha = random_file(&ns, &www.join("big.bin"), 5 << 20);
    let mut tw = up_member(&ns, &["--pcap", p(&file)]);
    let relay = tw.relay_pid();
    let _server = http_server(&ns, &www);
    let got = curl_sha(&ns, "big.bin", &ns.dir().join("download.bin"));
    assert_eq!(got, sha, "the transfer across the wire was corrupted");
    assert!(alive(relay), "the relay died on ENOSPC");
    ping_ok(&ns, 3, "-i 0.2");
    let exited = stop_clean(&ns, &mut tw);

    let enospc = lines_with(&exited.stderr, &["No space left on device"]);
    assert_eq!(enospc.len(), 1, "exactly one ENOSPC line:\n{exited}");
    assert!(
        enospc[0].contains(p(&file)) && enospc[0].contains("error"),
        "the ENOSPC error should name {}: {}",
        file.display(),
        enospc[0]
    );
    let (recorded, lost) = capture_counters(&exited.stderr)
        .unwrap_or_else(|| panic!("no capture counter line:\n{exited}"));
    assert!(
        lost > 0,
        "records lost to ENOSPC must be counted:\n{exited}"
    );
    // The partial file is whole up to its last record.
    let frames = tshark_count(&ns, &file, "");
    assert!(frames > 0, "the partial capture has no packets");
    assert_eq!(
        frames as u64, recorded,
        "recorded counter vs frames in the partial file:\n{exited}"
    );
    ns.sh_ok(&format!("capinfos {} >/dev/null", q(p(&file))));
}

// ----------------------------------------------------------------------------------------------
// 9: a symlink planted at the capture path does not clobber root's file
// ----------------------------------------------------------------------------------------------

/// Start as root with `--user twmember --pcap PATH`; the start must fail with exit 2 before any
/// kernel change, with one error line naming PATH, `twmember` and `why`.
fn assert_capture_refused(ns: &Netns, path: &Path, why: &str) -> Exited {
    let before = ns.state();
    let e = ns.run_tunwire(&["--user", MEMBER.name, "--pcap", p(path)], As::Root);
    assert_eq!(
        e.code,
        Some(2),
        "a capture path twmember cannot use: exit 2: {e}"
    );
    let errors = lines_with(&e.stderr, &["error", p(path)]);
    assert_eq!(errors.len(), 1, "one error naming {}: {e}", path.display());
    assert!(
        errors[0].contains(why) && errors[0].contains(MEMBER.name),
        "the error should say {why:?} and name the relay's user: {e}"
    );
    assert!(
        !e.stderr.contains("went down"),
        "no link was ever made: {e}"
    );
    assert_eq!(
        ns.state(),
        before,
        "a refused capture path changed the state"
    );
    e
}

#[test]
#[ignore = "needs root"]
fn symlink_to_root_file_is_not_clobbered() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let dir = ns.dir().join("shared");
    fs::create_dir(&dir).expect("create shared dir");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).expect("chmod 1777");
    let victim = dir.join("victim");
    fs::write(&victim, "keep").expect("write victim");
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o666)).expect("chmod victim");
    let link = dir.join("cap.pcapng");
    std::os::unix::fs::symlink("victim", &link).expect("plant symlink");
    // The symlink belongs to the (malicious) member, as if planted by them. The victim is
    // writable by everyone, so only O_NOFOLLOW can keep it intact.
    std::os::unix::fs::lchown(&link, Some(MEMBER.uid), Some(MEMBER.gid)).expect("lchown link");
    assert_capture_refused(&ns, &link, "symbolic link");
    assert_eq!(
        fs::read_to_string(&victim).expect("read victim"),
        "keep",
        "the victim was modified through the symlink"
    );
}

#[test]
#[ignore = "needs root"]
fn capture_is_opened_with_the_relays_identity_before_setup() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    // A directory twmember may write, holding a file only root may write: root could truncate
    // it, twmember cannot. So this fails only if the open really happens as twmember.
    let dir = member_dir(&ns, "cap");
    let victim = dir.join("root-owned.pcapng");
    fs::write(&victim, "keep").expect("write victim");
    std::os::unix::fs::chown(&victim, Some(0), Some(0)).expect("chown victim");
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).expect("chmod victim");
    assert_capture_refused(&ns, &victim, "Permission denied");
    assert_eq!(fs::read_to_string(&victim).expect("read victim"), "keep");

    // A directory only root may write.
    let rootdir = ns.dir().join("rootonly");
    fs::create_dir(&rootdir).expect("create dir");
    fs::set_permissions(&rootdir, fs::Permissions::from_mode(0o755)).expect("chmod dir");
    assert_capture_refused(&ns, &rootdir.join("x.pcapng"), "Permission denied");
    assert!(
        !rootdir.join("x.pcapng").exists(),
        "the file was created as root"
    );

    // A missing directory is named as such.
    let missing = ns.dir().join("no-such-dir").join("x.pcapng");
    assert_capture_refused(&ns, &missing, "does not exist");

    // `check` reports the same problem, changing nothing.
    let e = ns.run_tunwire(
        &["check", "--user", MEMBER.name, "--pcap", p(&victim)],
        As::Root,
    );
    assert_eq!(
        e.code,
        Some(2),
        "check with a capture twmember cannot write: {e}"
    );
    assert!(
        e.stderr.contains(MEMBER.name) && e.stderr.contains(p(&victim)),
        "{e}"
    );
    assert_eq!(fs::read_to_string(&victim).expect("read victim"), "keep");
}

#[test]
#[ignore = "needs root"]
fn a_fifo_is_refused_as_capture_file() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let dir = member_dir(&ns, "cap");
    let fifo = dir.join("cap.fifo");
    ns.sh_ok(&format!("mkfifo -m 0666 {}", q(p(&fifo))));
    // Nobody reads the FIFO: an open that blocked would hang the start for ever.
    let e = assert_capture_refused(&ns, &fifo, "FIFO");
    assert!(e.signal.is_none(), "{e}");
}

// ----------------------------------------------------------------------------------------------
// 10: SIGHUP reopens the file (logrotate)
// ----------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs root"]
fn sighup_reopens_after_the_file_was_moved() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let dir = member_dir(&ns, "cap");
    let file = dir.join("hup.pcapng");
    let moved = dir.join("hup.pcapng.1");
    let mut tw = up_member(&ns, &["--pcap", p(&file)]);
    ping_ok(&ns, 2, "-i 0.2");
    fs::rename(&file, &moved).expect("mv F F.1");
    tw.signal("HUP");
    if let Err(e) = tw.wait_stderr("reopened", READY_TIMEOUT) {
        panic!("no reopen after SIGHUP: {e}");
    }
    ping_ok(&ns, 3, "-i 0.2");
    assert!(!tw.has_exited(), "SIGHUP stopped the instance");
    let exited = stop_clean(&ns, &mut tw);
    assert!(
        lines_with(&exited.stderr, &["reopened", p(&file)]).len() == 1,
        "one reopen line naming the file:\n{exited}"
    );
    let requests = |f: &Path| tshark_count(&ns, f, "icmp.type == 8");
    let replies = |f: &Path| tshark_count(&ns, f, "icmp.type == 0");
    assert_eq!(
        (requests(&moved), replies(&moved)),
        (2, 2),
        "F.1 holds the pings before SIGHUP"
    );
    assert_eq!(
        (requests(&file), replies(&file)),
        (3, 3),
        "F holds the pings after SIGHUP"
    );
    // The fresh file has its own header: interfaces are named.
    let names = tshark_fields(&ns, &file, "icmp", &["frame.interface_name"]);
    assert!(
        names.iter().all(|r| r[0] == "tun0" || r[0] == "tun1"),
        "{names:?}"
    );
    assert_eq!(fs::metadata(&file).expect("stat F").uid(), MEMBER.uid);
}

#[test]
#[ignore = "needs root"]
fn a_stalled_live_reader_does_not_stall_the_wire() {
    if !require_root() {
        return;
    }
    let ns = Netns::new();
    let fifo = ns.dir().join("stalled.fifo");
    let go = ns.dir().join("go");
    let out = ns.dir().join("stalled.pcapng");
    ns.sh_ok(&format!("mkfifo -m 0600 {}", q(p(&fifo))));
    // The reader opens the pipe, then reads nothing until the test says so.
    let mut reader = ns.spawn_bg(&format!(
        "exec 3< {}; while [ ! -e {} ]; do sleep 0.05; done; exec cat <&3 > {}",
        q(p(&fifo)),
        q(p(&go)),
        q(p(&out))
    ));
    let mut args: Vec<&str> = AS_MEMBER.to_vec();
    args.extend(["--pcap", "-"]);
    let script = format!(r#"exec "$0" "$@" > {}"#, q(p(&fifo)));
    let mut tw = ns.start(ns.tunwire_script(&script, &args));
    tw.wait_ready()
        .unwrap_or_else(|e| panic!("tunwire --pcap - did not become ready: {e}"));
    let relay = tw.relay_pid();

    // 3 MiB is far more than the pipe and the capture buffer hold: with a blocking write the
    // relay would hang here and curl would time out.
    let www = ns.dir().join("www");
    fs::create_dir(&www).expect("create www");
    let sha = random_file(&ns, &www.join("big.bin"), 3 << 20);
    let _server = http_server(&ns, &www);
    let got = curl_sha(&ns, "big.bin", &ns.dir().join("download.bin"));
    assert_eq!(got, sha, "the transfer across the wire was corrupted");
    ping_ok(&ns, 3, "-i 0.2");
    assert!(alive(relay), "the relay died with a stalled reader");
    assert!(
        !out.exists(),
        "the reader must still be stalled while the wire is checked"
    );

    fs::write(&go, b"").expect("release the reader");
    let exited = stop_clean(&ns, &mut tw);
    let read = reader.wait(EXIT_TIMEOUT);
    assert_eq!(read.code, Some(0), "reader: {read}");
    let slow = lines_with(&exited.stderr, &["capture reader is too slow"]);
    assert_eq!(slow.len(), 1, "exactly one slow-reader warning:\n{exited}");
    let (recorded, lost) = capture_counters(&exited.stderr)
        .unwrap_or_else(|| panic!("no capture counter line:\n{exited}"));
    assert!(
        lost > 0,
        "records that did not fit count as lost:\n{exited}"
    );
    // What did reach the reader is a whole, readable capture: dropped records are whole too.
    assert_eq!(
        tshark_count(&ns, &out, ""),
        recorded as usize,
        "frames in the stream vs the recorded counter:\n{exited}"
    );
}
