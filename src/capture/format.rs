// SPDX-License-Identifier: MIT OR Apache-2.0
//! The capture formats as bytes: file headers (built with pcap-file), pcapng Enhanced Packet
//! Blocks and classic pcap records, appended to a caller's buffer. Pure: no I/O, and no
//! allocation per packet once the buffer has capacity.

use std::borrow::Cow;
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, RawPcapPacket};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{Endianness, TsResolution};

pub use crate::config::PcapFormat;
pub use pcap_file::DataLink;

/// One TUN as it appears in the pcapng interface list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    /// Its addresses, e.g. "192.168.13.1 peer 192.168.13.2 (tunwire)".
    pub description: String,
}

/// What a file (or stream) starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub format: PcapFormat,
    /// LINKTYPE_RAW for TUNs, LINKTYPE_ETHERNET for TAPs.
    pub linktype: DataLink,
    pub snaplen: u32,
    pub ifaces: [Iface; 2],
    /// Section comment (pcapng only), e.g. the seed and impairment in force.
    pub comment: Option<String>,
}

/// Extra per-packet information of a pcapng record.
#[derive(Debug, Clone, Copy, Default)]
pub struct Meta<'a> {
    /// opt_comment, e.g. "tunwire: drop loss".
    pub comment: Option<&'a str>,
    /// epb_packetid: the same for a packet and its duplicate.
    pub packet_id: Option<u64>,
    /// epb_flags bits beyond the direction (e.g. EPB_FLAG_CRC_ERROR).
    pub flags: u32,
    /// The packet entered the interface's host side (a program wrote it into the TUN);
    /// otherwise the host sent it (outbound), as on a plain wire.
    pub inbound: bool,
    /// epb_dropcount: records lost between the previous record and this one.
    pub drop_count: Option<u64>,
}

/// epb_flags bits 0-1 = 2: outbound (the host transmitted the packet on that interface).
pub const EPB_FLAG_OUTBOUND: u32 = 2;
/// epb_flags bits 0-1 = 1: inbound (the host received it on that interface).
pub const EPB_FLAG_INBOUND: u32 = 1;
/// epb_flags bit 24: the frame had a CRC error (we use it for corrupted packets).
pub const EPB_FLAG_CRC_ERROR: u32 = 1 << 24;

const BLOCK_EPB: u32 = 6;
const OPT_ENDOFOPT: u16 = 0;
const OPT_COMMENT: u16 = 1;
const OPT_EPB_FLAGS: u16 = 2;
const OPT_EPB_DROPCOUNT: u16 = 4;
const OPT_EPB_PACKETID: u16 = 5;
/// EPB without data and options: type, length, if_id, ts_high, ts_low, caplen, origlen (28),
/// trailing length (4).
const EPB_FIXED: usize = 32;
const PCAP_REC_OVERHEAD: usize = 16;

pub fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

fn options_len(meta: &Meta) -> usize {
    let mut n = 8 + 4; // epb_flags, opt_endofopt
    if let Some(c) = meta.comment {
        n += 4 + c.len() + pad4(c.len());
    }
    if meta.drop_count.is_some() {
        n += 12;
    }
    if meta.packet_id.is_some() {
        n += 12;
    }
    n
}

/// Bytes one record of `caplen` captured bytes takes.
pub fn record_len(format: PcapFormat, caplen: usize, meta: &Meta) -> usize {
    match format {
        PcapFormat::PcapNg => EPB_FIXED + caplen + pad4(caplen) + options_len(meta),
        PcapFormat::Pcap => PCAP_REC_OVERHEAD + caplen,
    }
}

/// Append one record. pcapng records carry the interface, direction and `meta`; classic pcap
/// records carry neither.
pub fn push_record(
    buf: &mut Vec<u8>,
    format: PcapFormat,
    if_id: u32,
    ts: Duration,
    data: &[u8],
    orig_len: u32,
    meta: &Meta,
) {
    match format {
        PcapFormat::PcapNg => push_epb(buf, if_id, ts, data, orig_len, meta),
        PcapFormat::Pcap => push_pcap_record(buf, ts, data, orig_len),
    }
}

fn put32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_ne_bytes());
}

fn put_opt(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    buf.extend_from_slice(&code.to_ne_bytes());
    buf.extend_from_slice(&(value.len() as u16).to_ne_bytes());
    buf.extend_from_slice(value);
    buf.extend_from_slice(&[0u8; 3][..pad4(value.len())]);
}

/// Enhanced Packet Block in native byte order (like the SHB). Our own encoder because
/// pcap-file's EnhancedPacketBlock needs a Vec of options per packet, an allocation.
fn push_epb(buf: &mut Vec<u8>, if_id: u32, ts: Duration, data: &[u8], orig_len: u32, meta: &Meta) {
    let total = record_len(PcapFormat::PcapNg, data.len(), meta) as u32;
    let nanos = ts.as_nanos() as u64;
    put32(buf, BLOCK_EPB);
    put32(buf, total);
    put32(buf, if_id);
    put32(buf, (nanos >> 32) as u32);
    put32(buf, nanos as u32);
    put32(buf, data.len() as u32);
    put32(buf, orig_len);
    buf.extend_from_slice(data);
    buf.extend_from_slice(&[0u8; 3][..pad4(data.len())]);
    if let Some(c) = meta.comment {
        // Options longer than u16 cannot exist; comments are short by construction.
        let c = &c.as_bytes()[..c.len().min(u16::MAX as usize - 3)];
        put_opt(buf, OPT_COMMENT, c);
    }
    let direction = if meta.inbound {
        EPB_FLAG_INBOUND
    } else {
        EPB_FLAG_OUTBOUND
    };
    put_opt(buf, OPT_EPB_FLAGS, &(direction | meta.flags).to_ne_bytes());
    if let Some(n) = meta.drop_count {
        put_opt(buf, OPT_EPB_DROPCOUNT, &n.to_ne_bytes());
    }
    if let Some(id) = meta.packet_id {
        put_opt(buf, OPT_EPB_PACKETID, &id.to_ne_bytes());
    }
    put_opt(buf, OPT_ENDOFOPT, &[]);
    put32(buf, total);
}

/// Classic pcap record (nanosecond resolution), through pcap-file's allocation-free writer.
fn push_pcap_record(buf: &mut Vec<u8>, ts: Duration, data: &[u8], orig_len: u32) {
    let rec = RawPcapPacket {
        ts_sec: u32::try_from(ts.as_secs()).unwrap_or(u32::MAX),
        ts_frac: ts.subsec_nanos(),
        incl_len: data.len() as u32,
        orig_len,
        data: Cow::Borrowed(data),
    };
    // Writing into a Vec cannot fail.
    let _ = rec.write_to::<_, byteorder::NativeEndian>(buf);
}

/// The file header: SHB (shb_userappl = tunwire VERSION, the comment) and one IDB per TUN
/// (LINKTYPE_RAW, if_tsresol 9: EPB timestamps are nanoseconds); or the pcap global header.
pub fn header_bytes(h: &Header) -> Result<Vec<u8>, pcap_file::PcapError> {
    match h.format {
        PcapFormat::PcapNg => pcapng_header(h),
        PcapFormat::Pcap => {
            let header = PcapHeader {
                snaplen: h.snaplen,
                datalink: h.linktype,
                ts_resolution: TsResolution::NanoSecond,
                endianness: Endianness::native(),
                ..Default::default()
            };
            let mut v = Vec::new();
            header.write_to(&mut v)?;
            Ok(v)
        }
    }
}

fn pcapng_header(h: &Header) -> Result<Vec<u8>, pcap_file::PcapError> {
    let mut options = vec![SectionHeaderOption::UserApplication(
        concat!("tunwire ", env!("CARGO_PKG_VERSION")).into(),
    )];
    if let Some(c) = &h.comment {
        options.push(SectionHeaderOption::Comment(c.clone().into()));
    }
    let shb = SectionHeaderBlock {
        endianness: Endianness::native(),
        options,
        ..Default::default()
    };
    let mut w = PcapNgWriter::with_section_header(Vec::new(), shb)?;
    for iface in &h.ifaces {
        w.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: h.linktype,
            snaplen: h.snaplen,
            options: vec![
                InterfaceDescriptionOption::IfName(iface.name.clone().into()),
                InterfaceDescriptionOption::IfDescription(iface.description.clone().into()),
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        })?;
    }
    Ok(w.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
    use pcap_file::pcapng::{Block, PcapNgReader};

    fn header() -> Header {
        Header {
            format: PcapFormat::PcapNg,
            linktype: DataLink::RAW,
            snaplen: 1000,
            ifaces: [
                Iface {
                    name: "tun0".into(),
                    description: "a".into(),
                },
                Iface {
                    name: "tun1".into(),
                    description: "b".into(),
                },
            ],
            comment: Some("tunwire: seed 7".into()),
        }
    }

    #[test]
    fn epb_options_read_back() {
        let mut buf = header_bytes(&header()).unwrap();
        let meta = Meta {
            comment: Some("tunwire: drop loss"),
            packet_id: Some(42),
            flags: EPB_FLAG_CRC_ERROR,
            drop_count: Some(3),
            inbound: false,
        };
        let before = buf.len();
        push_record(
            &mut buf,
            PcapFormat::PcapNg,
            1,
            Duration::from_secs(5),
            b"hello",
            9,
            &meta,
        );
        assert_eq!(buf.len() - before, record_len(PcapFormat::PcapNg, 5, &meta));
        let mut r = PcapNgReader::new(&buf[..]).unwrap();
        assert!(r
            .section()
            .options
            .contains(&SectionHeaderOption::Comment("tunwire: seed 7".into())));
        let mut got = None;
        while let Some(b) = r.next_block() {
            if let Block::EnhancedPacket(epb) = b.unwrap() {
                got = Some(epb.into_owned());
            }
        }
        let epb = got.unwrap();
        assert_eq!((epb.interface_id, epb.original_len), (1, 9));
        assert_eq!(&epb.data[..], b"hello");
        assert!(epb
            .options
            .contains(&EnhancedPacketOption::Comment("tunwire: drop loss".into())));
        assert!(epb
            .options
            .contains(&EnhancedPacketOption::Flags(2 | EPB_FLAG_CRC_ERROR)));
        assert!(epb.options.contains(&EnhancedPacketOption::DropCount(3)));
    }
}
