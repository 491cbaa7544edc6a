//! Sizes and counts as people write and read them: `512MiB` in, `4,612,345` and `1.2 GiB` out.

/// Parses a byte size: a number with an optional unit. `KiB`/`MiB`/`GiB`/`TiB` and the bare
/// `K`/`M`/`G`/`T` (as Spark and the JVM write them) are powers of 1024; `KB`/`MB`/`GB`/`TB`
/// are powers of 1000. Case-insensitive; fractions allowed (`1.5GiB`); `B` or no unit is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let unit = unit.trim();
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 512MiB, 2GB or 1048576"))?;
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use KiB, MiB, GiB, TiB, KB, MB, GB or TB)"
            ));
        }
    };
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(bytes.round() as u64)
}

/// `1234567` → `1,234,567`.
pub fn format_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in binary units with one decimal: `1.2 GiB`, `512.0 MiB`, `900 B`.
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Epoch milliseconds as RFC 3339 UTC with seconds: `2026-11-21T08:15:00Z`.
pub fn format_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Epoch milliseconds as RFC 3339 UTC with milliseconds: `2026-11-21T08:15:00.123Z`. Run
/// start times: runs started the same second (a replay) still sort in order.
pub fn format_utc_ms(ms: i64) -> String {
    let s = format_utc(ms);
    format!("{}.{:03}Z", s.trim_end_matches('Z'), ms.rem_euclid(1000))
}

/// A day number (days since 1970-01-01) as `YYYY-MM-DD`.
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD` as a day number; `None` if it is not a valid date.
pub fn parse_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let days = planner::days_from_civil(y, m, d);
    // Round trip: rejects 2026-02-30 and month 13.
    (format_date(days) == text).then_some(days)
}

/// The first `YYYY-MM-DD` date in `text`, as a day number.
pub fn find_date(text: &str) -> Option<i64> {
    (0..text.len().saturating_sub(9)).find_map(|i| text.get(i..i + 10).and_then(parse_date))
}

/// Now, in epoch milliseconds.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// The proleptic Gregorian date of a day number (H. Hinnant's `civil_from_days`), the
/// inverse of [`planner::days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Text fit for one table cell or message: control characters escaped (property names and
/// whatever is read back from metadata are arbitrary strings, and a newline would break the
/// line), then clipped to `width` characters.
pub fn clip(name: &str, width: usize) -> String {
    let mut shown = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    if shown.chars().count() <= width {
        return shown;
    }
    let mut s: String = shown.chars().take(width - 1).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_round_trips_through_the_planner() {
        for ms in [
            0,
            1_795_140_000_000,
            -1_000,
            951_782_400_000,
            4_102_444_800_000,
        ] {
            let text = format_utc(ms);
            assert_eq!(
                planner::parse_iso8601_ms(text.as_bytes()),
                Some(ms.div_euclid(1000) * 1000),
                "{text}"
            );
        }
        assert_eq!(format_utc(1_795_140_000_000), "2026-11-20T02:00:00Z");
    }

    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1.5 gib"), Ok(3 << 29));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("10B"), Ok(10));
        for bad in [
            "",
            "MiB",
            "12 parsecs",
            "1..2GiB",
            "-1GiB",
            "1e3",
            "99999999999TiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn counts_and_bytes() {
        assert_eq!(format_count(0), "0");
        assert_eq!(format_count(999), "999");
        assert_eq!(format_count(1000), "1,000");
        assert_eq!(format_count(28_137_317), "28,137,317");
        assert_eq!(format_bytes(900), "900 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(512 << 20), "512.0 MiB");
        assert_eq!(format_bytes(u64::MAX), "16384.0 PiB");
    }
}

#[cfg(test)]
mod date_tests {
    use super::*;

    #[test]
    fn dates_parse_format_and_are_found_in_text() {
        let d = parse_date("2026-10-31").unwrap();
        assert_eq!(format_date(d + 1), "2026-11-01");
        assert_eq!(
            parse_date("2024-02-29").map(format_date).as_deref(),
            Some("2024-02-29")
        );
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "2026-1-01",
            "20261001",
            "2026-10-0x",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert_eq!(
            find_date("dt=2026-10-05/x").map(format_date).as_deref(),
            Some("2026-10-05")
        );
        assert_eq!(find_date("dt=today"), None);
    }

    #[test]
    fn names_are_clipped_by_characters() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("ééééééééééééé", 5), "éééé…");
        assert_eq!(clip("a\nb\u{0}", 20), "a\\nb\\u{0}");
    }
}
