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

/// Positioned reads of an immutable byte sequence.
pub trait RandomAccess: Send + Sync + std::fmt::Debug {
    /// The length in bytes.
    fn len(&self) -> u64;

    /// Whether the source is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
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

/// Access to object stores, connected on first use: a run that reads and writes only local
/// files never loads AWS configuration.
#[derive(Debug, Default)]
pub struct Stores {
    #[cfg(feature = "s3")]
    config: crate::s3::S3Config,
    #[cfg(feature = "s3")]
    s3: std::sync::OnceLock<Arc<crate::s3::S3>>,
}

impl Stores {
    /// Stores reached through `endpoint` (an S3-compatible store; `None`: AWS's own, or
    /// `AWS_ENDPOINT_URL`). Without the `s3` feature the endpoint is unused.
    pub fn with_endpoint(endpoint: Option<String>) -> Stores {
        #[cfg(feature = "s3")]
        {
            Stores {
                config: crate::s3::S3Config { endpoint },
                s3: std::sync::OnceLock::new(),
            }
        }
        #[cfg(not(feature = "s3"))]
        {
            let _ = endpoint;
            Stores {}
        }
    }

    /// The S3 client.
    #[cfg(feature = "s3")]
    pub fn s3(&self) -> crate::Result<Arc<crate::s3::S3>> {
        if let Some(s3) = self.s3.get() {
            return Ok(s3.clone());
        }
        let s3 = crate::s3::S3::connect(&self.config)?;
        Ok(self.s3.get_or_init(|| s3).clone())
    }
}

/// The error for an `s3://` location in a build without the `s3` feature.
pub fn no_s3(location: &str) -> crate::Error {
    crate::Error::Config(format!(
        "{location}: this skewer was built without S3 support (cargo feature \"s3\")"
    ))
}

/// `f` over `items` on up to `workers` threads, results in the order of `items`. For work that
/// waits (requests to a store), not for CPU work.
pub fn par_map<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    let next = AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .expect("every item mapped")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn par_map_keeps_the_order_of_its_items() {
        let items: Vec<u64> = (0..1000).collect();
        let squares = par_map(&items, 7, |x| x * x);
        assert_eq!(squares, items.iter().map(|x| x * x).collect::<Vec<_>>());
        assert!(par_map(&[] as &[u8], 4, |x| *x).is_empty());
    }

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
