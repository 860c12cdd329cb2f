//! Reading a trace: header, then chunks located through the index or by scanning, then
//! events decoded lazily.
//!
//! 1. [`TraceReader::open`] maps the file (or [`TraceReader::from_bytes`] takes a buffer),
//!    checks the magic and version and decodes the header.
//! 2. If the footer and index are intact and every entry agrees with the chunk header it
//!    points at, the chunk list comes from the index.
//! 3. Otherwise the reader scans from the first chunk, keeping every chunk whose CRC
//!    matches and resynchronising on the next chunk magic after damage; bytes in no valid
//!    chunk are counted in [`TraceReader::dropped_bytes`].
//! 4. [`TraceReader::events`] and [`TraceReader::events_from`] decode chunk by chunk,
//!    checking each chunk's CRC first, and stop at the first error they yield;
//!    [`TraceReader::try_for_each_from`] does the same for callers that only look at each
//!    event once, without building an iterator item per event.

use std::fs::File;
use std::ops::ControlFlow;
use std::path::Path;

use memmap2::Mmap;

use crate::crc::{crc32, Crc32};
use crate::decode::{decode_event, decode_event_with, Sink};
use crate::event::Event;
use crate::format::{
    bincode_config, ByteCursor, ChunkInfo, Header, TraceError, CHUNK_HEADER_BYTES, CHUNK_MAGIC,
    FILE_MAGIC, FILE_PREFIX_BYTES, FOOTER_BYTES, FOOTER_MAGIC, FORMAT_VERSION, INDEX_ENTRY_BYTES,
    INDEX_MAGIC, INDEX_PREFIX_BYTES,
};
use crate::time::Cycle;

/// The bytes of a trace: a mapping of the file, or a buffer handed in.
#[derive(Debug)]
enum Storage {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mapped(map) => map,
            Storage::Owned(bytes) => bytes,
        }
    }
}

/// A chunk located in the file, with what the reader needs to decode it.
#[derive(Clone, Copy, Debug)]
struct Located {
    info: ChunkInfo,
    /// Byte range of the payload.
    payload_start: usize,
    payload_end: usize,
    /// The CRC stored in the chunk header.
    crc: u32,
}

/// A trace file opened for reading.
///
/// Exists so viewers and tests can read a finished trace, a trace cut short by a killed
/// run, or a damaged one, and seek by cycle without decoding everything before it.
#[derive(Debug)]
pub struct TraceReader {
    storage: Storage,
    header: Header,
    chunks: Vec<Located>,
    dropped_bytes: u64,
    indexed: bool,
}

impl TraceReader {
    /// Opens and maps the trace at `path`.
    ///
    /// The file must not be truncated by another process while the reader lives (that
    /// would fault on access to the mapping); a file still being appended to is fine, as
    /// only the length at open time is read.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TraceError> {
        let path = path.as_ref();
        let open_error = |source| TraceError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(open_error)?;
        let length = file.metadata().map_err(open_error)?.len();
        let storage = if length == 0 {
            // An empty mapping is refused on some platforms; an empty buffer reads the same.
            Storage::Owned(Vec::new())
        } else {
            // SAFETY: the mapping is read-only and only read through bounds-checked slices;
            // the one remaining hazard, another process truncating the file, is documented
            // on this function.
            let map = unsafe { Mmap::map(&file) }.map_err(open_error)?;
            Storage::Mapped(map)
        };
        Self::from_storage(storage)
    }

    /// Reads a trace held in memory, as tests and in-process viewers have it.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, TraceError> {
        Self::from_storage(Storage::Owned(bytes))
    }

    fn from_storage(storage: Storage) -> Result<Self, TraceError> {
        let data = storage.bytes();
        let (header, data_start) = read_header(data)?;
        let (chunks, dropped_bytes, indexed) = match read_index(data, data_start) {
            Ok(chunks) => (chunks, 0, true),
            Err(_) => {
                let (chunks, dropped) = scan_chunks(data, data_start);
                (chunks, dropped, false)
            }
        };
        Ok(TraceReader {
            storage,
            header,
            chunks,
            dropped_bytes,
            indexed,
        })
    }

    /// The header written at the start of the trace.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// How many chunks were found.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Where each chunk is and what it holds, in file order.
    pub fn chunks(&self) -> impl ExactSizeIterator<Item = ChunkInfo> + '_ {
        self.chunks.iter().map(|chunk| chunk.info)
    }

    /// Bytes after the header that the scan could not attribute to a valid chunk: a
    /// partly written last chunk, damage, or an index that no longer matched.
    ///
    /// Zero when the index was used.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes
    }

    /// Whether the chunk list came from the index (true) or from scanning (false).
    pub fn indexed(&self) -> bool {
        self.indexed
    }

    /// Every event in the trace, in order. Stops after the first error it yields.
    pub fn events(&self) -> Events<'_> {
        self.events_in(0, Cycle::ZERO)
    }

    /// The events at or after `cycle`, in order, starting from the first chunk whose last
    /// cycle reaches `cycle` so earlier chunks are neither checked nor decoded.
    pub fn events_from(&self, cycle: Cycle) -> Events<'_> {
        let chunk = self.chunks.partition_point(|c| c.info.last_cycle < cycle);
        self.events_in(chunk, cycle)
    }

    /// Calls `visit` with every event at or after `from`, in order, until it returns
    /// [`ControlFlow::Break`]; returns what it broke with, or the first damage found.
    ///
    /// The same events as [`TraceReader::events_from`], for callers that look at each event
    /// once and keep nothing: decoding runs in one loop per chunk and nothing is wrapped in
    /// `Option`/`Result` per event. Events before the damage have been visited when it
    /// returns `Err`.
    pub fn try_for_each_from<B>(
        &self,
        from: Cycle,
        visit: impl FnMut(&Event) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>, TraceError> {
        self.visit_from(from, &mut ClosureVisitor(visit))
    }

    /// [`TraceReader::try_for_each_from`] for in-crate visitors whose `visit` is forced
    /// inline, which is what lets `trace stats` read tens of millions of events a second.
    pub(crate) fn visit_from<V: Visitor>(
        &self,
        from: Cycle,
        visitor: &mut V,
    ) -> Result<ControlFlow<V::Break>, TraceError> {
        let data = self.storage.bytes();
        let first = self.chunks.partition_point(|c| c.info.last_cycle < from);
        for chunk in self.chunks.get(first..).unwrap_or(&[]) {
            let mut decoding = Decoding::start(data, chunk)?;
            if let ControlFlow::Break(value) = decoding.visit_rest(from, visitor)? {
                return Ok(ControlFlow::Break(value));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Calls `visit` with every event of the trace, in order; see
    /// [`TraceReader::try_for_each_from`].
    pub fn for_each_event(&self, mut visit: impl FnMut(&Event)) -> Result<(), TraceError> {
        self.try_for_each_from(Cycle::ZERO, |event| {
            visit(event);
            ControlFlow::<()>::Continue(())
        })
        .map(|_| ())
    }

    /// The size of the trace in bytes, as mapped or handed in.
    pub fn file_bytes(&self) -> u64 {
        self.storage.bytes().len() as u64
    }

    fn events_in(&self, chunk: usize, from: Cycle) -> Events<'_> {
        Events {
            data: self.storage.bytes(),
            chunks: self.chunks.get(chunk..).unwrap_or(&[]),
            current: None,
            from,
            done: false,
        }
    }
}

/// Checks magic and version and decodes the header; returns it and the first chunk offset.
fn read_header(data: &[u8]) -> Result<(Header, usize), TraceError> {
    let mut cursor = ByteCursor::new(data, 0);
    cursor.magic(&FILE_MAGIC, "trace file magic")?;
    let version = cursor.u16("format version")?;
    if version != FORMAT_VERSION {
        return Err(TraceError::VersionMismatch {
            expected: FORMAT_VERSION,
            found: version,
        });
    }
    let length = cursor.u32("header length")?;
    let bytes = cursor.take(length as usize, "trace header")?;
    let (header, used): (Header, usize) = bincode::decode_from_slice(bytes, bincode_config())
        .map_err(|source| TraceError::Decode {
            what: "trace header",
            offset: FILE_PREFIX_BYTES as u64,
            source,
        })?;
    if used != bytes.len() {
        return Err(TraceError::Mismatch {
            what: "trace header length",
            offset: FILE_PREFIX_BYTES as u64,
            expected: bytes.len() as u64,
            found: used as u64,
        });
    }
    Ok((header, cursor.pos()))
}

/// Reads a chunk header at `offset` that must end by `limit`, checking magic and bounds
/// (not the CRC).
fn read_chunk_header(data: &[u8], offset: usize, limit: usize) -> Result<Located, TraceError> {
    let bounded = data.get(..limit).unwrap_or(data);
    let mut cursor = ByteCursor::new(bounded, offset);
    cursor.magic(&CHUNK_MAGIC, "chunk")?;
    let payload_length = cursor.u32("chunk payload length")?;
    let event_count = cursor.u32("chunk event count")?;
    let first_cycle = Cycle(cursor.u64("chunk first cycle")?);
    let last_cycle = Cycle(cursor.u64("chunk last cycle")?);
    let crc = cursor.u32("chunk CRC")?;
    let payload_start = cursor.pos();
    cursor.take(payload_length as usize, "chunk payload")?;
    Ok(Located {
        info: ChunkInfo {
            offset: offset as u64,
            first_cycle,
            last_cycle,
            event_count,
        },
        payload_start,
        payload_end: cursor.pos(),
        crc,
    })
}

/// The CRC of a chunk's header fields and payload, to compare with the stored one.
fn chunk_crc(data: &[u8], chunk: &Located) -> Result<u32, TraceError> {
    let header_start = chunk.payload_start.saturating_sub(CHUNK_HEADER_BYTES);
    let fields = data.get(header_start..chunk.payload_start.saturating_sub(4));
    let payload = data.get(chunk.payload_start..chunk.payload_end);
    let (Some(fields), Some(payload)) = (fields, payload) else {
        return Err(TraceError::Truncated {
            what: "chunk",
            offset: chunk.info.offset,
            needed: (chunk.payload_end - header_start) as u64,
            available: data.len().saturating_sub(header_start) as u64,
        });
    };
    let mut crc = Crc32::new();
    crc.update(fields);
    crc.update(payload);
    Ok(crc.value())
}

/// Checks a chunk's CRC.
fn verify_chunk(data: &[u8], chunk: &Located) -> Result<(), TraceError> {
    let found = chunk_crc(data, chunk)?;
    if found != chunk.crc {
        return Err(TraceError::BadCrc {
            what: "chunk",
            offset: chunk.info.offset,
            expected: chunk.crc,
            found,
        });
    }
    Ok(())
}

/// Reads the footer and index and checks every entry against its chunk header; chunks must
/// tile the file from `data_start` to the index exactly.
fn read_index(data: &[u8], data_start: usize) -> Result<Vec<Located>, TraceError> {
    let footer_start = data
        .len()
        .checked_sub(FOOTER_BYTES)
        .ok_or(TraceError::Truncated {
            what: "footer",
            offset: 0,
            needed: FOOTER_BYTES as u64,
            available: data.len() as u64,
        })?;
    let mut footer = ByteCursor::new(data, footer_start);
    footer.magic(&FOOTER_MAGIC, "footer")?;
    let index_offset = footer.u64("index offset")?;
    let index_crc = footer.u32("index CRC")?;
    let index_start = usize::try_from(index_offset)
        .ok()
        .filter(|&start| start >= data_start && start <= footer_start)
        .ok_or(TraceError::Mismatch {
            what: "index offset in footer",
            offset: footer_start as u64,
            expected: footer_start as u64,
            found: index_offset,
        })?;
    let index_bytes = data.get(index_start..footer_start).unwrap_or(&[]);
    let found = crc32(index_bytes);
    if found != index_crc {
        return Err(TraceError::BadCrc {
            what: "index",
            offset: index_offset,
            expected: index_crc,
            found,
        });
    }
    let mut cursor = ByteCursor::new(index_bytes, 0);
    cursor.magic(&INDEX_MAGIC, "index")?;
    let count = cursor.u32("index entry count")? as usize;
    let expected_bytes = count
        .checked_mul(INDEX_ENTRY_BYTES)
        .and_then(|b| b.checked_add(INDEX_PREFIX_BYTES));
    if expected_bytes != Some(index_bytes.len()) {
        return Err(TraceError::Mismatch {
            what: "index length",
            offset: index_offset,
            expected: expected_bytes.unwrap_or(u64::MAX as usize) as u64,
            found: index_bytes.len() as u64,
        });
    }
    let mut chunks = Vec::with_capacity(count);
    let mut next = data_start;
    for _ in 0..count {
        let offset = cursor.u64("index entry offset")?;
        let first_cycle = Cycle(cursor.u64("index entry first cycle")?);
        let last_cycle = Cycle(cursor.u64("index entry last cycle")?);
        let event_count = cursor.u32("index entry count")?;
        if offset != next as u64 {
            return Err(TraceError::Mismatch {
                what: "index entry offset",
                offset: index_offset,
                expected: next as u64,
                found: offset,
            });
        }
        let chunk = read_chunk_header(data, next, index_start)?;
        let fields = [
            (
                "chunk event count in index",
                u64::from(event_count),
                u64::from(chunk.info.event_count),
            ),
            (
                "chunk first cycle in index",
                first_cycle.0,
                chunk.info.first_cycle.0,
            ),
            (
                "chunk last cycle in index",
                last_cycle.0,
                chunk.info.last_cycle.0,
            ),
        ];
        for (what, expected, found) in fields {
            if expected != found {
                return Err(TraceError::Mismatch {
                    what,
                    offset,
                    expected,
                    found,
                });
            }
        }
        next = chunk.payload_end;
        chunks.push(chunk);
    }
    if next != index_start {
        return Err(TraceError::Mismatch {
            what: "end of last chunk",
            offset: index_offset,
            expected: index_offset,
            found: next as u64,
        });
    }
    Ok(chunks)
}

/// Scans for chunks from `data_start`, keeping those whose CRC matches; returns them and
/// the number of bytes left unaccounted for.
fn scan_chunks(data: &[u8], data_start: usize) -> (Vec<Located>, u64) {
    let mut chunks = Vec::new();
    let mut dropped = 0u64;
    let mut pos = data_start;
    while pos < data.len() {
        let good = read_chunk_header(data, pos, data.len())
            .and_then(|chunk| verify_chunk(data, &chunk).map(|()| chunk));
        match good {
            Ok(chunk) => {
                pos = chunk.payload_end;
                chunks.push(chunk);
            }
            Err(_) => {
                // Resynchronise on the next chunk magic after this position.
                let rest = data.get(pos + 1..).unwrap_or(&[]);
                let skip = rest
                    .windows(CHUNK_MAGIC.len())
                    .position(|w| w == CHUNK_MAGIC)
                    .map_or(data.len() - pos, |at| at + 1);
                dropped += skip as u64;
                pos += skip;
            }
        }
    }
    (chunks, dropped)
}

/// Something that looks at events one at a time, for [`TraceReader::visit_from`].
///
/// A trait rather than a closure so that hot visitors (`trace stats`) can mark `visit`
/// `#[inline(always)]` and have a copy inlined into each of the decoder's per-kind arms.
pub(crate) trait Visitor {
    /// What a visitor that stops early returns.
    type Break;
    /// Looks at one event; `Break` stops the walk.
    fn visit(&mut self, event: &Event) -> ControlFlow<Self::Break>;
}

/// A closure as a [`Visitor`], for [`TraceReader::try_for_each_from`].
struct ClosureVisitor<F>(F);

impl<B, F: FnMut(&Event) -> ControlFlow<B>> Visitor for ClosureVisitor<F> {
    type Break = B;

    #[inline]
    fn visit(&mut self, event: &Event) -> ControlFlow<B> {
        (self.0)(event)
    }
}

/// The decoder's sink for a walk from a cycle: events before `from` are skipped, the rest
/// go to the visitor.
struct FromCycle<'v, V> {
    from: Cycle,
    visitor: &'v mut V,
}

impl<V: Visitor> Sink for FromCycle<'_, V> {
    type Output = ControlFlow<V::Break>;

    #[inline(always)]
    fn take(&mut self, event: Event) -> ControlFlow<V::Break> {
        // Only the first chunk visited can hold events before `from`, but one compare per
        // event is cheaper than special-casing it.
        if event.cycle >= self.from {
            self.visitor.visit(&event)
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// A chunk whose CRC has been checked, being decoded event by event.
#[derive(Debug)]
struct Decoding<'a> {
    payload: &'a [u8],
    payload_offset: usize,
    pos: usize,
    remaining: u32,
    chunk_offset: u64,
}

impl<'a> Decoding<'a> {
    /// Checks `chunk`'s CRC and starts decoding its payload.
    fn start(data: &'a [u8], chunk: &Located) -> Result<Self, TraceError> {
        verify_chunk(data, chunk)?;
        let payload = data
            .get(chunk.payload_start..chunk.payload_end)
            .unwrap_or(&[]);
        Ok(Decoding {
            payload,
            payload_offset: chunk.payload_start,
            pos: 0,
            remaining: chunk.info.event_count,
            chunk_offset: chunk.info.offset,
        })
    }

    /// The chunk's next event, or `None` once its count is reached and its payload used up
    /// exactly.
    #[inline]
    fn next_event(&mut self) -> Result<Option<Event>, TraceError> {
        if self.remaining == 0 {
            self.check_used_up()?;
            return Ok(None);
        }
        let rest = self.payload.get(self.pos..).unwrap_or(&[]);
        match decode_event(rest) {
            Ok((event, used)) => {
                self.pos += used;
                self.remaining -= 1;
                Ok(Some(event))
            }
            Err(source) => Err(self.decode_error(source)),
        }
    }

    /// Decodes the rest of the chunk in one loop, calling `visit` with each event at or
    /// after `from`, until it breaks.
    ///
    /// The tight loop behind [`TraceReader::try_for_each_from`]: nothing is wrapped in
    /// `Option` or `Result` per event.
    #[inline]
    fn visit_rest<V: Visitor>(
        &mut self,
        from: Cycle,
        visitor: &mut V,
    ) -> Result<ControlFlow<V::Break>, TraceError> {
        while self.remaining > 0 {
            let rest = self.payload.get(self.pos..).unwrap_or(&[]);
            let decoded = decode_event_with(rest, &mut FromCycle { from, visitor });
            let (flow, used) = match decoded {
                Ok(decoded) => decoded,
                Err(source) => return Err(self.decode_error(source)),
            };
            self.pos += used;
            self.remaining -= 1;
            if let ControlFlow::Break(value) = flow {
                return Ok(ControlFlow::Break(value));
            }
        }
        self.check_used_up()?;
        Ok(ControlFlow::Continue(()))
    }

    /// After the last event: the events must have used the payload exactly.
    fn check_used_up(&self) -> Result<(), TraceError> {
        if self.pos != self.payload.len() {
            return Err(TraceError::Mismatch {
                what: "chunk payload bytes used by its events",
                offset: self.chunk_offset,
                expected: self.payload.len() as u64,
                found: self.pos as u64,
            });
        }
        Ok(())
    }

    /// The error for an event that does not decode at the current position.
    #[cold]
    fn decode_error(&self, source: bincode::error::DecodeError) -> TraceError {
        TraceError::Decode {
            what: "event",
            offset: (self.payload_offset + self.pos) as u64,
            source,
        }
    }
}

/// Iterator over a trace's events, decoding one chunk at a time.
///
/// Yields `Err` once, for the first damaged chunk or undecodable event, and then ends, so a
/// caller can show everything up to the damage and the reason it stopped.
#[derive(Debug)]
pub struct Events<'a> {
    data: &'a [u8],
    chunks: &'a [Located],
    current: Option<Decoding<'a>>,
    from: Cycle,
    done: bool,
}

impl Events<'_> {
    /// The next event of the trace regardless of the start cycle.
    fn next_event(&mut self) -> Result<Option<Event>, TraceError> {
        loop {
            if let Some(current) = &mut self.current {
                if let Some(event) = current.next_event()? {
                    return Ok(Some(event));
                }
                self.current = None;
            }
            let Some((chunk, rest)) = self.chunks.split_first() else {
                return Ok(None);
            };
            self.chunks = rest;
            self.current = Some(Decoding::start(self.data, chunk)?);
        }
    }
}

impl Iterator for Events<'_> {
    type Item = Result<Event, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.next_event() {
                Ok(Some(event)) if event.cycle < self.from => continue,
                Ok(Some(event)) => return Some(Ok(event)),
                Ok(None) => self.done = true,
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            }
        }
        None
    }
}

impl std::iter::FusedIterator for Events<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use crate::writer::TraceWriter;

    fn at(cycle: u64, cpu: u32) -> Event {
        Event {
            cycle: Cycle(cycle),
            cpu,
            kind: EventKind::RunEnd {
                status: cycle as u32,
            },
        }
    }

    fn trace(chunks: &[&[Event]], finish: bool) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut writer = TraceWriter::new(&mut bytes, &Header::default()).unwrap();
        for chunk in chunks {
            writer.write_chunk(chunk).unwrap();
        }
        if finish {
            writer.finish().unwrap();
        }
        // Otherwise the writer is dropped unfinished, as when a run is killed.
        bytes
    }

    fn all(reader: &TraceReader) -> Vec<Event> {
        reader.events().collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn finished_trace_uses_the_index() {
        let bytes = trace(&[&[at(1, 0), at(2, 0)], &[at(3, 1)]], true);
        let reader = TraceReader::from_bytes(bytes).unwrap();
        assert!(reader.indexed());
        assert_eq!(reader.chunk_count(), 2);
        assert_eq!(reader.dropped_bytes(), 0);
        assert_eq!(all(&reader), vec![at(1, 0), at(2, 0), at(3, 1)]);
    }

    #[test]
    fn unfinished_trace_is_scanned() {
        let bytes = trace(&[&[at(1, 0), at(2, 0)], &[at(3, 0)]], false);
        let reader = TraceReader::from_bytes(bytes).unwrap();
        assert!(!reader.indexed());
        assert_eq!(reader.chunk_count(), 2);
        assert_eq!(reader.dropped_bytes(), 0);
        assert_eq!(all(&reader), vec![at(1, 0), at(2, 0), at(3, 0)]);
    }

    #[test]
    fn a_damaged_chunk_is_skipped_by_the_scan_and_later_chunks_recovered() {
        let mut bytes = trace(&[&[at(1, 0)], &[at(2, 0)], &[at(3, 0)]], true);
        let reader = TraceReader::from_bytes(bytes.clone()).unwrap();
        let second: Vec<_> = reader.chunks().collect();
        let payload = second[1].offset as usize + CHUNK_HEADER_BYTES;
        bytes[payload] ^= 0xFF;
        // The index still matches chunk headers, so it is used and the CRC error surfaces
        // while iterating.
        let reader = TraceReader::from_bytes(bytes.clone()).unwrap();
        let results: Vec<_> = reader.events().collect();
        assert_eq!(results.len(), 2);
        assert!(
            matches!(results[1], Err(TraceError::BadCrc { .. })),
            "{:?}",
            results[1]
        );
        // Without the footer the scan drops just that chunk.
        let footer_start = bytes.len() - FOOTER_BYTES;
        bytes[footer_start] = b'X';
        let reader = TraceReader::from_bytes(bytes).unwrap();
        assert!(!reader.indexed());
        assert_eq!(reader.chunk_count(), 2);
        assert!(reader.dropped_bytes() > 0);
    }

    #[test]
    fn version_mismatch_names_both_versions() {
        let mut bytes = trace(&[&[at(1, 0)]], true);
        bytes[8] = 9;
        let err = TraceReader::from_bytes(bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "trace format version 9 is not supported: this reader reads version 1"
        );
    }

    #[test]
    fn events_from_seeks_by_cycle() {
        let bytes = trace(
            &[&[at(1, 0), at(2, 0)], &[at(4, 0), at(6, 0)], &[at(8, 0)]],
            true,
        );
        let reader = TraceReader::from_bytes(bytes).unwrap();
        let from = |c| {
            reader
                .events_from(Cycle(c))
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
        };
        assert_eq!(from(5), vec![at(6, 0), at(8, 0)]);
        assert_eq!(from(0).len(), 5);
        assert!(from(9).is_empty());
    }
}
