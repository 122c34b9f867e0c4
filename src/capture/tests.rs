// SPDX-License-Identifier: MIT OR Apache-2.0
//! Unit tests of the capture: files read back with pcap-file's readers.

use super::*;
use crate::config::CaptureConfig;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::blocks::section_header::SectionHeaderOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, TsResolution};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

static MESSAGES: Mutex<Vec<String>> = Mutex::new(Vec::new());
struct TestLogger;
static LOGGER: TestLogger = TestLogger;
impl log::Log for TestLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        if record.level() <= log::Level::Warn {
            MESSAGES.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}
/// True when our logger is the installed one (another test module may have set its own).
fn init_logger() -> bool {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    std::ptr::addr_eq(
        log::logger() as *const dyn log::Log,
        &LOGGER as *const TestLogger,
    )
}

fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tunwire-capture-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn header(format: PcapFormat, snaplen: u32) -> Header {
    Header {
        format,
        linktype: DataLink::RAW,
        snaplen,
        ifaces: [
            Iface {
                name: "tun0".into(),
                description: "192.168.13.1 peer 192.168.13.2".into(),
            },
            Iface {
                name: "tun1".into(),
                description: "192.168.13.2 peer 192.168.13.1".into(),
            },
        ],
        comment: None,
    }
}

fn ipv4_packet(len: usize, id: u8) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[5] = id;
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[192, 168, 13, 1]);
    p[16..20].copy_from_slice(&[192, 168, 13, 2]);
    for (i, b) in p.iter_mut().enumerate().skip(20) {
        *b = i as u8;
    }
    p
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

fn cfg(target: Target, format: PcapFormat, snaplen: u32) -> CaptureConfig {
    CaptureConfig {
        target,
        format,
        snaplen,
        max_size: None,
        files: None,
    }
}

fn open(cfg: &CaptureConfig) -> Capture {
    let prepared = prepare(cfg).unwrap();
    Capture::start(cfg, &header(cfg.format, cfg.snaplen), prepared)
}

const NONE: Meta = Meta {
    comment: None,
    packet_id: None,
    flags: 0,
    drop_count: None,
    inbound: false,
};

#[test]
fn pcapng_roundtrip() {
    let dir = temp_dir("ng");
    let path = dir.join("cap.pcapng");
    let mut cap = open(&cfg(Target::File(path.clone()), PcapFormat::PcapNg, 100));
    let start = now();
    let sizes = [(0, 60), (1, 61), (0, 1500), (1, 20)];
    for (i, &(iface, len)) in sizes.iter().enumerate() {
        cap.record(iface, now(), &ipv4_packet(len, i as u8), &NONE);
    }
    cap.end_batch(Instant::now());
    cap.finish();
    assert_eq!((cap.recorded(), cap.lost()), (4, 0));
    cap.record(0, now(), &ipv4_packet(60, 9), &NONE);
    assert_eq!(cap.lost(), 1);

    let mut r = PcapNgReader::new(File::open(&path).unwrap()).unwrap();
    let opts = &r.section().options;
    assert!(opts.contains(&SectionHeaderOption::UserApplication(
        format!("tunwire {}", env!("CARGO_PKG_VERSION")).into()
    )));
    let mut epbs = Vec::new();
    while let Some(block) = r.next_block() {
        if let Block::EnhancedPacket(epb) = block.unwrap() {
            epbs.push(epb.into_owned());
        }
    }
    let idbs = r.interfaces();
    assert_eq!(idbs.len(), 2);
    for (idb, want) in idbs.iter().zip(header(PcapFormat::PcapNg, 100).ifaces) {
        assert_eq!(idb.linktype, DataLink::RAW);
        assert_eq!(idb.snaplen, 100);
        assert!(idb
            .options
            .contains(&InterfaceDescriptionOption::IfName(want.name.into())));
        assert!(idb
            .options
            .contains(&InterfaceDescriptionOption::IfDescription(
                want.description.into()
            )));
        assert!(idb
            .options
            .contains(&InterfaceDescriptionOption::IfTsResol(9)));
    }
    assert_eq!(epbs.len(), 4);
    for (i, (epb, &(iface, len))) in epbs.iter().zip(&sizes).enumerate() {
        assert_eq!(epb.interface_id as usize, iface);
        assert_eq!(epb.original_len as usize, len);
        assert_eq!(epb.data.len(), len.min(100));
        assert_eq!(&epb.data[..], &ipv4_packet(len, i as u8)[..len.min(100)]);
        assert_eq!(epb.options, vec![EnhancedPacketOption::Flags(2)]);
        assert!(epb.timestamp >= start && epb.timestamp <= start + Duration::from_secs(60));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn pcap_roundtrip() {
    let dir = temp_dir("pcap");
    let path = dir.join("cap.pcap");
    let mut cap = open(&cfg(Target::File(path.clone()), PcapFormat::Pcap, 64));
    let start = now();
    cap.record(0, now(), &ipv4_packet(40, 1), &NONE);
    cap.record(1, now(), &ipv4_packet(64, 2), &NONE);
    cap.record(1, now(), &ipv4_packet(300, 3), &NONE);
    cap.finish();
    assert_eq!((cap.recorded(), cap.lost()), (3, 0));
    let mut r = PcapReader::new(File::open(&path).unwrap()).unwrap();
    let h = r.header();
    assert_eq!(h.datalink, DataLink::RAW);
    assert_eq!(h.ts_resolution, TsResolution::NanoSecond);
    assert_eq!(h.snaplen, 64);
    let mut got = Vec::new();
    // Raw: pcap-file 2.0's checked reader rejects orig_len > snaplen, which is legal.
    while let Some(p) = r.next_raw_packet() {
        let p = p.unwrap();
        let ts = Duration::new(p.ts_sec.into(), p.ts_frac);
        assert!(ts >= start && ts <= start + Duration::from_secs(60));
        got.push((p.orig_len, p.data.to_vec()));
    }
    assert_eq!(
        got,
        vec![
            (40, ipv4_packet(40, 1)),
            (64, ipv4_packet(64, 2)),
            (300, ipv4_packet(300, 3)[..64].to_vec()),
        ]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ring_rotation() {
    let dir = temp_dir("ring");
    let max = 2000;
    let config = CaptureConfig {
        max_size: Some(max),
        files: Some(3),
        ..cfg(
            Target::File(dir.join("cap.pcapng")),
            PcapFormat::PcapNg,
            262_144,
        )
    };
    let mut cap = open(&config);
    let rec = format::record_len(PcapFormat::PcapNg, 300, &NONE) as u64;
    for i in 0..50u8 {
        cap.record(usize::from(i % 2), now(), &ipv4_packet(300, i), &NONE);
        cap.end_batch(Instant::now());
    }
    cap.finish();
    assert_eq!((cap.recorded(), cap.lost()), (50, 0));
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    // 50 packets of 344 bytes, header ~150 bytes: 5 per file, 10 files, the last 3 kept.
    let mut total = 0;
    for (name, seq) in names.iter().zip(8..) {
        assert!(name.starts_with(&format!("cap_{seq:05}_20")), "{name}");
        assert!(name.ends_with(".pcapng") && name.len() == "cap_00008_20261127051500.pcapng".len());
        let p = dir.join(name);
        let size = std::fs::metadata(&p).unwrap().len();
        assert!(size <= max + rec, "{name}: {size}");
        let mut r = PcapNgReader::new(File::open(&p).unwrap()).unwrap();
        let mut n = 0;
        while let Some(b) = r.next_block() {
            if let Block::EnhancedPacket(epb) = b.unwrap() {
                assert_eq!(epb.original_len, 300);
                n += 1;
            }
        }
        assert_eq!(r.interfaces().len(), 2);
        assert!(n >= 1);
        total += n;
    }
    assert_eq!(total, 15);
    // A second run continues the numbering.
    let cap = open(&config);
    drop(cap);
    assert!(std::fs::read_dir(&dir).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("cap_00011_")));
    std::fs::remove_dir_all(dir).unwrap();
}

/// The packet records and the sections of a pcapng file.
fn packets_and_sections(p: &Path) -> (usize, usize) {
    // The reader takes the first section header itself.
    let mut r = PcapNgReader::new(File::open(p).unwrap()).unwrap();
    let (mut packets, mut sections) = (0, 1);
    while let Some(b) = r.next_block() {
        match b.unwrap() {
            Block::EnhancedPacket(_) => packets += 1,
            Block::SectionHeader(_) => sections += 1,
            _ => {}
        }
    }
    (packets, sections)
}

#[test]
fn single_file_reopen() {
    let dir = temp_dir("reopen");
    let path = dir.join("cap.pcapng");
    let mut cap = open(&cfg(
        Target::File(path.clone()),
        PcapFormat::PcapNg,
        262_144,
    ));
    cap.record(0, now(), &ipv4_packet(60, 1), &NONE);
    let rotated = dir.join("cap.pcapng.1");
    std::fs::rename(&path, &rotated).unwrap();
    cap.reopen();
    cap.record(1, now(), &ipv4_packet(60, 2), &NONE);
    cap.record(1, now(), &ipv4_packet(60, 3), &NONE);
    cap.finish();
    assert_eq!(
        (
            packets_and_sections(&rotated).0,
            packets_and_sections(&path).0
        ),
        (1, 2)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn reopen_continues_a_file_still_in_place_with_a_new_section() {
    let dir = temp_dir("reopen-in-place");
    let path = dir.join("cap.pcapng");
    let mut cap = open(&cfg(
        Target::File(path.clone()),
        PcapFormat::PcapNg,
        262_144,
    ));
    cap.record(0, now(), &ipv4_packet(60, 1), &NONE);
    // Not moved: nothing recorded before the SIGHUP may be lost.
    cap.reopen();
    cap.record(0, now(), &ipv4_packet(60, 2), &NONE);
    cap.new_section("impairment changed");
    cap.reopen();
    cap.record(1, now(), &ipv4_packet(60, 3), &NONE);
    cap.finish();
    assert_eq!(packets_and_sections(&path), (3, 2));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn write_error_is_counted_not_fatal() {
    let ours = init_logger();
    // /dev/full is not a regular file, so `prepare` would refuse it: hand it in directly.
    let config = cfg(
        Target::File("/dev/full".into()),
        PcapFormat::PcapNg,
        262_144,
    );
    let full = File::options().write(true).open("/dev/full").unwrap();
    let prepared = Prepared {
        first: Some((full, "/dev/full".into())),
        seq: 0,
    };
    let mut cap = Capture::start(&config, &header(PcapFormat::PcapNg, 262_144), prepared);
    for i in 0..10 {
        cap.record(0, now(), &ipv4_packet(100, i), &NONE);
        cap.end_batch(Instant::now() + Duration::from_secs(2));
    }
    cap.reopen();
    cap.record(0, now(), &ipv4_packet(100, 10), &NONE);
    cap.finish();
    assert_eq!(cap.recorded(), 0);
    assert_eq!(cap.lost(), 11);
    if ours {
        let msgs = MESSAGES.lock().unwrap();
        let ours: Vec<_> = msgs.iter().filter(|m| m.contains("/dev/full")).collect();
        // One for the first file, one for the SIGHUP retry (which refuses the device).
        assert_eq!(ours.len(), 2, "{ours:?}");
        assert!(ours[0].contains("No space left on device"), "{}", ours[0]);
        assert!(ours[1].contains("not a regular file"), "{}", ours[1]);
    }
}

#[test]
fn prepare_error_names_path() {
    let e = match prepare(&cfg(
        Target::File("/nonexistent-dir/x.pcapng".into()),
        PcapFormat::PcapNg,
        1,
    )) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("opened"),
    };
    assert!(
        e.starts_with(
            "capture file /nonexistent-dir/x.pcapng: directory /nonexistent-dir does not exist"
        ),
        "{e}"
    );
}
