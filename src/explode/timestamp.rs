//! Version timestamps as they arrive → epoch milliseconds UTC.
//!
//! HubSpot sends epoch-ms integers (v1), the same as digit strings (webhooks, CSV-born data)
//! and ISO-8601 (v3). Accepted: `1700000000000`, `"1700000000000"`, `"-5"`,
//! `2026-11-20T10:00:00Z`, `…00.123456Z` (truncated to ms), `…+01:00`, `…+0100`, `…+01`,
//! `2026-11-20 10:00:00` and `2026-11-20T10:00` (no zone: UTC), `2026-11-20` (midnight UTC).
//! Anything else is `None`, and the caller rejects the record. (ISO-8601 parsing is shared
//! with the planner, which orders history runs by their start time.)

/// Parses a timestamp given as text (digits or ISO-8601).
pub fn parse(text: &[u8]) -> Option<i64> {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        return std::str::from_utf8(text).ok()?.parse().ok();
    }
    planner::parse_iso8601_ms(text)
}

/// A JSON number as a timestamp: integral milliseconds only.
pub fn from_f64(v: f64) -> Option<i64> {
    const LIMIT: f64 = 9.2e18;
    (v.fract() == 0.0 && v.abs() < LIMIT).then_some(v as i64)
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
