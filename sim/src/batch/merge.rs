//! Joining the results files of a sharded batch (`smmsim merge`): one file, one line per
//! scenario id, and the summary of the whole batch.
//!
//! 1. Every file is read whole before anything is written ([`read_results`]): each line must
//!    be a result line of this smmsim version, so results of different versions are never
//!    mixed, and a problem names its file and line;
//! 2. an incomplete last line (a shard killed mid-write) is dropped and reported;
//! 3. an id seen more than once keeps its last line — files in the order given, lines in
//!    file order — so a re-run appended to a file, or a later file, replaces the earlier
//!    result;
//! 4. the lines are written sorted by id, each exactly as it was read, so merging merged
//!    files changes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::results::{read_results, RecordedLine, ResultsError, ResultsWriter};
use super::summary::Summary;

/// The results of many files, joined.
#[derive(Clone, Debug, Default)]
pub struct Merged {
    /// One line per id, sorted by id.
    pub lines: Vec<RecordedLine>,
    /// Lines read, over all files.
    pub lines_read: usize,
    /// Lines replaced by a later line with the same id.
    pub duplicates: usize,
    /// Files whose incomplete last line was dropped.
    pub incomplete: Vec<PathBuf>,
}

/// Reads and joins `paths` (steps 1–3 of the module doc).
pub fn merge(paths: &[PathBuf]) -> Result<Merged, ResultsError> {
    let mut by_id: BTreeMap<String, RecordedLine> = BTreeMap::new();
    let mut merged = Merged::default();
    for path in paths {
        let file = read_results(path)?;
        if file.dropped_incomplete_line {
            merged.incomplete.push(path.clone());
        }
        for line in file.lines {
            merged.lines_read += 1;
            if by_id.insert(line.result.id.clone(), line).is_some() {
                merged.duplicates += 1;
            }
        }
    }
    merged.lines = by_id.into_values().collect();
    Ok(merged)
}

impl Merged {
    /// Writes the joined lines to `path` (step 4), replacing it.
    pub fn write(&self, path: &Path) -> Result<(), ResultsError> {
        let mut writer = ResultsWriter::create(path)?;
        for line in &self.lines {
            writer.append_text(&line.text)?;
        }
        Ok(())
    }

    /// The summary of the joined results.
    pub fn summary(&self) -> Summary {
        Summary::of(self.lines.iter().map(|line| &line.result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::results::{Outcome, Parameters, ResultLine};

    fn write(name: &str, lines: &[(&str, Outcome)]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("smmsim-merge-{}-{name}", std::process::id()));
        let mut text = String::new();
        for (id, outcome) in lines {
            let mut line = ResultLine::empty(id, Path::new("s"), Parameters::default(), None);
            line.outcome = *outcome;
            text.push_str(&serde_json::to_string(&line).expect("serializable"));
            text.push('\n');
        }
        std::fs::write(&path, text).expect("writable");
        path
    }

    #[test]
    fn the_last_line_of_an_id_wins_and_the_output_is_sorted() {
        let a = write("a.jsonl", &[("z", Outcome::Failed), ("b", Outcome::Passed)]);
        let b = write(
            "b.jsonl",
            &[("z", Outcome::Passed), ("a", Outcome::Crashed)],
        );
        let merged = merge(&[a.clone(), b.clone()]).expect("merges");
        let ids: Vec<&str> = merged.lines.iter().map(|l| l.result.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "z"]);
        assert_eq!(merged.lines[2].result.outcome, Outcome::Passed);
        assert_eq!((merged.lines_read, merged.duplicates), (4, 1));
        assert_eq!(merged.summary().counts.total(), 3);

        let out = std::env::temp_dir().join(format!("smmsim-merge-{}-out", std::process::id()));
        merged.write(&out).expect("written");
        let again = merge(std::slice::from_ref(&out)).expect("merges");
        assert_eq!(
            std::fs::read_to_string(&out)
                .expect("readable")
                .lines()
                .count(),
            3
        );
        assert_eq!(again.duplicates, 0);
        for path in [a, b, out] {
            let _ = std::fs::remove_file(path);
        }
    }
}
