// SPDX-License-Identifier: MIT OR Apache-2.0
//! Calendar arithmetic for the few places that print wall-clock time (log lines, ring file
//! names, `tunwire list`): UTC only, no time zone database, no system calls.

use std::time::{SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day, hour, minute, second) of a UNIX time, UTC.
fn fields(unix_secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let (y, m, d) = civil_from_days((unix_secs / 86_400) as i64);
    let rem = unix_secs % 86_400;
    (y, m, d, rem / 3600, rem / 60 % 60, rem % 60)
}

/// `YYYYmmddHHMMSS` in UTC, for file names.
pub fn utc_stamp(unix_secs: u64) -> String {
    let (y, m, d, hh, mm, ss) = fields(unix_secs);
    format!("{y:04}{m:02}{d:02}{hh:02}{mm:02}{ss:02}")
}

/// `2026-11-27T05:15:00Z`.
pub fn rfc3339(unix_secs: u64) -> String {
    let (y, m, d, hh, mm, ss) = fields(unix_secs);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// `2026-11-27T05:15:00.123Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let s = rfc3339(d.as_secs());
    format!("{}.{:03}Z", s.trim_end_matches('Z'), d.subsec_millis())
}

/// Seconds since the UNIX epoch now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps() {
        // 2026-11-27 05:15:00 UTC
        let t = 1_795_756_500;
        assert_eq!(utc_stamp(t), "20261127051500");
        assert_eq!(utc_stamp(0), "19700101000000");
        assert_eq!(utc_stamp(951_782_399), "20000228235959");
        assert_eq!(utc_stamp(951_782_400), "20000229000000");
        assert_eq!(rfc3339(t), "2026-11-27T05:15:00Z");
    }

    #[test]
    fn millis() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_756_476_506);
        assert_eq!(rfc3339_millis(t), "2026-11-27T05:14:36.506Z");
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
