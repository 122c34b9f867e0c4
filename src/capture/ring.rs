// SPDX-License-Identifier: MIT OR Apache-2.0
//! Ring file names: `/dir/cap.pcapng` -> `/dir/cap_00001_20261127051500.pcapng` (sequence
//! number, then the UTC time the file was opened), and finding the last sequence number of an
//! earlier run. Reads a directory listing at most; never opens, creates or removes files.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::clock::utc_stamp;

/// The name of ring file `seq` of `base`, opened at `unix_secs`.
pub fn ring_name(base: &Path, seq: u32, unix_secs: u64) -> PathBuf {
    let mut name = OsString::from(base.file_stem().unwrap_or_default());
    name.push(format!("_{seq:05}_{}", utc_stamp(unix_secs)));
    if let Some(ext) = base.extension() {
        name.push(".");
        name.push(ext);
    }
    base.with_file_name(name)
}

/// The sequence number in `name` if it is a ring file of `base` (`stem_NNNNN_YYYYmmddHHMMSS.ext`).
pub fn ring_seq(base: &Path, name: &str) -> Option<u32> {
    let stem = base.file_stem()?.to_str()?;
    let rest = name.strip_prefix(stem)?.strip_prefix('_')?;
    let rest = match base.extension() {
        Some(ext) => rest.strip_suffix(ext.to_str()?)?.strip_suffix('.')?,
        None => rest,
    };
    let (seq, stamp) = rest.split_once('_')?;
    let digits = |s: &str, n: usize| s.len() >= n && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(seq, 5) || stamp.len() != 14 || !digits(stamp, 14) {
        return None;
    }
    seq.parse().ok()
}

/// The highest ring sequence number already in `base`'s directory (0 when there is none).
pub fn last_ring_seq(base: &Path) -> u32 {
    let Ok(entries) = std::fs::read_dir(dir_of(base)) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| ring_seq(base, e.file_name().to_str()?))
        .max()
        .unwrap_or(0)
}

/// The directory a capture file is created in (`.` for a bare name).
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_is_parsed_back() {
        let base = Path::new("/dir/cap.pcapng");
        assert_eq!(ring_seq(base, "cap_00007_20261127051500.pcapng"), Some(7));
        assert_eq!(
            ring_seq(base, "cap_123456_20261127051500.pcapng"),
            Some(123_456)
        );
        assert_eq!(ring_seq(base, "cap.pcapng"), None);
        assert_eq!(ring_seq(base, "cap_00007_2026.pcapng"), None);
        assert_eq!(ring_seq(base, "cap_00007_20261127051500.pcap"), None);
        assert_eq!(ring_seq(base, "other_00007_20261127051500.pcapng"), None);
        assert_eq!(
            ring_seq(Path::new("/d/cap"), "cap_00002_20261127051500"),
            Some(2)
        );
        let dir = std::env::temp_dir().join(format!("tunwire-ringseq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let base = dir.join("w.pcapng");
        assert_eq!(last_ring_seq(&base), 0);
        std::fs::write(dir.join("w_00003_20261127051500.pcapng"), b"").unwrap();
        std::fs::write(dir.join("w_00011_20261127051501.pcapng"), b"").unwrap();
        assert_eq!(last_ring_seq(&base), 11);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names() {
        let t = 1_795_756_500; // 2026-11-27 05:15:00 UTC
        assert_eq!(
            ring_name(Path::new("/dir/cap.pcapng"), 1, t),
            Path::new("/dir/cap_00001_20261127051500.pcapng")
        );
        assert_eq!(
            ring_name(Path::new("/dir/cap"), 42, t),
            Path::new("/dir/cap_00042_20261127051500")
        );
        assert_eq!(
            ring_name(Path::new("cap.x.pcap"), 123_456, t),
            Path::new("cap.x_123456_20261127051500.pcap")
        );
        assert_eq!(dir_of(Path::new("cap")), Path::new("."));
    }
}
