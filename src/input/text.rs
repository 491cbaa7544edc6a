//! JSON input: NDJSON lines, whole texts (arrays, API pages, pretty-printed or concatenated
//! objects), plain or compressed, into explode.
//!
//! What can be counted is counted; what cannot stops the run. An NDJSON line is one record:
//! a line that does not parse, or is longer than [`MAX_RECORD_BYTES`], is one rejected record
//! and reading goes on at the next line. A whole text that stops parsing, or a stream that
//! cannot be decompressed to its end, hides how many records the rest held: that is an
//! [`Error::Input`] naming the file and the place.
//!
//! Whether a text is NDJSON is told from its first lines: its first line parses as a whole
//! value, or (a damaged first record) most of the next few lines are whole objects. A UTF-8
//! byte-order mark before the first line is skipped.

use std::cell::Cell;
use std::io::{self, BufRead, Read};
use std::rc::Rc;

use super::decode::{Counted, Guarded, GzMembers};
use super::lines::{BOM, Line, range_lines, read_line};
use super::{Format, InputFile, MapperScratch, locate};
use crate::error::{Error, Result};
use crate::explode::json::{JsonContext, JsonScratch, StreamMark, explode_reader, explode_slice};
use crate::explode::{MAX_RECORD_BYTES, PropertyIds, RecordSink};
use crate::route::Router;
use crate::source::Reader;

/// Whole (non-NDJSON) texts up to this size are read into memory and parsed as a slice
/// (faster); larger ones are streamed, so memory stays bounded.
const SLURP_LIMIT: u64 = 16 << 20;

/// Lines looked at to tell NDJSON from one text, and the bytes they may take.
const SNIFF_LINES: usize = 9;
const SNIFF_BYTES: u64 = MAX_RECORD_BYTES as u64;

/// Whether a text whose first non-empty lines are `lines` (trimmed, the first without its
/// byte-order mark) is NDJSON.
///
/// A first line longer than the look allows is not: one huge line is far more likely a
/// minified document (`{"results": [...]}` of a whole export) than one record, and read as a
/// stream of values it is read either way.
fn ndjson(lines: &[&[u8]], first_complete: bool) -> bool {
    if !first_complete {
        return false;
    }
    let whole = |l: &[u8]| serde_json::from_slice::<serde::de::IgnoredAny>(l).is_ok();
    let Some((first, rest)) = lines.split_first() else {
        return false;
    };
    if whole(first) {
        return true;
    }
    // An array's first line is `[`; a pretty-printed object's lines are fragments.
    if first.starts_with(b"[") {
        return false;
    }
    if rest.is_empty() {
        return first.starts_with(b"{");
    }
    let objects = rest
        .iter()
        .filter(|l| l.starts_with(b"{") && whole(l))
        .count();
    objects * 2 > rest.len()
}

/// Whether `head`, the first bytes of a text (all of it if `eof`), holds its first non-empty
/// line whole.
fn first_line_whole(head: &[u8], eof: bool) -> bool {
    eof || head
        .split(|&b| b == b'\n')
        .skip_while(|l| l.trim_ascii().is_empty())
        .nth(1)
        .is_some()
}

/// The first non-empty lines of `text`, for [`ndjson`].
fn first_lines(text: &[u8]) -> Vec<&[u8]> {
    let text = text.strip_prefix(BOM).unwrap_or(text);
    text.split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|l| !l.is_empty())
        .take(SNIFF_LINES)
        .collect()
}

/// Whether a plain JSON file is NDJSON, from its first lines.
pub(super) fn is_ndjson(file: &InputFile) -> Result<bool> {
    // Small reads: the first lines are usually short, and from S3 each read is a request.
    let reader = io::BufReader::with_capacity(64 << 10, Reader::new(file.open()?, 0));
    let mut head = Vec::new();
    let mut lines = 0;
    let mut limited = reader.take(SNIFF_BYTES);
    let mut eof = false;
    while lines < SNIFF_LINES + 1 {
        let n = limited
            .read_until(b'\n', &mut head)
            .map_err(|e| read_error(file, e))?;
        if n == 0 {
            eof = head.len() as u64 == file.size;
            break;
        }
        lines += 1;
    }
    Ok(ndjson(&first_lines(&head), first_line_whole(&head, eof)))
}

/// The NDJSON lines starting in `[start, end)`: a line belongs to the split its first byte is in.
pub(super) fn read_lines(
    file: &InputFile,
    start: u64,
    end: u64,
    scratch: &mut MapperScratch,
    ids: &mut dyn PropertyIds,
    router: &mut Router<'_>,
) -> Result<()> {
    let f = file.open()?;
    let json = &mut scratch.json;
    range_lines(f.as_ref(), &mut scratch.buf, start, end, |offset, line| {
        if router.disconnected {
            return false;
        }
        // Line numbers are resolved from offsets only for rejects, after the run.
        match line {
            Line::Text(text) => {
                explode_line(file, text, None, Some(offset), json, ids, router);
            }
            Line::TooLong(len) => {
                locate(router, file, None, Some(offset));
                too_long(router, len);
            }
        }
        true
    })
    .map_err(|e| read_error(file, e))
}

/// A whole JSON text (array, page, pretty-printed or concatenated objects), or any compressed
/// file (which cannot be split).
pub(super) fn read_whole(
    file: &InputFile,
    scratch: &mut MapperScratch,
    ids: &mut dyn PropertyIds,
    router: &mut Router<'_>,
) -> Result<()> {
    let f = file.open()?;
    if file.size == 0 {
        // Nothing was lost: there was nothing to read.
        return Ok(());
    }
    let counted = Rc::new(Cell::new(0));
    let raw = Counted {
        inner: Reader::buffered(f, 0),
        count: counted.clone(),
    };
    match file.format {
        Format::Json if file.size <= SLURP_LIMIT => {
            let buf = &mut scratch.buf;
            buf.clear();
            let got = raw
                .take(file.size)
                .read_to_end(buf)
                .map_err(|e| read_error(file, e))?;
            if (got as u64) < file.size {
                return Err(read_error(
                    file,
                    crate::source::cut_short(got as u64, file.size),
                ));
            }
            let text = buf.strip_prefix(BOM).unwrap_or(buf);
            locate(router, file, None, None);
            let mut ctx = JsonContext::new(&mut scratch.json, ids, router);
            let result = explode_slice(text, &mut ctx);
            let records = ctx.records;
            router.counts.records_met += records;
            text_done(file, result, None)
        }
        _ => {
            let decoded: Box<dyn Read + '_> = match file.format {
                Format::Gzip => Box::new(GzMembers::over(raw)),
                Format::Zstd => match zstd::stream::read::Decoder::new(raw) {
                    Ok(decoder) => Box::new(decoder),
                    Err(e) => {
                        return Err(Error::Input {
                            path: file.path.clone(),
                            reason: format!("cannot start zstd decompression: {e}"),
                        });
                    }
                },
                _ => Box::new(raw),
            };
            let reader = io::BufReader::with_capacity(1 << 20, decoded);
            read_stream(file, reader, Some(counted), scratch, ids, router)
        }
    }
}

/// A stream (decompressed, or too large to slurp): NDJSON line by line if its first lines
/// say so, else one streamed text. `compressed` counts the file's bytes read so far.
fn read_stream(
    file: &InputFile,
    mut reader: impl BufRead,
    compressed: Option<Rc<Cell<u64>>>,
    scratch: &mut MapperScratch,
    ids: &mut dyn PropertyIds,
    router: &mut Router<'_>,
) -> Result<()> {
    let at = || compressed.as_ref().map(|c| c.get());
    let fail = |e: io::Error, line: Option<u64>| decode_error(file, e, line, at());
    // Look at the first lines, then read them again followed by the rest.
    let mut head = Vec::new();
    let mut lines = 0;
    let mut eof = false;
    while lines <= SNIFF_LINES && (head.len() as u64) < SNIFF_BYTES {
        let limit = SNIFF_BYTES - head.len() as u64;
        let n = (&mut reader)
            .take(limit)
            .read_until(b'\n', &mut head)
            .map_err(|e| fail(e, None))?;
        if n == 0 {
            eof = true;
            break;
        }
        lines += 1;
    }
    let is_ndjson = ndjson(&first_lines(&head), first_line_whole(&head, eof));
    let skip = if head.starts_with(BOM) { BOM.len() } else { 0 };
    let mut reader = io::Cursor::new(head).chain(reader);
    reader.consume(skip);
    if !is_ndjson {
        locate(router, file, None, None);
        let mark = StreamMark::default();
        let guarded = Guarded {
            inner: reader,
            mark: &mark,
        };
        let mut ctx = JsonContext::new(&mut scratch.json, ids, router);
        ctx.mark = Some(&mark);
        // serde_json reads a byte at a time: from a buffer, which fills from the guard in bulk.
        let result = explode_reader(io::BufReader::with_capacity(64 << 10, guarded), &mut ctx);
        router.counts.records_met += ctx.records;
        return text_done(file, result, at());
    }
    let mut buf = std::mem::take(&mut scratch.buf);
    let mut line_no = 0u64;
    let result = loop {
        if router.disconnected {
            break Ok(());
        }
        let line = match read_line(&mut reader, &mut buf) {
            Ok(Some(line)) => line,
            Ok(None) => break Ok(()),
            Err(e) => break Err(fail(e, Some(line_no + 1))),
        };
        line_no += 1;
        match line {
            Line::Text(text) => explode_line(
                file,
                text,
                Some(line_no),
                None,
                &mut scratch.json,
                ids,
                router,
            ),
            Line::TooLong(len) => {
                locate(router, file, Some(line_no), None);
                too_long(router, len);
            }
        }
    };
    scratch.buf = buf;
    result
}

/// One NDJSON line: its records, or a reject if it is not valid JSON. Each line is at least
/// one record met.
fn explode_line(
    file: &InputFile,
    text: &[u8],
    line: Option<u64>,
    offset: Option<u64>,
    json: &mut JsonScratch,
    ids: &mut dyn PropertyIds,
    router: &mut Router<'_>,
) {
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    if text.trim_ascii().is_empty() {
        return;
    }
    locate(router, file, line, offset);
    let mut ctx = JsonContext::new(json, ids, router);
    let result = explode_slice(text, &mut ctx);
    let records = ctx.records;
    router.counts.records_met += records;
    if let Err(e) = result {
        router.counts.records_met += 1;
        let reason = format!(
            "invalid JSON at column {}: {}",
            e.column(),
            strip_position(&e)
        );
        router.reject(records, &reason);
    }
}

/// A line too long to read: one record, rejected.
fn too_long(router: &mut Router<'_>, len: u64) {
    router.counts.records_met += 1;
    router.reject(
        0,
        &format!(
            "the line is {}, longer than the {} one record may hold; it was skipped",
            crate::units::format_bytes(len),
            crate::units::format_bytes(MAX_RECORD_BYTES as u64)
        ),
    );
}

/// A whole text's outcome: a syntax error (or a failed read) hides the records after it.
fn text_done(file: &InputFile, result: serde_json::Result<()>, at: Option<u64>) -> Result<()> {
    let Err(e) = result else {
        return Ok(());
    };
    if e.is_io() {
        let line = e.line() as u64;
        return Err(decode_error(
            file,
            io::Error::other(strip_position(&e)),
            Some(line),
            at,
        ));
    }
    let place = format!("line {} column {}", e.line(), e.column());
    let what = if e.is_eof() {
        "the JSON text ends early (the file is cut?)"
    } else {
        "the JSON text stops parsing"
    };
    Err(Error::Input {
        path: file.path.clone(),
        reason: format!(
            "{what} at {place}{}: {}; the records after that point cannot be counted",
            at.map(|b| format!(" (after {b} bytes of the file)"))
                .unwrap_or_default(),
            strip_position(&e)
        ),
    })
}

/// A stream that could not be read on: decompression failed, a record was too long, or the
/// file changed.
fn decode_error(file: &InputFile, e: io::Error, line: Option<u64>, at: Option<u64>) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof && e.to_string().contains("changed while") {
        return read_error(file, e);
    }
    let place = match (line, at) {
        (Some(l), Some(b)) => format!(" at line {l} (after {b} bytes of the file)"),
        (Some(l), None) => format!(" at line {l}"),
        (None, Some(b)) => format!(" after {b} bytes of the file"),
        (None, None) => String::new(),
    };
    let what = match file.format {
        Format::Gzip | Format::Zstd => "cannot decompress",
        _ => "cannot read",
    };
    Error::Input {
        path: file.path.clone(),
        reason: format!("{what}{place}: {e}; the records after that point cannot be counted"),
    }
}

/// An I/O error reading an input: a file that changed while it was read is bad input (the
/// run cannot be complete), anything else the operating system's.
pub(super) fn read_error(file: &InputFile, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return Error::Input {
            path: file.path.clone(),
            reason: e.to_string(),
        };
    }
    Error::io(&file.path, e)
}

/// serde_json's message without its trailing " at line L column C".
fn strip_position(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is(text: &str) -> bool {
        ndjson(&first_lines(text.as_bytes()), true)
    }

    #[test]
    fn ndjson_is_told_from_one_text_by_its_first_lines() {
        let good = r#"{"vid": 1, "properties": {}}"#;
        assert!(is(&format!("{good}\n{good}\n")));
        assert!(
            is(&format!("\u{feff}{good}\n{good}\n")),
            "a byte-order mark"
        );
        assert!(
            is(&format!("{{\"vid\": 1, \"prop\n{good}\n{good}\n")),
            "a cut first line"
        );
        assert!(
            is(&format!("not json\n{good}\n{good}\n{good}\n")),
            "a garbled first line"
        );
        assert!(
            is(r#"{"vid": 1, "properties": {"#),
            "one cut line is one record"
        );
        assert!(is(&format!("[{good}, {good}]\n")), "an array on one line");
        assert!(
            !is(&format!("[\n{good},\n{good}\n]\n")),
            "an array, one record a line"
        );
        assert!(!is(
            "{\n  \"results\": [\n    {\"vid\": 1},\n    {\"vid\": 2}\n  ]\n}\n"
        ));
        assert!(!is(
            "{\n  \"vid\": 1,\n  \"properties\": {}\n}\n{\n  \"vid\": 2\n}\n"
        ));
        assert!(!is(""));
        // A first line past the look is a document, read as a stream of values.
        let huge = format!("{{\"results\": [{good}, {good}");
        assert!(!ndjson(&first_lines(huge.as_bytes()), false));
        assert!(first_line_whole(b"\n\n{}\n{", false));
        assert!(!first_line_whole(b"\n\n{\"a\": ", false));
        assert!(first_line_whole(b"{}", true));
    }
}
