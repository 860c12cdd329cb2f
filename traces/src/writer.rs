//! Writing a trace: header first, then one checksummed chunk per call, then the index.
//!
//! 1. [`TraceWriter::new`] writes the magic, version and header.
//! 2. Each [`TraceWriter::write_chunk`] checks that its events continue the (cycle, cpu)
//!    order, encodes them, and writes one self-delimiting chunk; a run killed after this
//!    leaves a file readable up to that chunk.
//! 3. [`TraceWriter::finish`] writes the index and footer so readers can seek without
//!    scanning.

use std::io::Write;

use crate::crc::Crc32;
use crate::event::Event;
use crate::format::{
    bincode_config, ChunkInfo, Header, TraceError, CHUNK_HEADER_BYTES, CHUNK_MAGIC, FILE_MAGIC,
    FOOTER_MAGIC, FORMAT_VERSION, INDEX_ENTRY_BYTES, INDEX_MAGIC, INDEX_PREFIX_BYTES,
    MAX_RECORD_BYTES,
};
use crate::time::Cycle;

/// Writes events to a trace file in chunks.
///
/// Exists so the simulator can stream events out at quantum ends without holding a run's
/// whole history in memory, while keeping every prefix of the output readable.
#[derive(Debug)]
pub struct TraceWriter<W: Write> {
    out: W,
    /// Bytes written so far, i.e. the offset of the next write.
    offset: u64,
    /// One entry per chunk written, for the index.
    chunks: Vec<ChunkInfo>,
    /// The (cycle, cpu) of the last event written, to check order across chunks.
    last_key: Option<(Cycle, u32)>,
}

impl<W: Write> TraceWriter<W> {
    /// Starts a trace on `out` by writing the magic, format version and `header`.
    pub fn new(out: W, header: &Header) -> Result<Self, TraceError> {
        let encoded = bincode::encode_to_vec(header, bincode_config()).map_err(|source| {
            TraceError::Encode {
                what: "trace header",
                source,
            }
        })?;
        let length = record_length(encoded.len(), "trace header")?;
        let mut writer = TraceWriter {
            out,
            offset: 0,
            chunks: Vec::new(),
            last_key: None,
        };
        let mut bytes = Vec::with_capacity(encoded.len() + 14);
        bytes.extend_from_slice(&FILE_MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&length.to_le_bytes());
        bytes.extend_from_slice(&encoded);
        writer.put(&bytes)?;
        Ok(writer)
    }

    /// Writes `events` as one chunk. An empty slice writes nothing.
    ///
    /// The events must be in nondecreasing (cycle, cpu) order and must not go back before
    /// the last event of the previous chunk; otherwise nothing is written and
    /// [`TraceError::OutOfOrder`] names the first offending event.
    pub fn write_chunk(&mut self, events: &[Event]) -> Result<(), TraceError> {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(());
        };
        let mut previous = self.last_key;
        for (position, event) in events.iter().enumerate() {
            let key = event.order_key();
            if let Some(prev) = previous {
                if key < prev {
                    return Err(TraceError::OutOfOrder {
                        position,
                        previous_cycle: prev.0 .0,
                        previous_cpu: prev.1,
                        found_cycle: key.0 .0,
                        found_cpu: key.1,
                    });
                }
            }
            previous = Some(key);
        }
        let event_count = u32::try_from(events.len()).map_err(|_| TraceError::TooLarge {
            what: "chunk event count",
            bytes: events.len() as u64,
            limit: u64::from(u32::MAX),
        })?;

        let mut payload = Vec::new();
        for event in events {
            let before = payload.len();
            bincode::encode_into_std_write(event, &mut payload, bincode_config()).map_err(
                |source| TraceError::Encode {
                    what: "event",
                    source,
                },
            )?;
            record_length(payload.len() - before, "encoded event")?;
        }
        let payload_length = u32::try_from(payload.len()).map_err(|_| TraceError::TooLarge {
            what: "chunk payload",
            bytes: payload.len() as u64,
            limit: u64::from(u32::MAX),
        })?;

        let mut chunk = Vec::with_capacity(CHUNK_HEADER_BYTES + payload.len());
        chunk.extend_from_slice(&CHUNK_MAGIC);
        chunk.extend_from_slice(&payload_length.to_le_bytes());
        chunk.extend_from_slice(&event_count.to_le_bytes());
        chunk.extend_from_slice(&first.cycle.0.to_le_bytes());
        chunk.extend_from_slice(&last.cycle.0.to_le_bytes());
        let mut crc = Crc32::new();
        crc.update(&chunk);
        crc.update(&payload);
        chunk.extend_from_slice(&crc.value().to_le_bytes());
        chunk.extend_from_slice(&payload);

        let info = ChunkInfo {
            offset: self.offset,
            first_cycle: first.cycle,
            last_cycle: last.cycle,
            event_count,
        };
        self.put(&chunk)?;
        self.chunks.push(info);
        self.last_key = previous;
        Ok(())
    }

    /// The chunks written so far, for callers that report progress.
    pub fn chunks(&self) -> &[ChunkInfo] {
        &self.chunks
    }

    /// Writes the index and footer, flushes, and gives back the output.
    pub fn finish(mut self) -> Result<W, TraceError> {
        let index_offset = self.offset;
        let entry_count = u32::try_from(self.chunks.len()).map_err(|_| TraceError::TooLarge {
            what: "index entry count",
            bytes: self.chunks.len() as u64,
            limit: u64::from(u32::MAX),
        })?;
        let mut index =
            Vec::with_capacity(INDEX_PREFIX_BYTES + INDEX_ENTRY_BYTES * self.chunks.len());
        index.extend_from_slice(&INDEX_MAGIC);
        index.extend_from_slice(&entry_count.to_le_bytes());
        for chunk in &self.chunks {
            index.extend_from_slice(&chunk.offset.to_le_bytes());
            index.extend_from_slice(&chunk.first_cycle.0.to_le_bytes());
            index.extend_from_slice(&chunk.last_cycle.0.to_le_bytes());
            index.extend_from_slice(&chunk.event_count.to_le_bytes());
        }
        let index_crc = crate::crc::crc32(&index);
        index.extend_from_slice(&FOOTER_MAGIC);
        index.extend_from_slice(&index_offset.to_le_bytes());
        index.extend_from_slice(&index_crc.to_le_bytes());
        self.put(&index)?;
        let offset = self.offset;
        self.out
            .flush()
            .map_err(|source| TraceError::Write { offset, source })?;
        Ok(self.out)
    }

    /// Writes `bytes` and advances the offset.
    fn put(&mut self, bytes: &[u8]) -> Result<(), TraceError> {
        let offset = self.offset;
        self.out
            .write_all(bytes)
            .map_err(|source| TraceError::Write { offset, source })?;
        self.offset += bytes.len() as u64;
        Ok(())
    }
}

/// Checks an encoded record against [`MAX_RECORD_BYTES`], which readers enforce too.
fn record_length(bytes: usize, what: &'static str) -> Result<u32, TraceError> {
    if bytes > MAX_RECORD_BYTES {
        return Err(TraceError::TooLarge {
            what,
            bytes: bytes as u64,
            limit: MAX_RECORD_BYTES as u64,
        });
    }
    // MAX_RECORD_BYTES is far below u32::MAX, so this cannot fail after the check above.
    Ok(bytes as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    fn at(cycle: u64, cpu: u32) -> Event {
        Event {
            cycle: Cycle(cycle),
            cpu,
            kind: EventKind::Halt,
        }
    }

    #[test]
    fn out_of_order_within_a_chunk_is_refused_and_nothing_written() {
        let mut writer = TraceWriter::new(Vec::new(), &Header::default()).unwrap();
        let before = writer.offset;
        let err = writer
            .write_chunk(&[at(5, 0), at(5, 1), at(4, 0)])
            .unwrap_err();
        assert!(
            matches!(err, TraceError::OutOfOrder { position: 2, .. }),
            "{err}"
        );
        assert_eq!(writer.offset, before);
        assert!(writer.chunks().is_empty());
    }

    #[test]
    fn out_of_order_across_chunks_is_refused() {
        let mut writer = TraceWriter::new(Vec::new(), &Header::default()).unwrap();
        writer.write_chunk(&[at(5, 1)]).unwrap();
        let err = writer.write_chunk(&[at(5, 0)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "event 0 of the chunk (cycle 5, cpu 0) comes before the event preceding it \
             (cycle 5, cpu 1)"
        );
        writer.write_chunk(&[at(5, 1), at(6, 0)]).unwrap();
        assert_eq!(writer.chunks().len(), 2);
    }

    #[test]
    fn oversized_console_line_is_refused() {
        let mut writer = TraceWriter::new(Vec::new(), &Header::default()).unwrap();
        let text = "x".repeat(MAX_RECORD_BYTES + 1);
        let event = Event {
            cycle: Cycle(0),
            cpu: 0,
            kind: EventKind::ConsoleLine { text },
        };
        assert!(matches!(
            writer.write_chunk(&[event]),
            Err(TraceError::TooLarge { .. })
        ));
    }
}
