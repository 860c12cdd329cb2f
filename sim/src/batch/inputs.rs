//! From the paths on the command line to the jobs of a batch, each with a stable id.
//!
//! 1. A directory stands for the `*.toml` files directly in it (not its subdirectories), in
//!    file-name order; a file stands for itself. A path that does not exist, or a directory
//!    with no `*.toml` file, is an error before anything runs.
//! 2. A file with a top-level `[matrix]` table is a matrix file and stands for the scenarios
//!    it expands to ([`Matrix`]); a mistake in a matrix file is an error.
//! 3. Any other file is a scenario file. One that cannot be read or is not a valid scenario
//!    is still a job, recorded as `invalid` with the scenario checker's message, so that one
//!    bad file among hundreds does not stop the rest.
//!
//! Ids: a scenario file's id is its path as named on the command line (through the
//! directory when a directory was named), without `.` components: `scenarios/formula.toml`.
//! A matrix scenario's id is `NAME/axis=value,…`. Ids are what `--resume`, `--shard` and
//! `smmsim merge` go by, so every machine of a sharded batch must name the inputs the same
//! way (run each from the same directory with the same arguments). The same file named
//! twice is run once; two different sources giving the same id are an error.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use super::matrix::{is_matrix, Matrix, MatrixError};
use super::results::Parameters;
use super::Job;
use crate::scenario::{fnv1a_64, Scenario, ScenarioError};

/// Why the inputs of a batch cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A path that does not exist (or cannot be looked at).
    #[error("cannot find scenario input {}: {error}", .path.display())]
    Missing {
        /// The path.
        path: PathBuf,
        /// What the host said; part of the message so that it stands alone.
        error: std::io::Error,
    },
    /// A directory that cannot be listed.
    #[error("cannot list directory {}: {error}", .path.display())]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// What the host said; part of the message so that it stands alone.
        error: std::io::Error,
    },
    /// A directory with no `*.toml` file in it.
    #[error("directory {} holds no *.toml scenario or matrix file", .path.display())]
    EmptyDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// A matrix file with a mistake.
    #[error(transparent)]
    Matrix(#[from] MatrixError),
    /// Two different sources give the same id.
    #[error(
        "scenario id {id:?} comes from both {} and {}: ids must be unique (give the matrices \
         different names)",
        .first.display(),
        .second.display()
    )]
    DuplicateId {
        /// The id.
        id: String,
        /// Where it came from first.
        first: PathBuf,
        /// Where it came from again.
        second: PathBuf,
    },
}

/// The jobs of `paths`, in the order given (steps 1–3 of the module doc).
pub fn expand(paths: &[PathBuf]) -> Result<Vec<Job>, InputError> {
    let mut jobs = Vec::new();
    let mut sources: HashMap<String, PathBuf> = HashMap::new();
    for path in paths {
        for file in files_of(path)? {
            for job in file_jobs(&file)? {
                match sources.get(&job.id) {
                    // The same file named twice (`dir` and `dir/x.toml`, `./x.toml` and
                    // `x.toml`) runs once.
                    Some(first) if file_id(first) == file_id(&job.source) => continue,
                    Some(first) => {
                        return Err(InputError::DuplicateId {
                            id: job.id,
                            first: first.clone(),
                            second: job.source,
                        })
                    }
                    None => {
                        sources.insert(job.id.clone(), job.source.clone());
                        jobs.push(job);
                    }
                }
            }
        }
    }
    Ok(jobs)
}

/// The id of the scenario file `path`: the path without `.` components, `/`-separated.
pub fn file_id(path: &Path) -> String {
    let mut id = String::new();
    for component in path.components() {
        match component {
            Component::CurDir => continue,
            Component::RootDir => id.push('/'),
            Component::Prefix(prefix) => id.push_str(&prefix.as_os_str().to_string_lossy()),
            Component::ParentDir | Component::Normal(_) => {
                if !id.is_empty() && !id.ends_with('/') {
                    id.push('/');
                }
                id.push_str(&component.as_os_str().to_string_lossy());
            }
        }
    }
    id
}

/// Step 1: the files a path stands for.
fn files_of(path: &Path) -> Result<Vec<PathBuf>, InputError> {
    let metadata = std::fs::metadata(path).map_err(|error| InputError::Missing {
        path: path.to_owned(),
        error,
    })?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let read_dir = |error| InputError::ReadDir {
        path: path.to_owned(),
        error,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_dir)? {
        let entry = entry.map_err(read_dir)?;
        let file = entry.path();
        let is_toml = file
            .extension()
            .is_some_and(|extension| extension == "toml");
        if is_toml && std::fs::metadata(&file).is_ok_and(|metadata| metadata.is_file()) {
            files.push(file);
        }
    }
    if files.is_empty() {
        return Err(InputError::EmptyDirectory {
            path: path.to_owned(),
        });
    }
    files.sort();
    Ok(files)
}

/// Steps 2–3: the jobs of one file.
fn file_jobs(path: &Path) -> Result<Vec<Job>, InputError> {
    let id = file_id(path);
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            let message = ScenarioError::Unreadable {
                path: path.to_owned(),
                error,
            }
            .to_string();
            return Ok(vec![invalid(id, path, None, message)]);
        }
    };
    let hash = Some(fnv1a_64(&bytes));
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            let message = format!(
                "cannot read scenario file {}: not UTF-8 ({error})",
                path.display()
            );
            return Ok(vec![invalid(id, path, hash, message)]);
        }
    };
    if is_matrix(&text) {
        return Ok(Matrix::parse(&text, path)?.expand());
    }
    let job = match Scenario::from_str(&text, path) {
        Ok(scenario) => Job {
            id,
            source: path.to_owned(),
            parameters: Parameters {
                strategy: Some(scenario.machine.strategy.name().to_owned()),
                cpus: Some(scenario.machine.cpus),
                maxcpus: Some(scenario.machine.max_cpus),
                profile: Some(scenario.machine.profile.name().to_owned()),
                ..Parameters::default()
            },
            scenario_hash: hash,
            scenario: Ok(scenario),
        },
        Err(error) => invalid(id, path, hash, error.to_string()),
    };
    Ok(vec![job])
}

/// A job for a file that is not a valid scenario.
fn invalid(id: String, path: &Path, scenario_hash: Option<u64>, message: String) -> Job {
    Job {
        id,
        source: path.to_owned(),
        parameters: Parameters::default(),
        scenario_hash,
        scenario: Err(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_drop_dot_components_only() {
        assert_eq!(
            file_id(Path::new("scenarios/formula.toml")),
            "scenarios/formula.toml"
        );
        assert_eq!(
            file_id(Path::new("./scenarios//formula.toml")),
            "scenarios/formula.toml"
        );
        assert_eq!(file_id(Path::new("../x/./y.toml")), "../x/y.toml");
        assert_eq!(file_id(Path::new("/abs/y.toml")), "/abs/y.toml");
        assert_eq!(file_id(Path::new("y.toml")), "y.toml");
    }

    #[test]
    fn a_missing_path_is_an_error_naming_it() {
        let error = expand(&[PathBuf::from("/nonexistent/smmsim/x.toml")]).expect_err("missing");
        assert!(
            error.to_string().contains("/nonexistent/smmsim/x.toml"),
            "{error}"
        );
    }
}
