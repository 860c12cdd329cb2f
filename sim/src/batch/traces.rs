//! Where `--traces DIR` puts each scenario's trace, and the check that it can.
//!
//! A scenario's trace is `DIR/<stem>.smmtrace`, the stem made from its id: every byte that is
//! not an ASCII letter, digit or one of `. _ - = , +` becomes `_`, a leading `.` becomes `_`
//! (no hidden files, no `..`), the result is cut to [`MAX_STEM_CHARS`], and `-` and 8 hex
//! digits of the id's FNV-1a hash follow, so that ids that differ only in replaced bytes
//! still get different files: `hotadd/strategy=formula,maxcpus=64` becomes
//! `hotadd_strategy=formula,maxcpus=64-1c2d3e4f.smmtrace`. Each result line names its trace.

use std::path::{Path, PathBuf};

use crate::scenario::fnv1a_64;

/// The most characters of the id kept in a trace file's name (file names are limited to
/// 255 bytes on common file systems).
pub const MAX_STEM_CHARS: usize = 160;

/// The extension of trace files, as `smmsim run --trace` examples use.
pub const TRACE_EXTENSION: &str = "smmtrace";

/// Why the traces directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot write traces to directory {}: {error}", .path.display())]
pub struct TracesDirError {
    /// The directory.
    pub path: PathBuf,
    /// What the host said; part of the message so that it stands alone.
    pub error: std::io::Error,
}

/// Creates `dir` if needed and checks that a file can be created in it, so that a bad
/// `--traces` is refused before any scenario runs.
pub fn prepare_dir(dir: &Path) -> Result<(), TracesDirError> {
    let error = |error| TracesDirError {
        path: dir.to_owned(),
        error,
    };
    std::fs::create_dir_all(dir).map_err(error)?;
    let probe = dir.join(format!(".smmsim-probe-{}", std::process::id()));
    std::fs::File::create(&probe).map_err(error)?;
    std::fs::remove_file(&probe).map_err(error)
}

/// The trace file of scenario `id` in `dir`.
pub fn trace_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{}.{TRACE_EXTENSION}", trace_stem(id)))
}

/// The file stem of scenario `id`'s trace (see the module doc).
pub fn trace_stem(id: &str) -> String {
    let mut stem: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-=,+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(MAX_STEM_CHARS)
        .collect();
    if stem.starts_with('.') {
        stem.replace_range(..1, "_");
    }
    format!("{stem}-{:08x}", fnv1a_64(id.as_bytes()) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_safe_distinct_file_names() {
        let stem = trace_stem("hotadd/strategy=formula,maxcpus=64");
        assert!(
            stem.starts_with("hotadd_strategy=formula,maxcpus=64-"),
            "{stem}"
        );
        assert_eq!(stem.len(), "hotadd_strategy=formula,maxcpus=64-".len() + 8);
        // Replaced bytes do not make two ids share a file.
        assert_ne!(trace_stem("a/b"), trace_stem("a_b"));
        assert!(trace_stem("../x").starts_with("_._x-"));
        let odd = trace_stem("ü b\n");
        assert!(odd.starts_with("__b_-"), "{odd}");
        assert!(trace_stem("").starts_with('-'));
        let long = "x".repeat(1000);
        assert_eq!(trace_stem(&long).len(), MAX_STEM_CHARS + 9);
        assert_eq!(
            trace_path(Path::new("t"), "s.toml"),
            Path::new("t").join(format!("{}.smmtrace", trace_stem("s.toml")))
        );
    }

    #[test]
    fn the_directory_is_created_and_a_bad_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("smmsim-traces-{}/a/b", std::process::id()));
        prepare_dir(&dir).expect("creatable");
        assert!(dir.is_dir());
        let _ = std::fs::remove_dir_all(dir.parent().and_then(Path::parent).expect("parent"));
        let error = prepare_dir(Path::new("/proc/smmsim-no")).expect_err("not creatable");
        assert!(error.to_string().contains("/proc/smmsim-no"), "{error}");
    }
}
