//! Readers between a file's bytes and the JSON parser: gzip members, a count of the bytes a
//! decoder has taken (for messages), and a bound on the bytes one record of a streamed text
//! may take.

use std::cell::Cell;
use std::io::{self, BufRead, Read};
use std::rc::Rc;

use crate::explode::MAX_RECORD_BYTES;
use crate::explode::json::StreamMark;

/// gzip members one after another, as `gzip -d` reads them. Zero bytes after the last member
/// (padding that some writers and block devices leave) end the stream, as `gzip -d` ends it;
/// any other trailing byte is an error.
pub(crate) struct GzMembers<R: BufRead> {
    member: Option<flate2::bufread::GzDecoder<R>>,
}

impl<R: BufRead> GzMembers<R> {
    pub(crate) fn new(r: R) -> Self {
        GzMembers {
            member: Some(flate2::bufread::GzDecoder::new(r)),
        }
    }
}

impl<R: Read> GzMembers<io::BufReader<R>> {
    /// Over an unbuffered reader, read 32 KiB at a time (as flate2's own decoder does: the
    /// sample's estimate of a file's records counts the compressed bytes taken).
    pub(crate) fn over(r: R) -> Self {
        GzMembers::new(io::BufReader::with_capacity(32 << 10, r))
    }
}

impl<R: BufRead> Read for GzMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(member) = self.member.as_mut() else {
                return Ok(0);
            };
            let n = member.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let mut rest = self.member.take().expect("checked above").into_inner();
            if another_member(&mut rest)? {
                self.member = Some(flate2::bufread::GzDecoder::new(rest));
            }
        }
    }
}

/// After a member: whether another begins (`false`: the end, past any zero padding).
fn another_member(r: &mut impl BufRead) -> io::Result<bool> {
    loop {
        let rest = r.fill_buf()?;
        match rest.first() {
            None => return Ok(false),
            Some(0x1f) => return Ok(true),
            Some(0) => {
                let zeros = rest.iter().take_while(|&&b| b == 0).count();
                r.consume(zeros);
            }
            Some(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bytes after the end of the gzip stream that are neither another gzip member nor zero padding",
                ));
            }
        }
    }
}

/// Counts the bytes read through it (a decoder's input, for a message's byte offset).
pub(crate) struct Counted<R> {
    pub(crate) inner: R,
    pub(crate) count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// A streamed JSON text: reading fails once one record has taken more than
/// [`MAX_RECORD_BYTES`] (the parser marks where each record starts in `mark`), so that a
/// huge value never fills memory. Read it through a buffer (serde_json reads a byte at a
/// time); the bound is then exact to within the buffer's size.
pub(crate) struct Guarded<'m, R> {
    pub(crate) inner: R,
    pub(crate) mark: &'m StreamMark,
}

impl<R: Read> Read for Guarded<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let at = self.mark.pos.get();
        if at - self.mark.record_start.get() > MAX_RECORD_BYTES as u64 {
            return Err(io::Error::other(format!(
                "the record starting at byte {} (after decompression) is longer than {}, the most one record may hold",
                self.mark.record_start.get(),
                crate::units::format_bytes(MAX_RECORD_BYTES as u64)
            )));
        }
        let n = self.inner.read(buf)?;
        self.mark.pos.set(at + n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(text: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text).unwrap();
        e.finish().unwrap()
    }

    fn decode(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        GzMembers::new(io::BufReader::new(bytes)).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn members_in_a_row_and_zero_padding_after_them() {
        let mut two = gz(b"one\n");
        two.extend(gz(b"two\n"));
        assert_eq!(decode(&two).unwrap(), b"one\ntwo\n");
        let mut padded = two.clone();
        padded.extend(vec![0; 100_000]);
        assert_eq!(decode(&padded).unwrap(), b"one\ntwo\n");
        let mut garbage = two.clone();
        garbage.extend(b"\0\0junk");
        let err = decode(&garbage).unwrap_err();
        assert!(
            err.to_string().contains("after the end of the gzip stream"),
            "{err}"
        );
        let cut = &two[..two.len() - 5];
        assert!(decode(cut).is_err());
    }

    #[test]
    fn a_guard_stops_a_record_past_the_maximum() {
        let mark = StreamMark::default();
        let mut g = Guarded {
            inner: io::repeat(b'x'),
            mark: &mark,
        };
        let mut sink = Vec::new();
        let err = g.read_to_end(&mut sink).unwrap_err();
        assert!(sink.len() > MAX_RECORD_BYTES);
        assert!(err.to_string().contains("the most one record may hold"));
        // A new record starts the count again.
        mark.record_start.set(mark.pos.get());
        let mut byte = [0u8; 1];
        assert_eq!(g.read(&mut byte).unwrap(), 1);
    }
}
