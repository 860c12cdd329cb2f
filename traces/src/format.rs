//! The on-disk layout of a trace file, its header, and the errors reading or writing one
//! can produce.
//!
//! A trace must survive the simulator being killed midway and still be seekable by cycle,
//! so it is a header followed by self-delimiting, checksummed chunks, with an index at the
//! end that a reader uses when present and rebuilds by scanning when not. All integers are
//! little-endian.
//!
//! ```text
//! offset  size  field
//! ------  ----  ---------------------------------------------------------------
//!      0     8  magic "SMMTRACE"
//!      8     2  format version (u16)
//!     10     4  header length H (u32)
//!     14     H  bincode Header
//!             then any number of chunks:
//!      +0     4  magic "CHNK"
//!      +4     4  payload length P (u32)
//!      +8     4  event count (u32)
//!     +12     8  first cycle (u64)
//!     +20     8  last cycle (u64)
//!     +28     4  CRC-32 of bytes +0..+28 and of the payload
//!     +32     P  bincode events, one after another
//!             then, once the writer finishes, the index:
//!      +0     4  magic "INDX"
//!      +4     4  entry count N (u32)
//!      +8  28*N  entries: chunk offset u64, first cycle u64, last cycle u64, count u32
//!             and the footer, the last 16 bytes of the file:
//!      +0     4  magic "TEND"
//!      +4     8  offset of the index (u64)
//!     +12     4  CRC-32 of the index bytes
//! ```
//!
//! Reading goes:
//! 1. check the magic and version, decode the header;
//! 2. if the footer and index check out and every entry matches its chunk header, use them;
//! 3. otherwise scan from the first chunk, keeping every chunk whose CRC matches and counting
//!    the rest as dropped bytes;
//! 4. decode events lazily, chunk by chunk, checking each chunk's CRC before decoding it.

use std::path::PathBuf;

use crate::time::Cycle;

/// The first eight bytes of every trace file.
pub const FILE_MAGIC: [u8; 8] = *b"SMMTRACE";
/// The format version this crate writes and reads; bumped on any layout change.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes before the bincode header: magic, version, header length.
pub const FILE_PREFIX_BYTES: usize = 14;
/// The first four bytes of every chunk.
pub const CHUNK_MAGIC: [u8; 4] = *b"CHNK";
/// Bytes in a chunk header, up to and including its CRC.
pub const CHUNK_HEADER_BYTES: usize = 32;
/// The first four bytes of the index.
pub const INDEX_MAGIC: [u8; 4] = *b"INDX";
/// Bytes in the index before its entries: magic and entry count.
pub const INDEX_PREFIX_BYTES: usize = 8;
/// Bytes in one index entry.
pub const INDEX_ENTRY_BYTES: usize = 28;
/// The first four bytes of the footer.
pub const FOOTER_MAGIC: [u8; 4] = *b"TEND";
/// Bytes in the footer, which is always the end of a finished file.
pub const FOOTER_BYTES: usize = 16;
/// The largest encoded header or single event accepted, in bytes.
///
/// bincode allocates a string's length before reading it, so without a limit a corrupted
/// length prefix could ask for exabytes; with one it is a decode error instead.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// The bincode configuration used for the header and every event.
pub(crate) fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD_BYTES>()
}

/// What machine and run a trace describes, written once at the start of the file so a
/// viewer can label its output without the scenario file.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Header {
    /// The smmsim version that wrote the trace.
    pub smmsim_version: String,
    /// CPUs present at power-on.
    pub cpus: u32,
    /// CPUs the machine can hold after hot-add.
    pub max_cpus: u32,
    /// Core clock rate, for turning cycles into time.
    pub clock_hz: u64,
    /// Name of the memory/SMRAM layout.
    pub layout: String,
    /// Name of the firmware profile.
    pub profile: String,
    /// Name of the SMM strategy under test.
    pub strategy: String,
    /// Hash of the scenario file, to match a trace to the scenario that made it.
    pub scenario_hash: u64,
}

/// Where a chunk lies and which events it holds: one index entry.
///
/// Exists so readers can seek by cycle and viewers can show a trace's extent without
/// decoding events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkInfo {
    /// Byte offset of the chunk's magic in the file.
    pub offset: u64,
    /// Cycle of the chunk's first event.
    pub first_cycle: Cycle,
    /// Cycle of the chunk's last event.
    pub last_cycle: Cycle,
    /// Number of events in the chunk.
    pub event_count: u32,
}

/// Everything that can go wrong writing or reading a trace.
///
/// One enum for the crate so callers match on one type; each message names the byte offset
/// and the expected and found values where there are any.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The trace file could not be opened or mapped.
    #[error("cannot open trace {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing to the output failed.
    #[error("cannot write trace at byte offset {offset}")]
    Write {
        /// Where the write started.
        offset: u64,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file ends inside a structure.
    #[error("{what} at byte offset {offset} needs {needed} bytes but only {available} remain")]
    Truncated {
        /// The structure being read.
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// How many bytes it needs.
        needed: u64,
        /// How many the file has from `offset`.
        available: u64,
    },
    /// A magic number did not match.
    #[error("{what} at byte offset {offset}: expected magic {expected:?}, found {found:?}")]
    BadMagic {
        /// The structure being read.
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// The magic that should be there.
        expected: &'static str,
        /// The bytes that are there, escaped.
        found: String,
    },
    /// The file was written in a format version this reader does not read.
    #[error("trace format version {found} is not supported: this reader reads version {expected}")]
    VersionMismatch {
        /// The version this crate reads.
        expected: u16,
        /// The version in the file.
        found: u16,
    },
    /// The header or an event could not be decoded.
    #[error("cannot decode {what} at byte offset {offset}")]
    Decode {
        /// The structure being decoded.
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// bincode's reason.
        #[source]
        source: bincode::error::DecodeError,
    },
    /// The header or an event could not be encoded.
    #[error("cannot encode {what}")]
    Encode {
        /// The structure being encoded.
        what: &'static str,
        /// bincode's reason.
        #[source]
        source: bincode::error::EncodeError,
    },
    /// Something is bigger than the format allows.
    #[error("{what} is {bytes} bytes, more than the limit of {limit}")]
    TooLarge {
        /// The structure.
        what: &'static str,
        /// Its size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// A chunk passed to the writer was not in (cycle, cpu) order.
    #[error(
        "event {position} of the chunk (cycle {found_cycle}, cpu {found_cpu}) comes before \
         the event preceding it (cycle {previous_cycle}, cpu {previous_cpu})"
    )]
    OutOfOrder {
        /// Index of the offending event in the slice passed to the writer.
        position: usize,
        /// Cycle of the previous event (possibly from an earlier chunk).
        previous_cycle: u64,
        /// CPU of the previous event.
        previous_cpu: u32,
        /// Cycle of the offending event.
        found_cycle: u64,
        /// CPU of the offending event.
        found_cpu: u32,
    },
    /// A checksum did not match.
    #[error(
        "{what} at byte offset {offset}: expected CRC-32 {expected:#010x}, found {found:#010x}"
    )]
    BadCrc {
        /// The structure checked.
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// The CRC stored in the file.
        expected: u32,
        /// The CRC of the bytes actually there.
        found: u32,
    },
    /// A field disagrees with what the rest of the file says it should be.
    #[error("{what} at byte offset {offset}: expected {expected}, found {found}")]
    Mismatch {
        /// The field.
        what: &'static str,
        /// Where its structure starts.
        offset: u64,
        /// The value it should have.
        expected: u64,
        /// The value it has.
        found: u64,
    },
}

/// Shows up to eight bytes as escaped ASCII, for [`TraceError::BadMagic`].
pub(crate) fn show_bytes(bytes: &[u8]) -> String {
    let shown = bytes.get(..8).unwrap_or(bytes);
    shown.escape_ascii().to_string()
}

/// A bounds-checked reader over file bytes: every read is all-or-error, never a panic.
pub(crate) struct ByteCursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ByteCursor<'a> {
    /// A cursor at `pos` in `data`.
    pub(crate) fn new(data: &'a [u8], pos: usize) -> Self {
        ByteCursor { data, pos }
    }

    /// The current byte offset.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The next `len` bytes of `what`, or a truncation error.
    pub(crate) fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], TraceError> {
        let bytes = self
            .pos
            .checked_add(len)
            .and_then(|end| self.data.get(self.pos..end))
            .ok_or(TraceError::Truncated {
                what,
                offset: self.pos as u64,
                needed: len as u64,
                available: self.data.len().saturating_sub(self.pos) as u64,
            })?;
        self.pos += len;
        Ok(bytes)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], TraceError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// Checks that the next bytes are `magic`.
    pub(crate) fn magic(
        &mut self,
        magic: &'static [u8],
        what: &'static str,
    ) -> Result<(), TraceError> {
        let offset = self.pos;
        let found = self.take(magic.len(), what)?;
        if found != magic {
            return Err(TraceError::BadMagic {
                what,
                offset: offset as u64,
                expected: std::str::from_utf8(magic).unwrap_or("?"),
                found: show_bytes(found),
            });
        }
        Ok(())
    }

    /// A little-endian u16.
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, TraceError> {
        self.array(what).map(u16::from_le_bytes)
    }

    /// A little-endian u32.
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, TraceError> {
        self.array(what).map(u32::from_le_bytes)
    }

    /// A little-endian u64.
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, TraceError> {
        self.array(what).map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_reads_are_all_or_error() {
        let data = [1u8, 0, 2, 0, 0, 0];
        let mut cursor = ByteCursor::new(&data, 0);
        assert_eq!(cursor.u16("a").unwrap(), 1);
        assert_eq!(cursor.u32("b").unwrap(), 2);
        let err = cursor.u64("c").unwrap_err();
        assert_eq!(
            err.to_string(),
            "c at byte offset 6 needs 8 bytes but only 0 remain"
        );
        assert_eq!(cursor.pos(), 6);
    }

    #[test]
    fn bad_magic_names_expected_and_found() {
        let mut cursor = ByteCursor::new(b"NOPE", 0);
        let err = cursor.magic(&CHUNK_MAGIC, "chunk").unwrap_err();
        assert_eq!(
            err.to_string(),
            "chunk at byte offset 0: expected magic \"CHNK\", found \"NOPE\""
        );
    }

    #[test]
    fn header_round_trips_through_bincode() {
        let header = Header {
            smmsim_version: "0.1.0".into(),
            cpus: 2,
            ..Header::default()
        };
        let bytes = bincode::encode_to_vec(&header, bincode_config()).unwrap();
        let (back, used): (Header, usize) =
            bincode::decode_from_slice(&bytes, bincode_config()).unwrap();
        assert_eq!(back, header);
        assert_eq!(used, bytes.len());
    }
}
