//! Opening one input: compression by magic bytes (never by file name), byte
//! counting for throughput, and the first look that tells JSON from text from binary.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;

use crate::error::OpenError;

/// How many decompressed bytes the first look reads.
const PEEK: usize = 64 * 1024;

/// Counts the bytes read from the underlying file (compressed bytes for gzip).
pub(crate) struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// What the first bytes of the (decompressed) stream look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    Json,
    Text,
}

/// An opened input: the bytes already read for the first look, then the rest.
pub(crate) struct Input {
    pub prefix: Vec<u8>,
    pub rest: Box<dyn Read + Send>,
    pub gzip: bool,
    pub shape: Shape,
    pub file_bytes: Arc<AtomicU64>,
}

pub(crate) fn open(path: &Path) -> Result<Input, OpenError> {
    let file = File::open(path).map_err(|source| OpenError::Io {
        path: path.to_owned(),
        source,
    })?;
    from_reader(path, Box::new(file))
}

/// Like [`open`] for bytes from anywhere (an S3 object, an HTTP body, a fuzzer);
/// `name` is what errors call it.
pub(crate) fn from_reader(name: &Path, reader: Box<dyn Read + Send>) -> Result<Input, OpenError> {
    let path = name;
    let io_err = |source| OpenError::Io {
        path: path.to_owned(),
        source,
    };
    let file_bytes = Arc::new(AtomicU64::new(0));
    let mut file = Counting {
        inner: reader,
        count: file_bytes.clone(),
    };
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut file, &mut magic).map_err(io_err)?;
    if got == 0 {
        return Err(OpenError::Empty {
            path: path.to_owned(),
        });
    }
    let magic = &magic[..got];
    if let Some(what) = unsupported_container(magic) {
        return Err(OpenError::Unsupported {
            path: path.to_owned(),
            what: what.into(),
        });
    }
    let head = io::Cursor::new(magic.to_vec());
    let gzip = magic.starts_with(&[0x1f, 0x8b]);
    let mut rest: Box<dyn Read + Send> = if gzip {
        Box::new(MultiGzDecoder::new(head.chain(file)))
    } else {
        Box::new(head.chain(file))
    };
    let mut prefix = vec![0u8; PEEK];
    let n = match read_up_to(&mut rest, &mut prefix) {
        Ok(n) => n,
        // A gzip stream so damaged that not even the first bytes come out.
        Err(e) if gzip => {
            return Err(OpenError::Unrecognized {
                path: path.to_owned(),
                why: format!("gzip stream is corrupt before any data: {e}"),
            })
        }
        Err(e) => return Err(io_err(e)),
    };
    prefix.truncate(n);
    if n == 0 {
        return Err(OpenError::Empty {
            path: path.to_owned(),
        });
    }
    if gzip {
        if let Some(what) = unsupported_container(&prefix) {
            return Err(OpenError::Unsupported {
                path: path.to_owned(),
                what: format!("{what} inside gzip"),
            });
        }
    }
    if let Some(what) = binary_evidence(&prefix) {
        return Err(OpenError::Binary {
            path: path.to_owned(),
            what,
        });
    }
    let first = prefix
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(&prefix)
        .iter()
        .find(|b| !b.is_ascii_whitespace());
    let shape = match first {
        Some(b'{' | b'[') => Shape::Json,
        Some(_) => Shape::Text,
        None => {
            return Err(OpenError::Empty {
                path: path.to_owned(),
            })
        }
    };
    Ok(Input {
        prefix,
        rest,
        gzip,
        shape,
        file_bytes,
    })
}

/// Fills `buf` as far as the reader allows; a short count means end of input.
pub(crate) fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn unsupported_container(magic: &[u8]) -> Option<&'static str> {
    if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd compression")
    } else if magic.starts_with(b"BZh") {
        Some("bzip2 compression")
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X']) {
        Some("xz compression")
    } else if magic.starts_with(b"PK\x03\x04") {
        Some("a zip archive")
    } else if magic.starts_with(b"PAR1") {
        Some("Parquet (flow logs delivered as Parquet)")
    } else {
        None
    }
}

/// Telemetry is text: a NUL byte, or many control bytes, in the first look means the
/// file is something else.
fn binary_evidence(head: &[u8]) -> Option<String> {
    let sample = &head[..head.len().min(4096)];
    if let Some(at) = memchr::memchr(0, sample) {
        return Some(format!("a NUL byte at offset {at}"));
    }
    let control = sample
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c))
        .count();
    (control * 20 > sample.len()).then(|| {
        format!(
            "{control} control bytes in the first {} bytes",
            sample.len()
        )
    })
}
