//! Container logs archived when a run ends, so they outlive the Job (TTL,
//! `--delete-after`, cancel): the last [`ARCHIVE_LIMIT`] bytes of each
//! container, gzip-compressed, in the catalog next to the run.

use std::io::{Read, Write};

use serde::Serialize;

use crate::error::{Error, Result};

/// Most bytes kept per container (the end of its log).
pub const ARCHIVE_LIMIT: usize = 1024 * 1024;

/// One container's archived log.
#[derive(Debug, Clone, Serialize)]
pub struct ArchivedLog {
    pub unit: String,
    pub container: String,
    pub text: String,
    /// The log was longer than [`ARCHIVE_LIMIT`]; `text` is its end.
    pub truncated: bool,
}

impl ArchivedLog {
    /// Its text, or only its last `lines` lines (`tail`).
    pub fn tail(&self, lines: Option<u64>) -> String {
        let all: Vec<&str> = self.text.split_inclusive('\n').collect();
        let skip = lines.map_or(0, |t| all.len().saturating_sub(usize::try_from(t).unwrap_or(usize::MAX)));
        all[skip..].concat()
    }
}

/// Keep the last [`ARCHIVE_LIMIT`] bytes of `text`, cut at a line start.
pub fn bounded(text: &str) -> (String, bool) {
    if text.len() <= ARCHIVE_LIMIT {
        return (text.to_owned(), false);
    }
    let mut start = text.len() - ARCHIVE_LIMIT;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let start = text[start..].find('\n').map_or(start, |i| start + i + 1);
    (text[start..].to_owned(), true)
}

pub(crate) fn compress(text: &str) -> Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).map_err(Error::io("compressing a log"))?;
    gz.finish().map_err(Error::io("compressing a log"))
}

pub(crate) fn decompress(unit: &str, container: &str, data: &[u8]) -> Result<String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(data)
        .read_to_string(&mut text)
        .map_err(Error::io(format!("reading the archived log of {unit}/{container} (damaged)")))?;
    Ok(text)
}
