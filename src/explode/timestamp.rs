//! Version timestamps as they arrive → epoch milliseconds UTC.
//!
//! HubSpot sends epoch-ms integers (v1), the same as digit strings (webhooks, CSV-born data)
//! and ISO-8601 (v3). Accepted: `1700000000000`, `"1700000000000"`, `"-5"`,
//! `2026-11-20T10:00:00Z`, `…00.123456Z` (truncated to ms), `…+01:00`, `…+0100`, `…+01`,
//! `2026-11-20 10:00:00` and `2026-11-20T10:00` (no zone: UTC), `2026-11-20` (midnight UTC).
//! Anything else is `None`, and the caller rejects the record. (ISO-8601 parsing is shared
//! with the planner, which orders history runs by their start time.)

/// The earliest time written, 0001-01-01T00:00:00Z, and the latest, 9999-12-31T23:59:59.999Z:
/// the years every reader of the dataset (DuckDB, Spark, Trino, pyarrow, Polars) accepts as a
/// millisecond timestamp. Outside them a version is rejected: DuckDB, for one, cannot read a
/// file holding 9,223,372,036,854,775,806 ms.
pub const MIN_MS: i64 = -62_135_596_800_000;
pub const MAX_MS: i64 = 253_402_300_799_999;

/// `ms` if it lies in [`MIN_MS`, `MAX_MS`], else why not.
pub fn in_range(ms: i64) -> Result<i64, String> {
    if (MIN_MS..=MAX_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(format!(
            "{ms} ms is outside 0001-01-01 to 9999-12-31 UTC, the times readers of the dataset accept"
        ))
    }
}

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

    #[test]
    fn the_range_is_years_1_to_9999() {
        assert_eq!(parse(b"0001-01-01T00:00:00Z"), Some(MIN_MS));
        assert_eq!(parse(b"9999-12-31T23:59:59.999Z"), Some(MAX_MS));
        assert!(in_range(MIN_MS).is_ok() && in_range(MAX_MS).is_ok());
        assert!(in_range(MIN_MS - 1).is_err() && in_range(MAX_MS + 1).is_err());
        let err = in_range(9_223_372_036_854_775_806).unwrap_err();
        assert!(
            err.contains("outside 0001-01-01 to 9999-12-31 UTC"),
            "{err}"
        );
    }
}
