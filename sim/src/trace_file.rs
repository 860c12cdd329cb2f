//! Writing a run's events to a trace file without holding up the cores.
//!
//! The [`TraceFile`] consumer collects the ordered events the recorder hands it into chunks
//! of [`CHUNK_EVENTS`] and sends each full chunk over a channel to a writer thread, which
//! encodes and writes it (`smmsim_traces::TraceWriter`). Each chunk is complete on disk once
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
    chunks: Option<Sender<Vec<Event>>>,
    thread: Option<JoinHandle<Result<u64, TraceError>>>,
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
        let (chunks, received) = bounded::<Vec<Event>>(CHUNKS_IN_FLIGHT);
        let thread = std::thread::Builder::new()
            .name("trace-writer".to_owned())
            .spawn(move || {
                let mut writer = writer;
                let mut written = 0u64;
                for chunk in received {
                    writer.write_chunk(&chunk)?;
                    written += chunk.len() as u64;
                }
                writer.finish()?;
                Ok(written)
            })
            .map_err(|source| TraceFileError::Create {
                path: path.to_owned(),
                source,
            })?;
        Ok(TraceFile {
            path: path.to_owned(),
            pending: Vec::with_capacity(CHUNK_EVENTS),
            chunks: Some(chunks),
            thread: Some(thread),
        })
    }

    fn send_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK_EVENTS));
        if let Some(chunks) = &self.chunks {
            // A send fails only when the writer stopped on an error; finish() reports it.
            if chunks.send(chunk).is_err() {
                self.chunks = None;
            }
        }
    }

    /// Writes what is left and the index; returns the number of events written.
    pub fn finish(mut self) -> Result<u64, TraceFileError> {
        self.send_pending();
        self.chunks = None;
        let result = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) | None => Err(TraceError::Write {
                offset: 0,
                source: std::io::Error::other("the trace writer thread stopped unexpectedly"),
            }),
        };
        result.map_err(|source| TraceFileError::Write {
            path: self.path.clone(),
            source,
        })
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
