//! ISO-8601 times → epoch milliseconds: how history runs are ordered, and how version
//! timestamps given as text are read. Pure, no allocation.

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

/// Parses an ISO-8601 time to milliseconds since 1970-01-01T00:00:00Z: `2026-11-20T10:00:00Z`,
/// fractions (`.123456`, truncated to ms), offsets (`+01:00`, `+0100`, `+01`), `t`/`z`/space,
/// no seconds (`2026-11-20T10:00`), no zone (UTC) or a date alone (midnight UTC). RFC 3339
/// is the strict subset. `None` for anything else.
pub fn parse_iso8601_ms(b: &[u8]) -> Option<i64> {
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

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Days in month `m` (1–12) of year `y`.
fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    fn p(s: &str) -> Option<i64> {
        super::parse_iso8601_ms(s.as_bytes())
    }

    #[test]
    fn parses_utc_and_offsets() {
        assert_eq!(p("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(p("2026-11-20T02:00:00Z"), Some(1_795_140_000_000));
        assert_eq!(p("2026-11-20T03:30:00+01:30"), Some(1_795_140_000_000));
        assert_eq!(p("2026-11-19T22:00:00-04:00"), Some(1_795_140_000_000));
        assert_eq!(p("2026-11-20T02:00:00.5Z"), Some(1_795_140_000_500));
        assert_eq!(p("2026-11-20T02:00:00.123456Z"), Some(1_795_140_000_123));
        assert_eq!(p("2024-02-29t00:00:00z"), Some(1_709_164_800_000));
        assert_eq!(p("1969-12-31T23:59:59.999Z"), Some(-1));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2026-11-20T02:00:00ZZ",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-20T24:00:00Z",
            "2026-11-20T02:00:00.Z",
            "2026/11/20T02:00:00Z",
            "2026-11-20T02:00:00+01:00 ",
            "２026-11-20T02:00:00Z",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }
}
