//! Version timestamps as they arrive → epoch milliseconds UTC.
//!
//! HubSpot sends epoch-ms integers (v1), the same as digit strings (webhooks, CSV-born data)
//! and ISO-8601 (v3). Accepted: `1700000000000`, `"1700000000000"`, `"-5"`,
//! `2026-11-20T10:00:00Z`, `…00.123456Z` (truncated to ms), `…+01:00`, `…+0100`, `…+01`,
//! `2026-11-20 10:00:00` and `2026-11-20T10:00` (no zone: UTC), `2026-11-20` (midnight UTC).
//! Anything else is `None`, and the caller rejects the record.

use planner::{days_from_civil, days_in_month};

/// Parses a timestamp given as text (digits or ISO-8601).
pub fn parse(text: &[u8]) -> Option<i64> {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        return std::str::from_utf8(text).ok()?.parse().ok();
    }
    parse_iso(text)
}

/// A JSON number as a timestamp: integral milliseconds only.
pub fn from_f64(v: f64) -> Option<i64> {
    const LIMIT: f64 = 9.2e18;
    (v.fract() == 0.0 && v.abs() < LIMIT).then_some(v as i64)
}

fn num(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let mut v = 0i64;
    for &c in b.get(at..at + n)? {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

fn parse_iso(b: &[u8]) -> Option<i64> {
    let (year, month, day) = (num(b, 0, 4)?, num(b, 5, 2)?, num(b, 8, 2)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if b.len() == 10 {
        return Some(days * 86_400_000);
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (hour, minute) = (num(b, 11, 2)?, num(b, 14, 2)?);
    if b.get(13) != Some(&b':') || hour > 23 || minute > 59 {
        return None;
    }
    let mut i = 16;
    let mut second = 0;
    let mut millis = 0;
    if b.get(i) == Some(&b':') {
        second = num(b, i + 1, 2)?;
        if second > 60 {
            return None;
        }
        i += 3;
        if b.get(i) == Some(&b'.') || b.get(i) == Some(&b',') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 3 {
                    millis = millis * 10 + i64::from(b[i] - b'0');
                }
                i += 1;
            }
            let n = i - start;
            if n == 0 {
                return None;
            }
            for _ in n..3 {
                millis *= 10;
            }
        }
    }
    let offset_minutes = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let rest = &b[i + 1..];
            let (h, m) = match rest.len() {
                2 => (num(rest, 0, 2)?, 0),
                4 => (num(rest, 0, 2)?, num(rest, 2, 2)?),
                5 if rest[2] == b':' => (num(rest, 0, 2)?, num(rest, 3, 2)?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            if sign == b'-' {
                -(h * 60 + m)
            } else {
                h * 60 + m
            }
        }
        Some(_) => return None,
    };
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(secs * 1_000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        let t = 1_795_140_000_000; // 2026-11-20T02:00:00Z
        for (text, want) in [
            ("1795140000000", t),
            ("0", 0),
            ("-5", -5),
            ("20261120", 20_261_120), // digits are always epoch milliseconds
            ("2026-11-20T02:00:00Z", t),
            ("2026-11-20T02:00:00.123Z", t + 123),
            ("2026-11-20T02:00:00.1Z", t + 100),
            ("2026-11-20T02:00:00.123999Z", t + 123),
            ("2026-11-20T03:00:00+01:00", t),
            ("2026-11-20T03:00:00+0100", t),
            ("2026-11-20T03:00:00+01", t),
            ("2026-11-19T22:30:00-03:30", t),
            ("2026-11-20 02:00:00", t),
            ("2026-11-20T02:00", t),
            ("2026-11-20", t - 2 * 3_600_000),
            ("1969-12-31T23:59:59.999Z", -1),
        ] {
            assert_eq!(parse(text.as_bytes()), Some(want), "{text}");
        }
    }

    #[test]
    fn rejected_forms() {
        for text in [
            "",
            "-",
            "12a",
            "99999999999999999999",
            "2026-13-01",
            "2026-02-30",
            "2026-11-20T",
            "2026-11-20T25:00Z",
            "2026-11-20T02:00:00Q",
            "2026-11-20T02:00:00.Z",
            "2026-1-20",
            "2026-11-20T02:00:00+1",
            "yesterday",
            "1.5",
        ] {
            assert_eq!(parse(text.as_bytes()), None, "{text:?}");
        }
        assert_eq!(from_f64(1.0e12), Some(1_000_000_000_000));
        assert_eq!(from_f64(1.5), None);
        assert_eq!(from_f64(f64::NAN), None);
        assert_eq!(from_f64(1e30), None);
    }
}
