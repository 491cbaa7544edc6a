//! Source: an input file's bytes, wherever they live, by offset.
//!
//! Takes a local file or (feature `s3`) an S3 object; gives [`RandomAccess`]: positioned reads
//! that many threads may make at once, and [`Reader`], a sequential [`Read`] over them. Local
//! files are read with `pread`; S3 objects with ranged GETs, so a Parquet split fetches its
//! footer and then only the column chunks it decodes, and an NDJSON split only its range.
//!
//! Every reader above this (NDJSON lines, whole texts, Parquet) works on a [`Handle`], so local
//! and remote inputs go through the same code.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};

/// Positioned reads of an immutable byte sequence.
pub trait RandomAccess: Send + Sync + std::fmt::Debug {
    /// The length in bytes.
    fn len(&self) -> u64;

    /// Whether the source is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Why the bytes read are not all of one version, if they are not (a remote object
    /// replaced while it was read); a local file is checked by its size and time instead.
    fn changed(&self) -> Option<String> {
        None
    }

    /// Reads up to `buf.len()` bytes at `offset`; 0 at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Exactly `len` bytes at `offset`.
    fn get_bytes(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let mut buf = vec![0; len];
        let mut got = 0;
        while got < len {
            match self.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(buf.into())
    }

    /// Bytes worth asking for at a time when reading sequentially.
    fn read_size(&self) -> usize {
        1 << 20
    }
}

/// A shared source.
pub type Handle = Arc<dyn RandomAccess>;

/// A local file read by `pread`.
#[derive(Debug)]
pub struct LocalFile {
    file: File,
    len: u64,
}

impl LocalFile {
    pub fn new(file: File) -> io::Result<LocalFile> {
        let len = file.metadata()?.len();
        Ok(LocalFile { file, len })
    }

    /// Opens `path` as a [`Handle`].
    pub fn open(path: &std::path::Path) -> io::Result<Handle> {
        Ok(Arc::new(LocalFile::new(File::open(path)?)?))
    }
}

impl RandomAccess for LocalFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    fn get_bytes(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let mut buf = vec![0; len];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf.into())
    }
}

/// The error for a source that ends at `at`, before the `len` bytes it had when opened: it
/// was cut (or rewritten) while being read.
pub fn cut_short(at: u64, len: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!(
            "it ends at byte {at}, before the {len} bytes it had when it was opened: it changed while it was read"
        ),
    )
}

/// A sequential reader from an offset. Unbuffered: wrap it in a `BufReader` of
/// [`RandomAccess::read_size`] so that each read is one large request.
#[derive(Debug)]
pub struct Reader {
    source: Handle,
    pos: u64,
}

impl Reader {
    pub fn new(source: Handle, pos: u64) -> Reader {
        Reader { source, pos }
    }

    /// A buffered reader sized for the source.
    pub fn buffered(source: Handle, pos: u64) -> io::BufReader<Reader> {
        let size = source.read_size();
        io::BufReader::with_capacity(size, Reader::new(source, pos))
    }
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.source.read_at(buf, self.pos)?;
        if n == 0 && !buf.is_empty() && self.pos < self.source.len() {
            return Err(cut_short(self.pos, self.source.len()));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// A file read by positioned reads. The parquet crate's reader for `File` duplicates the
/// descriptor, seeks and closes for every column chunk: four system calls each, for some
/// 300,000 chunks in a wide dump. This reads in one call and shares the descriptor; for an S3
/// object, each read is one ranged GET.
#[derive(Clone, Debug)]
pub struct PreadFile {
    file: Handle,
}

impl PreadFile {
    pub fn new(file: Handle) -> Self {
        PreadFile { file }
    }

    /// The source read.
    pub fn source(&self) -> &Handle {
        &self.file
    }
}

impl Length for PreadFile {
    fn len(&self) -> u64 {
        self.file.len()
    }
}

impl ChunkReader for PreadFile {
    type T = io::BufReader<Reader>;

    fn get_read(&self, start: u64) -> Result<io::BufReader<Reader>, ParquetError> {
        // The page reader asks for a reader per page and reads its header through it (then
        // the page by `get_bytes`): a small buffer, enough for a header in one request.
        let size = (self.file.read_size() / 64).max(8 << 10);
        Ok(io::BufReader::with_capacity(
            size,
            Reader::new(self.file.clone(), start),
        ))
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes, ParquetError> {
        Ok(self.file.get_bytes(start, length)?)
    }
}

/// An object an `--input` value names in an object store.
#[derive(Debug)]
pub struct Found {
    /// Its URL, for messages and manifests.
    pub name: String,
    pub size: u64,
    /// Its first bytes (all of a small object), to recognise its format.
    pub head: bytes::Bytes,
    /// Its bytes for positioned reads, pinned to the version found.
    pub handle: Handle,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_reads_a_local_file_from_an_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello, world").unwrap();
        let handle = LocalFile::open(&path).unwrap();
        assert_eq!(handle.len(), 12);
        let mut text = String::new();
        Reader::buffered(handle.clone(), 7)
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "world");
        assert_eq!(&handle.get_bytes(0, 5).unwrap()[..], b"hello");
        assert!(handle.get_bytes(10, 5).is_err());
    }
}
