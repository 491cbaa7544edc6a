//! Rejects: the records (and versions) a run could not read, with where and why, as the
//! run leaves them in `_skewer/rejects/<run>.ndjson`.

use std::sync::Arc;

use crate::error::{Error, Result};

/// A record that could not be read: where, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reject {
    /// Input file, as given or found.
    pub file: Arc<str>,
    /// 1-based line of the record (or of the JSON text holding it), when known.
    pub line: Option<u64>,
    /// Byte offset of that line, when it is known before the line number.
    pub offset: Option<u64>,
    /// Row group, for Parquet input.
    pub row_group: Option<usize>,
    /// Which record of that line, text or row group (0-based).
    pub record: u64,
    pub reason: String,
}

/// The rejects as NDJSON, one object per line (`file`, `line`, `row_group`, `record`,
/// `reason`).
pub fn to_ndjson(rejects: &[Reject]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for r in rejects {
        let line = serde_json::json!({
            "file": r.file.as_ref(),
            "line": r.line,
            "row_group": r.row_group,
            "record": r.record,
            "reason": r.reason,
        });
        serde_json::to_writer(&mut out, &line)
            .map_err(|e| Error::Bug(format!("reject to JSON: {e}")))?;
        out.push(b'\n');
    }
    Ok(out)
}
