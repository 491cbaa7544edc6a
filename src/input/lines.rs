//! Lines of a file or a stream, each at most [`MAX_RECORD_BYTES`]: a longer line is skipped
//! without being held in memory, and reported by its length.
//!
//! [`LineReader`] reads a range of a file by positioned reads into one reused buffer of about
//! [`CHUNK`] bytes (more only while a single line is longer, up to the maximum). A file that
//! ends before the length it had when opened changed while it was read: that is an error,
//! never a quiet end. [`read_line`] does the same for a decompressing stream.

use std::io::{self, BufRead, Read};

use crate::explode::MAX_RECORD_BYTES;
use crate::source::RandomAccess;

/// Bytes read at a time from an NDJSON range.
pub(crate) const CHUNK: usize = 4 << 20;

/// A UTF-8 byte-order mark, which some tools write at the start of a text file.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One line, without its `\n`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    Text(&'a [u8]),
    /// A line longer than [`MAX_RECORD_BYTES`], skipped: its length in bytes.
    TooLong(u64),
}

/// Lines of a file from an offset, through one reused buffer.
pub(crate) struct LineReader<'f> {
    file: &'f dyn RandomAccess,
    buf: &'f mut Vec<u8>,
    /// File offset of `buf[0]`.
    base: u64,
    /// Consumed bytes at the front of `buf`.
    pos: usize,
    eof: bool,
}

impl<'f> LineReader<'f> {
    pub(crate) fn new(file: &'f dyn RandomAccess, buf: &'f mut Vec<u8>, offset: u64) -> Self {
        buf.clear();
        LineReader {
            file,
            buf,
            base: offset,
            pos: 0,
            eof: false,
        }
    }

    /// Reads more: moves the unconsumed tail to the front, then appends up to a chunk.
    fn fill(&mut self) -> io::Result<()> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
        }
        let have = self.buf.len();
        self.buf.resize(have + CHUNK, 0);
        let mut got = 0;
        while got < CHUNK {
            let at = self.base + (have + got) as u64;
            match self.file.read_at(&mut self.buf[have + got..], at) {
                Ok(0) => {
                    self.buf.truncate(have + got);
                    if at < self.file.len() {
                        return Err(crate::source::cut_short(at, self.file.len()));
                    }
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.buf.truncate(have + got);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The next line and its file offset; the last line may lack a `\n`.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<(u64, Line<'_>)>> {
        let mut searched = 0;
        loop {
            let from = self.pos + searched;
            if let Some(nl) = memchr::memchr(b'\n', &self.buf[from..]) {
                let start = self.pos;
                self.pos = from + nl + 1;
                let line = &self.buf[start..from + nl];
                return Ok(Some((self.base + start as u64, Line::Text(line))));
            }
            if self.eof {
                if self.pos < self.buf.len() {
                    let start = self.pos;
                    self.pos = self.buf.len();
                    return Ok(Some((
                        self.base + start as u64,
                        Line::Text(&self.buf[start..]),
                    )));
                }
                return Ok(None);
            }
            if self.buf.len() - self.pos > MAX_RECORD_BYTES {
                return self.skip_line().map(Some);
            }
            searched = self.buf.len() - self.pos;
            self.fill()?;
        }
    }

    /// Skips the rest of a line too long to hold, a chunk at a time.
    fn skip_line(&mut self) -> io::Result<(u64, Line<'_>)> {
        let offset = self.base + self.pos as u64;
        let mut len = (self.buf.len() - self.pos) as u64;
        loop {
            self.pos = self.buf.len();
            self.fill()?;
            if let Some(nl) = memchr::memchr(b'\n', self.buf) {
                self.pos = nl + 1;
                return Ok((offset, Line::TooLong(len + nl as u64)));
            }
            len += self.buf.len() as u64;
            if self.eof {
                self.pos = self.buf.len();
                return Ok((offset, Line::TooLong(len)));
            }
        }
    }
}

/// Hands `each` the lines of `file` that start in `[start, end)` with their offsets (a line
/// belongs to the range its first byte is in: the one a range starts inside is the previous
/// range's), the file's first without its byte-order mark, until `each` says `false`.
pub(crate) fn range_lines(
    file: &dyn RandomAccess,
    buf: &mut Vec<u8>,
    start: u64,
    end: u64,
    mut each: impl FnMut(u64, Line<'_>) -> bool,
) -> io::Result<()> {
    let mut lines = LineReader::new(file, buf, start.saturating_sub(1));
    if start > 0 && lines.next_line()?.is_none() {
        return Ok(());
    }
    while let Some((offset, line)) = lines.next_line()? {
        if offset >= end {
            break;
        }
        let line = match line {
            Line::Text(text) if offset == 0 => Line::Text(text.strip_prefix(BOM).unwrap_or(text)),
            line => line,
        };
        if !each(offset, line) {
            break;
        }
    }
    Ok(())
}

/// The next line of a stream into `buf` (without its `\n`), at most [`MAX_RECORD_BYTES`]; a
/// longer one is skipped to its end. `None` at the end of the stream.
pub(crate) fn read_line<'b>(
    r: &mut impl BufRead,
    buf: &'b mut Vec<u8>,
) -> io::Result<Option<Line<'b>>> {
    buf.clear();
    let n = Read::take(&mut *r, MAX_RECORD_BYTES as u64 + 1).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Ok(Some(Line::Text(buf)));
    }
    if buf.len() <= MAX_RECORD_BYTES {
        return Ok(Some(Line::Text(buf))); // the last line, without a newline
    }
    let mut len = buf.len() as u64;
    buf.clear();
    buf.shrink_to(CHUNK);
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        if let Some(nl) = memchr::memchr(b'\n', chunk) {
            len += nl as u64;
            r.consume(nl + 1);
            break;
        }
        let taken = chunk.len();
        len += taken as u64;
        r.consume(taken);
    }
    Ok(Some(Line::TooLong(len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::LocalFile;

    fn lines_of(bytes: &[u8], offset: u64) -> Vec<(u64, Option<Vec<u8>>, u64)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, bytes).unwrap();
        let file = LocalFile::open(&path).unwrap();
        let mut buf = Vec::new();
        let mut lines = LineReader::new(file.as_ref(), &mut buf, offset);
        let mut out = Vec::new();
        while let Some((at, line)) = lines.next_line().unwrap() {
            out.push(match line {
                Line::Text(t) => (at, Some(t.to_vec()), t.len() as u64),
                Line::TooLong(n) => (at, None, n),
            });
        }
        out
    }

    #[test]
    fn lines_with_offsets_and_a_last_line_without_newline() {
        let got = lines_of(b"ab\n\ncd", 0);
        assert_eq!(
            got,
            [
                (0, Some(b"ab".to_vec()), 2),
                (3, Some(vec![]), 0),
                (4, Some(b"cd".to_vec()), 2)
            ]
        );
        assert_eq!(lines_of(b"ab\ncd\n", 3), [(3, Some(b"cd".to_vec()), 2)]);
    }

    #[test]
    fn a_line_past_the_maximum_is_skipped_by_its_length() {
        let long = MAX_RECORD_BYTES + CHUNK + 17;
        let mut bytes = b"x\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'a', long));
        bytes.extend_from_slice(b"\nlast\n");
        let got = lines_of(&bytes, 0);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1], (2, None, long as u64));
        assert_eq!(got[2], (long as u64 + 3, Some(b"last".to_vec()), 4));

        let mut stream = io::BufReader::new(&bytes[..]);
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut stream, &mut buf).unwrap(),
            Some(Line::Text(b"x"))
        );
        assert_eq!(
            read_line(&mut stream, &mut buf).unwrap(),
            Some(Line::TooLong(long as u64))
        );
        assert!(buf.capacity() <= 2 * MAX_RECORD_BYTES + CHUNK);
        assert_eq!(
            read_line(&mut stream, &mut buf).unwrap(),
            Some(Line::Text(b"last"))
        );
        assert_eq!(read_line(&mut stream, &mut buf).unwrap(), None);
    }

    #[test]
    fn a_file_cut_while_it_is_read_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![b'a'; CHUNK * 2]).unwrap();
        let file = LocalFile::open(&path).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(100)
            .unwrap();
        let mut buf = Vec::new();
        let mut lines = LineReader::new(file.as_ref(), &mut buf, 0);
        let err = lines.next_line().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(
            err.to_string().contains("changed while it was read"),
            "{err}"
        );
    }
}
