//! Splitting a batch into deterministic slices, so that a Slurm job array or a Kubernetes
//! indexed Job runs one large batch on many machines, each machine its own slice.
//!
//! 1. The slice comes from `--shard K/N` (K counted from 1), or else from the environment a
//!    job array sets ([`Shard::from_env`]), or else there is none (the whole batch);
//! 2. [`Shard::select`] sorts every scenario id of the batch (byte order) and keeps the ids
//!    at positions K−1, K−1+N, K−1+2N, …: every N-th, so each slice gets a mix of the
//!    batch's strategies and sizes rather than one contiguous (and maybe slow) corner. The
//!    same inputs give the same slices on every machine, and the N slices together hold
//!    every scenario exactly once.
//!
//! The environment, in order of precedence (the first that is set decides):
//!
//! | variables | slice |
//! |---|---|
//! | `SLURM_ARRAY_TASK_ID`, `_MIN`, `_COUNT` (`_STEP`, default 1) | K = (ID − MIN) / STEP + 1, N = COUNT |
//! | `JOB_COMPLETION_INDEX` (0-based), `SMMSIM_SHARD_COUNT` | K = INDEX + 1, N = SMMSIM_SHARD_COUNT |
//!
//! So `sbatch --array=0-7` and `--array=1-8` both give slices 1/8 … 8/8. Kubernetes does not
//! tell a pod the Job's `completions`, so the manifest passes it as `SMMSIM_SHARD_COUNT`.
//! An explicit `--shard` wins over the environment (`--shard 1/1` runs everything).

use std::fmt;
use std::str::FromStr;

/// Slurm: the array index of this task, as `--array` lists it.
pub const SLURM_TASK_ID: &str = "SLURM_ARRAY_TASK_ID";
/// Slurm: the smallest index of the array.
pub const SLURM_TASK_MIN: &str = "SLURM_ARRAY_TASK_MIN";
/// Slurm: the step between indices (`--array=0-15:4`).
pub const SLURM_TASK_STEP: &str = "SLURM_ARRAY_TASK_STEP";
/// Slurm: how many tasks the array has.
pub const SLURM_TASK_COUNT: &str = "SLURM_ARRAY_TASK_COUNT";
/// Kubernetes indexed Job: this pod's index, from 0.
pub const K8S_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";
/// The number of slices, for environments that do not say it (Kubernetes).
pub const SHARD_COUNT: &str = "SMMSIM_SHARD_COUNT";

/// One slice of a batch: the `index`-th (from 1) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// Why a slice could not be determined.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// `--shard` is not `K/N` with 1 ≤ K ≤ N. The message leaves the value out: the
    /// command-line parser quotes it.
    #[error("{reason}; expected K/N with 1 <= K <= N, like 2/8")]
    BadSpec {
        /// What was given.
        given: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An environment variable holds something other than a number.
    #[error("environment variable {name}={value:?} is not a whole number")]
    NotANumber {
        /// The variable.
        name: &'static str,
        /// Its value (lossily decoded).
        value: String,
    },
    /// One variable of a job array is set and another it needs is not.
    #[error("{present} is set but {missing} is not: {hint}")]
    Missing {
        /// The variable that is set.
        present: &'static str,
        /// The one that is needed with it.
        missing: &'static str,
        /// What to do.
        hint: &'static str,
    },
    /// The variables are set but do not describe a slice.
    #[error("{0}; pass --shard K/N to choose the slice yourself")]
    Inconsistent(String),
}

impl Shard {
    /// The slice `index` (from 1) of `count`, when `1 <= index <= count`.
    pub fn new(index: u32, count: u32) -> Option<Shard> {
        (index >= 1 && index <= count).then_some(Shard { index, count })
    }

    /// Which slice, from 1.
    pub fn index(self) -> u32 {
        self.index
    }

    /// How many slices.
    pub fn count(self) -> u32 {
        self.count
    }

    /// The slice the environment describes, if any, and the variables that said so (for the
    /// batch's first line). `var` looks a variable up: [`std::env::var_os`] in the binary, a
    /// table in tests.
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<(Shard, String)>, ShardError> {
        let number = |name: &'static str| -> Result<Option<u64>, ShardError> {
            match var(name) {
                None => Ok(None),
                Some(value) => value
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| ShardError::NotANumber { name, value }),
            }
        };
        let required = |present: &'static str, missing: &'static str, hint: &'static str| {
            move |value: Option<u64>| {
                value.ok_or(ShardError::Missing {
                    present,
                    missing,
                    hint,
                })
            }
        };
        if let Some(id) = number(SLURM_TASK_ID)? {
            const HINT: &str = "this Slurm is too old to describe its job array; pass --shard K/N";
            let min = required(SLURM_TASK_ID, SLURM_TASK_MIN, HINT)(number(SLURM_TASK_MIN)?)?;
            let count = required(SLURM_TASK_ID, SLURM_TASK_COUNT, HINT)(number(SLURM_TASK_COUNT)?)?;
            let step = number(SLURM_TASK_STEP)?.unwrap_or(1);
            let shard = slurm_shard(id, min, step, count)?;
            let from = format!(
                "{SLURM_TASK_ID}={id} ({SLURM_TASK_MIN}={min}, {SLURM_TASK_STEP}={step}, \
                 {SLURM_TASK_COUNT}={count})"
            );
            return Ok(Some((shard, from)));
        }
        if let Some(index) = number(K8S_COMPLETION_INDEX)? {
            let count = required(
                K8S_COMPLETION_INDEX,
                SHARD_COUNT,
                "set it to the Job's completions, or pass --shard K/N",
            )(number(SHARD_COUNT)?)?;
            let shard = index
                .checked_add(1)
                .and_then(|k| Some((u32::try_from(k).ok()?, u32::try_from(count).ok()?)))
                .and_then(|(k, n)| Shard::new(k, n))
                .ok_or_else(|| {
                    ShardError::Inconsistent(format!(
                        "{K8S_COMPLETION_INDEX}={index} is not below {SHARD_COUNT}={count}"
                    ))
                })?;
            let from = format!("{K8S_COMPLETION_INDEX}={index} ({SHARD_COUNT}={count})");
            return Ok(Some((shard, from)));
        }
        Ok(None)
    }

    /// Which of `ids` this slice runs, as a mask in the order of `ids`: an id is kept when
    /// its rank among all the ids in byte order is `index - 1` modulo `count`.
    pub fn select<S: AsRef<str>>(self, ids: &[S]) -> Vec<bool> {
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by(|&a, &b| ids[a].as_ref().cmp(ids[b].as_ref()));
        let mut keep = vec![false; ids.len()];
        let count = self.count as usize;
        let wanted = (self.index - 1) as usize;
        for (rank, &position) in order.iter().enumerate() {
            keep[position] = rank % count == wanted;
        }
        keep
    }
}

/// The slice of Slurm array task `id` in the array `min`, `min + step`, … of `count` tasks.
fn slurm_shard(id: u64, min: u64, step: u64, count: u64) -> Result<Shard, ShardError> {
    let describe = || {
        format!(
            "{SLURM_TASK_ID}={id} is not one of the {count} indices {min}, {min}+{step}, … \
             ({SLURM_TASK_MIN}, {SLURM_TASK_STEP}, {SLURM_TASK_COUNT})"
        )
    };
    if step == 0 || id < min || (id - min) % step != 0 {
        return Err(ShardError::Inconsistent(describe()));
    }
    let position = (id - min) / step;
    if position >= count {
        return Err(ShardError::Inconsistent(describe()));
    }
    let index = u32::try_from(position + 1).map_err(|_| ShardError::Inconsistent(describe()))?;
    let count = u32::try_from(count).map_err(|_| ShardError::Inconsistent(describe()))?;
    Shard::new(index, count).ok_or_else(|| ShardError::Inconsistent(describe()))
}

impl FromStr for Shard {
    type Err = ShardError;

    /// Reads `K/N`: slice K (from 1) of N.
    fn from_str(text: &str) -> Result<Shard, ShardError> {
        let bad = |reason: &str| ShardError::BadSpec {
            given: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (k, n) = text.split_once('/').ok_or_else(|| bad("no '/'"))?;
        let k: u32 = k
            .trim()
            .parse()
            .map_err(|_| bad("K is not a whole number"))?;
        let n: u32 = n
            .trim()
            .parse()
            .map_err(|_| bad("N is not a whole number"))?;
        if n == 0 {
            return Err(bad("N is 0"));
        }
        if k == 0 {
            return Err(bad("K counts from 1"));
        }
        Shard::new(k, n).ok_or_else(|| bad(&format!("K = {k} is greater than N = {n}")))
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    fn from_env(vars: &[(&str, &str)]) -> Result<Option<Shard>, ShardError> {
        Shard::from_env(env(vars)).map(|found| found.map(|(shard, _)| shard))
    }

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        assert_eq!("2/8".parse(), Ok(Shard { index: 2, count: 8 }));
        assert_eq!(" 1 / 1 ".parse(), Ok(Shard { index: 1, count: 1 }));
        assert_eq!(
            "2/8".parse::<Shard>().map(|s| s.to_string()),
            Ok("2/8".into())
        );
        for (spec, reason) in [
            ("3/2", "K = 3 is greater than N = 2"),
            ("0/2", "K counts from 1"),
            ("1/0", "N is 0"),
            ("12", "no '/'"),
            ("a/2", "K is not a whole number"),
            ("1/-2", "N is not a whole number"),
            ("1/99999999999", "N is not a whole number"),
            ("", "no '/'"),
        ] {
            let error = spec.parse::<Shard>().expect_err(spec);
            assert!(error.to_string().contains(reason), "{spec}: {error}");
        }
    }

    #[test]
    fn slices_are_disjoint_cover_everything_and_ignore_input_order() {
        let ids: Vec<String> = (0..23).map(|i| format!("id{i:02}")).collect();
        let mut reversed = ids.clone();
        reversed.reverse();
        let mut seen = vec![0; ids.len()];
        for k in 1..=4 {
            let shard = Shard::new(k, 4).expect("valid");
            let keep = shard.select(&ids);
            let keep_reversed = shard.select(&reversed);
            for (i, kept) in keep.iter().enumerate() {
                seen[i] += u32::from(*kept);
                // The same id is kept whatever the input order.
                assert_eq!(*kept, keep_reversed[ids.len() - 1 - i]);
            }
        }
        assert!(seen.iter().all(|&count| count == 1), "{seen:?}");
        // Every N-th in sorted order.
        let keep = Shard::new(2, 4).expect("valid").select(&ids);
        let kept: Vec<&str> = ids
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(kept, ["id01", "id05", "id09", "id13", "id17", "id21"]);
        assert!(Shard::new(3, 4)
            .expect("valid")
            .select::<&str>(&[])
            .is_empty());
    }

    #[test]
    fn slurm_arrays_from_zero_or_one_or_with_a_step_give_the_same_slices() {
        let zero = [
            ("SLURM_ARRAY_TASK_ID", "0"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "8"),
        ];
        assert_eq!(from_env(&zero), Ok(Shard::new(1, 8)));
        let one = [
            ("SLURM_ARRAY_TASK_ID", "8"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "8"),
            ("SLURM_ARRAY_TASK_STEP", "1"),
        ];
        assert_eq!(from_env(&one), Ok(Shard::new(8, 8)));
        let stepped = [
            ("SLURM_ARRAY_TASK_ID", "13"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_STEP", "4"),
        ];
        assert_eq!(from_env(&stepped), Ok(Shard::new(4, 4)));
        let (_, from) = Shard::from_env(env(&stepped)).expect("ok").expect("some");
        assert!(from.starts_with("SLURM_ARRAY_TASK_ID=13"), "{from}");
    }

    #[test]
    fn slurm_variables_that_do_not_describe_a_slice_are_refused() {
        for (vars, needle) in [
            (
                &[("SLURM_ARRAY_TASK_ID", "3")][..],
                "SLURM_ARRAY_TASK_MIN is not",
            ),
            (
                &[("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_MIN", "0")][..],
                "SLURM_ARRAY_TASK_COUNT is not",
            ),
            (
                &[
                    ("SLURM_ARRAY_TASK_ID", "8"),
                    ("SLURM_ARRAY_TASK_MIN", "0"),
                    ("SLURM_ARRAY_TASK_COUNT", "8"),
                ][..],
                "not one of the 8 indices",
            ),
            (
                &[
                    ("SLURM_ARRAY_TASK_ID", "2"),
                    ("SLURM_ARRAY_TASK_MIN", "1"),
                    ("SLURM_ARRAY_TASK_COUNT", "4"),
                    ("SLURM_ARRAY_TASK_STEP", "2"),
                ][..],
                "not one of the 4 indices",
            ),
            (
                &[
                    ("SLURM_ARRAY_TASK_ID", "0"),
                    ("SLURM_ARRAY_TASK_MIN", "0"),
                    ("SLURM_ARRAY_TASK_COUNT", "0"),
                ][..],
                "not one of the 0 indices",
            ),
            (
                &[
                    ("SLURM_ARRAY_TASK_ID", "0"),
                    ("SLURM_ARRAY_TASK_MIN", "0"),
                    ("SLURM_ARRAY_TASK_COUNT", "2"),
                    ("SLURM_ARRAY_TASK_STEP", "0"),
                ][..],
                "not one of",
            ),
            (
                &[("SLURM_ARRAY_TASK_ID", "x1")][..],
                "\"x1\" is not a whole",
            ),
        ] {
            let error = from_env(vars).expect_err(needle);
            assert!(error.to_string().contains(needle), "{vars:?}: {error}");
        }
    }

    #[test]
    fn kubernetes_indices_count_from_zero_and_need_the_count() {
        let vars = [("JOB_COMPLETION_INDEX", "0"), ("SMMSIM_SHARD_COUNT", "3")];
        assert_eq!(from_env(&vars), Ok(Shard::new(1, 3)));
        let vars = [("JOB_COMPLETION_INDEX", "2"), ("SMMSIM_SHARD_COUNT", "3")];
        assert_eq!(from_env(&vars), Ok(Shard::new(3, 3)));
        let error = from_env(&[("JOB_COMPLETION_INDEX", "3"), ("SMMSIM_SHARD_COUNT", "3")])
            .expect_err("out of range");
        assert!(error.to_string().contains("is not below"), "{error}");
        let error = from_env(&[("JOB_COMPLETION_INDEX", "0")]).expect_err("no count");
        assert!(
            error.to_string().contains("SMMSIM_SHARD_COUNT is not:"),
            "{error}"
        );
        let error = from_env(&[("JOB_COMPLETION_INDEX", "0"), ("SMMSIM_SHARD_COUNT", "")])
            .expect_err("empty count");
        assert!(error.to_string().contains("not a whole number"), "{error}");
    }

    #[test]
    fn slurm_wins_over_kubernetes_and_nothing_set_means_no_slice() {
        let vars = [
            ("JOB_COMPLETION_INDEX", "0"),
            ("SMMSIM_SHARD_COUNT", "3"),
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ];
        assert_eq!(from_env(&vars), Ok(Shard::new(2, 2)));
        assert_eq!(from_env(&[]), Ok(None));
        assert_eq!(from_env(&[("SMMSIM_SHARD_COUNT", "3")]), Ok(None));
    }
}
