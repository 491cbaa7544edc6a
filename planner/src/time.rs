//! RFC 3339 timestamps → epoch milliseconds, so history runs order by when they ran whatever
//! offset or precision each record was written with. Pure, no allocation.

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (RFC 3339; `t`/`z`/space accepted as
/// RFC 3339 allows) to milliseconds since 1970-01-01T00:00:00Z. Fractions beyond milliseconds
/// are truncated. `None` for anything else.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    // 60 is a leap second; it sorts as the next minute's first, which is all ordering needs.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }

    let mut i = 19;
    let mut millis = 0i64;
    if b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - frac_start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - frac_start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_minutes = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = digits(b, i + 1, 2)?;
            let om = digits(b, i + 4, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if *sign == b'-' { -m } else { m }
        }
        _ => return None,
    };

    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(secs * 1_000 + millis)
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let mut v = 0i64;
    for &c in b.get(at..at + n)? {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Days in month `m` (1–12) of year `y`.
pub fn days_in_month(y: i64, m: i64) -> i64 {
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
    use super::parse_rfc3339_ms as p;

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
            "2026-11-20",
            "2026-11-20T02:00:00",
            "2026-11-20T02:00:00ZZ",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-20T24:00:00Z",
            "2026-11-20T02:00:00.Z",
            "2026-11-20T02:00:00+0100",
            "2026/11/20T02:00:00Z",
            "2026-11-20T02:00:00+01:00 ",
            "２026-11-20T02:00:00Z",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }
}
