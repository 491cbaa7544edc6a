//! The dataset's layout: where every file of a dataset goes, and how names become folders.
//!
//! ```text
//!  <dataset>/[key=value/…]property_name=<escaped name>/part-<run>-r<reducer>[-<n>].parquet
//!  <dataset>/_skewer/{lock, runs/<run>.json, history/<run>.json, rejects/<run>.ndjson,
//!                     staging/<run>/…, replaced/<run>/…}
//! ```
//!
//! Property names are escaped as Hive and Spark escape partition values, so no name can
//! leave its folder and every Hive reader decodes the same name; names no folder can hold
//! (empty, Hive's null marker, too long once escaped) are refused by [`unwritable`].
//! Readers skip folders starting with `_` or `.`, so `_skewer/` is invisible to them, and a
//! `--partition` key may not start so ([`partition_path`]).

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The partition column holding the property name.
pub const PROPERTY_COLUMN: &str = "property_name";
/// What Hive calls a partition whose value is null or empty.
pub const HIVE_DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// `_skewer/…` paths of a dataset.
#[derive(Clone, Debug)]
pub struct Layout {
    pub dataset: PathBuf,
}

impl Layout {
    pub fn new(dataset: impl Into<PathBuf>) -> Self {
        Layout {
            dataset: dataset.into(),
        }
    }
    pub fn meta(&self) -> PathBuf {
        self.dataset.join("_skewer")
    }
    pub fn staging(&self, run: &str) -> PathBuf {
        self.meta().join("staging").join(run)
    }
    pub fn replaced(&self, run: &str) -> PathBuf {
        self.meta().join("replaced").join(run)
    }
    pub fn runs_dir(&self) -> PathBuf {
        self.meta().join("runs")
    }
    pub fn history_dir(&self) -> PathBuf {
        self.meta().join("history")
    }
    pub fn manifest(&self, run: &str) -> PathBuf {
        self.runs_dir().join(format!("{run}.json"))
    }
    pub fn history_record(&self, run: &str) -> PathBuf {
        self.history_dir().join(format!("{run}.json"))
    }
    /// Where a run's history record waits until its publish completes.
    pub fn pending_history(&self, run: &str) -> PathBuf {
        self.staging(run).join("_history.json")
    }
    pub fn rejects(&self, run: &str) -> PathBuf {
        self.meta().join("rejects").join(format!("{run}.ndjson"))
    }
    pub fn lock_file(&self) -> PathBuf {
        self.meta().join("lock")
    }
}

/// Checks a `--partition` value and returns the folder path it stands for.
pub fn partition_path(partition: &str) -> Result<String> {
    let mut parts = Vec::new();
    for segment in partition.split('/') {
        let (key, value) = segment.split_once('=').ok_or_else(|| {
            Error::Config(format!(
                "--partition {partition:?}: expected key=value, e.g. dt=2026-11-20"
            ))
        })?;
        // Hive readers skip folders that start with `_` or `.`: such a key would hide the
        // data; and `property_name` is the folder skewer adds below (readers match partition
        // keys without regard to case).
        let key_ok = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !key_ok || value.is_empty() {
            return Err(Error::Config(format!(
                "--partition {partition:?}: {segment:?} needs a key that starts with a letter \
                 (then letters, digits and _; a key starting with _ or . is hidden from readers) \
                 and a non-empty value"
            )));
        }
        if key.eq_ignore_ascii_case(PROPERTY_COLUMN) {
            return Err(Error::Config(format!(
                "--partition {partition:?}: {key:?} is the partition skewer writes each property \
                 under; choose another key"
            )));
        }
        parts.push(format!("{key}={}", escape_partition_value(value)));
    }
    Ok(parts.join("/"))
}

/// The longest property name a partition folder can hold once escaped: file systems allow
/// 255 bytes per name, of which `property_name=` takes 14.
pub const MAX_ESCAPED_NAME_BYTES: usize = 255 - 14;

/// Why `rel` cannot be a partition folder of a dataset (`[key=value/…]property_name=<p>`,
/// relative, every segment a plain `key=value` folder name), if it cannot.
pub fn check_partition(rel: &str) -> std::result::Result<(), String> {
    let bad = |why: &str| Err(format!("partition {} {why}", crate::units::clip(rel, 80)));
    let segments: Vec<&str> = rel.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let Some((key, _)) = segment.split_once('=') else {
            return bad("has a folder that is not key=value");
        };
        if key.is_empty() || key.starts_with(['.', '_']) || segment.len() > 255 {
            return bad("has a folder that is not a partition");
        }
        if segment.contains(['\0', '\\']) {
            return bad("has a folder name with a NUL or a backslash");
        }
        let last = i + 1 == segments.len();
        if (key == crate::layout::PROPERTY_COLUMN) != last {
            return bad("does not end in one property_name= folder");
        }
    }
    Ok(())
}

/// Why rows of `name` cannot be written, if they cannot.
pub fn unwritable(name: &str) -> Option<String> {
    if name.is_empty() {
        // Hive readers read an empty partition value as null: no folder names "".
        return Some("a property has an empty name, which no partition folder can hold".into());
    }
    if name == HIVE_DEFAULT_PARTITION {
        // Readers (pyarrow among them) take this value for null however it is escaped.
        return Some(format!(
            "a property is named {name}, which Hive readers read as a null partition"
        ));
    }
    let escaped = escape_partition_value(name).len();
    (escaped > MAX_ESCAPED_NAME_BYTES).then(|| {
        format!(
            "property name {:?}… is {escaped} bytes once escaped, too long for a folder (at most {MAX_ESCAPED_NAME_BYTES})",
            name.chars().take(40).collect::<String>()
        )
    })
}

/// Escapes a partition value as Hive and Spark do: `%XX` for control characters and
/// `"#%'*/:=?\{[]^` and DEL; the empty string is Hive's default partition.
pub fn escape_partition_value(value: &str) -> String {
    if value.is_empty() {
        return HIVE_DEFAULT_PARTITION.to_string();
    }
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        let escape = matches!(
            c,
            '\u{0}'
                ..='\u{1f}'
                    | '"'
                    | '#'
                    | '%'
                    | '\''
                    | '*'
                    | '/'
                    | ':'
                    | '='
                    | '?'
                    | '\\'
                    | '\u{7f}'
                    | '{'
                    | '['
                    | ']'
                    | '^'
        );
        if escape {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The inverse of [`escape_partition_value`] (and of any reader's `%XX` escaping).
pub fn unescape_partition_value(escaped: &str) -> Option<String> {
    if escaped == HIVE_DEFAULT_PARTITION {
        return Some(String::new());
    }
    let b = escaped.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The folder of one property: `property_name=<escaped>`.
pub fn property_dir(property: &str) -> String {
    format!("{PROPERTY_COLUMN}={}", escape_partition_value(property))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_never_leaves_the_folder() {
        for name in [
            "email",
            "a/b",
            "x=y",
            "..",
            ".",
            "50%",
            "ünïcødé 🚀",
            "tab\there",
            "a:b*c?",
            "",
        ] {
            let escaped = escape_partition_value(name);
            assert!(
                !escaped.contains('/') && !escaped.contains('\0'),
                "{escaped}"
            );
            assert_ne!(property_dir(name), "..");
            assert_eq!(unescape_partition_value(&escaped).as_deref(), Some(name));
        }
        assert_eq!(escape_partition_value("a/b=c%"), "a%2Fb%3Dc%25");
        assert_eq!(escape_partition_value(""), HIVE_DEFAULT_PARTITION);
        assert_eq!(unescape_partition_value("%zz"), None);
    }

    #[test]
    fn partition_keys_readers_would_hide_or_confuse_are_refused() {
        assert_eq!(partition_path("dt=2026-11-20").unwrap(), "dt=2026-11-20");
        assert!(partition_path("dt=2026/11").is_err());
        for bad in [
            "_dt=x",
            ".dt=x",
            "property_name=x",
            "Property_Name=x",
            "dt=",
            "=x",
            "1dt=x",
        ] {
            assert!(partition_path(bad).is_err(), "{bad}");
        }
        let err = partition_path("property_name=x").unwrap_err().to_string();
        assert!(err.contains("choose another key"), "{err}");
        let err = partition_path("_dt=x").unwrap_err().to_string();
        assert!(err.contains("hidden from readers"), "{err}");
        assert_eq!(partition_path("dt=a/b=c d").unwrap(), "dt=a/b=c d");
    }
}
