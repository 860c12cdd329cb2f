//! Writing a run's events to a trace file without holding up the cores.
//!
//! The [`TraceFile`] consumer collects the ordered events the recorder hands it into chunks
//! of [`CHUNK_EVENTS`] and sends each full chunk over a channel to a writer thread, which
//! encodes and writes it (`smmsim_traces::TraceWriter`). The thread starts with the first
//! full chunk: a run that records less than one chunk (most boots) never has it competing
//! with the core threads for the host, and its one chunk is written at the end. Each chunk is complete on disk once
//! written, so a run killed midway leaves a file the reader recovers up to its last chunk.
//! [`TraceFile::finish`] sends the rest, writes the index and reports any I/O error.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use crossbeam::channel::{bounded, Sender};
use smmsim_traces::{Event, Header, TraceError, TraceWriter};

use crate::recorder::EventConsumer;

/// Events per chunk: large enough that the per-chunk header and CRC are noise, small
/// enough that a killed run loses at most a fraction of a millisecond of simulated time.
pub const CHUNK_EVENTS: usize = 16 * 1024;

/// Chunks in flight between the run and the writer thread before the run waits.
const CHUNKS_IN_FLIGHT: usize = 8;

/// Why a trace could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TraceFileError {
    /// The file could not be created.
    #[error("cannot create trace file {path}")]
    Create {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Writing failed (disk full, …); events after the failure were dropped.
    #[error("cannot write trace file {path}")]
    Write {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: TraceError,
    },
}

/// A trace file being written by its own thread.
pub struct TraceFile {
    path: PathBuf,
    pending: Vec<Event>,
    /// The writer until the thread takes it.
    writer: Option<Writer>,
    chunks: Option<Sender<Vec<Event>>>,
    thread: Option<JoinHandle<Result<u64, TraceError>>>,
    /// A failure to start the writer thread, reported by `finish`.
    spawn_error: Option<std::io::Error>,
}

type Writer = TraceWriter<BufWriter<File>>;

/// The writer thread: writes every chunk it receives, then the index.
fn write_chunks(
    mut writer: Writer,
    received: crossbeam::channel::Receiver<Vec<Event>>,
) -> Result<u64, TraceError> {
    let mut written = 0u64;
    for chunk in received {
        writer.write_chunk(&chunk)?;
        written += chunk.len() as u64;
    }
    writer.finish()?;
    Ok(written)
}

impl TraceFile {
    /// Creates `path` and writes the header; the writer thread starts at once.
    pub fn create(path: &Path, header: &Header) -> Result<TraceFile, TraceFileError> {
        let file = File::create(path).map_err(|source| TraceFileError::Create {
            path: path.to_owned(),
            source,
        })?;
        let writer = TraceWriter::new(BufWriter::new(file), header).map_err(|source| {
            TraceFileError::Write {
                path: path.to_owned(),
                source,
            }
        })?;
        Ok(TraceFile {
            path: path.to_owned(),
            pending: Vec::with_capacity(CHUNK_EVENTS),
            writer: Some(writer),
            chunks: None,
            thread: None,
            spawn_error: None,
        })
    }

    /// Hands the writer to its thread (once).
    fn start_thread(&mut self) {
        let Some(writer) = self.writer.take() else {
            return;
        };
        let (chunks, received) = bounded::<Vec<Event>>(CHUNKS_IN_FLIGHT);
        let (writer_tx, writer_rx) = bounded::<Writer>(1);
        let spawned = std::thread::Builder::new()
            .name("trace-writer".to_owned())
            .spawn(move || match writer_rx.recv() {
                Ok(writer) => write_chunks(writer, received),
                Err(_) => Ok(0),
            });
        match spawned {
            Ok(thread) => {
                // The thread waits for exactly this one message.
                let _ = writer_tx.send(writer);
                self.chunks = Some(chunks);
                self.thread = Some(thread);
            }
            Err(error) => {
                // No thread: keep writing on the caller's thread.
                self.writer = Some(writer);
                self.spawn_error = Some(error);
            }
        }
    }

    fn send_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if self.thread.is_none() && self.spawn_error.is_none() {
            self.start_thread();
        }
        let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK_EVENTS));
        if let Some(chunks) = &self.chunks {
            // A send fails only when the writer stopped on an error; finish() reports it.
            if chunks.send(chunk).is_err() {
                self.chunks = None;
            }
        } else if let Some(writer) = self.writer.as_mut() {
            // The thread could not start; a write error here surfaces again at finish.
            let _ = writer.write_chunk(&chunk);
        }
    }

    /// Writes what is left and the index; returns the number of events written.
    pub fn finish(mut self) -> Result<u64, TraceFileError> {
        let path = self.path.clone();
        let error = |source| TraceFileError::Write {
            path: path.clone(),
            source,
        };
        if let Some(mut writer) = self.writer.take() {
            // Never needed the thread: write the last chunk here.
            if !self.pending.is_empty() {
                writer.write_chunk(&self.pending).map_err(error)?;
                self.pending.clear();
            }
            let written: u64 = writer
                .chunks()
                .iter()
                .map(|c| u64::from(c.event_count))
                .sum();
            writer.finish().map_err(error)?;
            return Ok(written);
        }
        self.send_pending();
        self.chunks = None;
        let result = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) | None => Err(TraceError::Write {
                offset: 0,
                source: std::io::Error::other("the trace writer thread stopped unexpectedly"),
            }),
        };
        result.map_err(error)
    }
}

impl EventConsumer for TraceFile {
    fn consume(&mut self, events: &[Event]) {
        let mut rest = events;
        while !rest.is_empty() {
            let room = CHUNK_EVENTS - self.pending.len();
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.pending.extend_from_slice(now);
            rest = later;
            if self.pending.len() == CHUNK_EVENTS {
                self.send_pending();
            }
        }
    }
}

impl Drop for TraceFile {
    fn drop(&mut self) {
        // Dropped without finish (an error path): still end the writer thread cleanly so
        // every chunk already sent reaches the file.
        self.chunks = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smmsim_traces::{Cycle, EventKind, TraceReader};

    fn events(count: usize) -> Vec<Event> {
        (0..count)
            .map(|i| Event {
                cycle: Cycle(i as u64),
                cpu: (i % 3) as u32,
                kind: EventKind::Halt,
            })
            .collect()
    }

    fn round_trip(count: usize) {
        let path = std::env::temp_dir().join(format!(
            "smmsim-trace-file-{}-{count}.smmtrace",
            std::process::id()
        ));
        let mut trace = TraceFile::create(&path, &Header::default()).expect("created");
        // In uneven pieces, as quanta hand them over.
        for piece in events(count).chunks(1000) {
            trace.consume(piece);
        }
        assert_eq!(trace.finish().expect("finished"), count as u64);
        let reader = TraceReader::open(&path).expect("readable");
        assert_eq!(reader.events().count(), count);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_trace_smaller_than_a_chunk_is_written_without_a_thread() {
        round_trip(10);
        round_trip(0);
    }

    #[test]
    fn a_trace_of_many_chunks_goes_through_the_writer_thread() {
        round_trip(CHUNK_EVENTS * 3 + 17);
    }
}
