//! Add patterns: the hot-plug events a matrix scenario gets, and what they must lead to.
//!
//! A pattern names a small train of events on the highest APIC IDs of the machine (the
//! CPUs absent after boot for every strategy, as long as `cpus` leaves them out). With
//! L = maxcpus − 1, P = maxcpus − 2, the train's start t₀ and its spacing s:
//!
//! | pattern | events | needs |
//! |---|---|---|
//! | `single` | add L at t₀ | maxcpus ≥ 2 |
//! | `back-to-back` | add P at t₀, add L at t₀ + 1 µs (both wait in RESET for one SMI, edk2 bug 2929) | maxcpus ≥ 3 |
//! | `sequential` | add P at t₀, add L at t₀ + s | maxcpus ≥ 3 |
//! | `add-remove-add` | add L at t₀, remove L at t₀ + s, add L at t₀ + 2s | maxcpus ≥ 2 |
//!
//! Each pattern also implies what the guest must show ([`Pattern::expectations`]): every
//! added CPU prints `cpu XXXXXXXX online`, a removed one `cpu XXXXXXXX removed`, and the CPUs
//! present at the end are those of boot plus the added ones. The matrix adds that every
//! SMBASE is unique and inside TSEG and that the guest exits with status 1.
//!
//! Times: boot takes longer on a larger machine (under 3 ms at maxcpus 4, around 200 ms for
//! strategy `max-cpus` at 4,096, which boots every possible CPU and then ejects the extras),
//! and so can a hot-add under `smbase-smram`, whose monarch scans every possible CPU. So by
//! default t₀ = 20 ms + 100 µs × maxcpus ([`auto_start_cycles`]) and s = 5 ms + 10 µs ×
//! maxcpus ([`auto_spacing_cycles`]), checked with runs of every strategy and pattern at
//! maxcpus 4 to 4,096; a matrix can set either to a fixed time.

use std::fmt;
use std::str::FromStr;

use crate::scenario_run::online_line;

/// The gap between the two adds of `back-to-back`, in nanoseconds: as `back-to-back.toml`,
/// short enough that both CPUs are waiting when the guest raises its hot-plug SMI.
pub const BACK_TO_BACK_GAP_NANOS: u64 = 1_000;

/// The first event's time on the smallest machine, in nanoseconds.
pub const AUTO_START_BASE_NANOS: u64 = 20_000_000;
/// What each possible CPU adds to the first event's time, in nanoseconds.
pub const AUTO_START_PER_CPU_NANOS: u64 = 100_000;
/// The spacing of events on the smallest machine, in nanoseconds.
pub const AUTO_SPACING_BASE_NANOS: u64 = 5_000_000;
/// What each possible CPU adds to the spacing, in nanoseconds.
pub const AUTO_SPACING_PER_CPU_NANOS: u64 = 10_000;

/// A named train of hot-plug events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// One CPU added.
    Single,
    /// Two CPUs added 1 µs apart.
    BackToBack,
    /// Two CPUs added one spacing apart.
    Sequential,
    /// One CPU added, removed and added again.
    AddRemoveAdd,
}

/// One event of a pattern, at its cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatternEvent {
    /// When, in cycles from the start of the run.
    pub at_cycle: u64,
    /// `cpu-add` or `cpu-remove`, as a scenario file names it.
    pub action: &'static str,
    /// The CPU.
    pub apic_id: u32,
}

/// What a pattern's run must end with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternExpectations {
    /// Console lines, in the order the events first cause them.
    pub console: Vec<String>,
    /// The APIC IDs present at the end, ascending.
    pub online: Vec<u32>,
}

impl Pattern {
    /// Every pattern, in the order help texts list them.
    pub const ALL: [Pattern; 4] = [
        Pattern::Single,
        Pattern::BackToBack,
        Pattern::Sequential,
        Pattern::AddRemoveAdd,
    ];

    /// The name matrix files and results use.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Single => "single",
            Pattern::BackToBack => "back-to-back",
            Pattern::Sequential => "sequential",
            Pattern::AddRemoveAdd => "add-remove-add",
        }
    }

    /// The events of the pattern on a machine of `max_cpus` CPUs, starting at `start_cycle`
    /// and `spacing_cycles` apart where the pattern spaces them; `clock_hz` turns the
    /// back-to-back gap into cycles. Times saturate rather than wrap. Empty when the machine
    /// has too few possible CPUs for the pattern (a matrix records that scenario as invalid).
    pub fn events(
        self,
        max_cpus: u32,
        start_cycle: u64,
        spacing_cycles: u64,
        clock_hz: u64,
    ) -> Vec<PatternEvent> {
        let event = |at_cycle: u64, action, apic_id| PatternEvent {
            at_cycle,
            action,
            apic_id,
        };
        let later = |steps: u64| start_cycle.saturating_add(spacing_cycles.saturating_mul(steps));
        let (Some(last), Some(second_last)) = (max_cpus.checked_sub(1), max_cpus.checked_sub(2))
        else {
            return Vec::new();
        };
        match self {
            Pattern::Single if last > 0 => vec![event(start_cycle, "cpu-add", last)],
            Pattern::BackToBack if second_last > 0 => {
                let gap = nanos_to_cycles(BACK_TO_BACK_GAP_NANOS, clock_hz).max(1);
                vec![
                    event(start_cycle, "cpu-add", second_last),
                    event(start_cycle.saturating_add(gap), "cpu-add", last),
                ]
            }
            Pattern::Sequential if second_last > 0 => vec![
                event(start_cycle, "cpu-add", second_last),
                event(later(1), "cpu-add", last),
            ],
            Pattern::AddRemoveAdd if last > 0 => vec![
                event(start_cycle, "cpu-add", last),
                event(later(1), "cpu-remove", last),
                event(later(2), "cpu-add", last),
            ],
            _ => Vec::new(),
        }
    }

    /// What a run of `events` must end with on a machine whose CPUs `0..boot_cpus` are
    /// present after boot.
    pub fn expectations(events: &[PatternEvent], boot_cpus: u32) -> PatternExpectations {
        let mut online: Vec<u32> = (0..boot_cpus).collect();
        let mut console = Vec::new();
        for event in events {
            let line = if event.action == "cpu-add" {
                online.push(event.apic_id);
                online_line(event.apic_id)
            } else {
                online.retain(|&apic_id| apic_id != event.apic_id);
                removed_line(event.apic_id)
            };
            // A line printed twice (a CPU added twice) is one expectation.
            if !console.contains(&line) {
                console.push(line);
            }
        }
        online.sort_unstable();
        online.dedup();
        PatternExpectations { console, online }
    }
}

/// The line the guest prints when CPU `apic_id` has been ejected.
pub fn removed_line(apic_id: u32) -> String {
    format!("cpu {apic_id:08X} removed")
}

/// The default time of a pattern's first event on a machine of `max_cpus` CPUs:
/// 20 ms + 100 µs × maxcpus, after boot with room to spare at every size.
pub fn auto_start_cycles(max_cpus: u32, clock_hz: u64) -> u64 {
    let nanos = AUTO_START_BASE_NANOS + AUTO_START_PER_CPU_NANOS * u64::from(max_cpus);
    nanos_to_cycles(nanos, clock_hz)
}

/// The default spacing of a pattern's events on a machine of `max_cpus` CPUs:
/// 5 ms + 10 µs × maxcpus, longer than a hot-add or a removal takes at that size.
pub fn auto_spacing_cycles(max_cpus: u32, clock_hz: u64) -> u64 {
    let nanos = AUTO_SPACING_BASE_NANOS + AUTO_SPACING_PER_CPU_NANOS * u64::from(max_cpus);
    nanos_to_cycles(nanos, clock_hz)
}

/// The cycles a seed shifts a pattern by: a number in `0..=jitter_cycles` drawn from
/// SplitMix64 of the seed, so a seed means the same shift on every host and in every
/// version, and the same seed shifts every strategy, size and pattern alike (runs that
/// differ only in strategy stay paired).
pub fn seeded_offset(seed: u64, jitter_cycles: u64) -> u64 {
    match jitter_cycles.checked_add(1) {
        Some(range) => splitmix64(seed) % range,
        None => splitmix64(seed),
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): one step from state `seed`.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `nanos` of simulated time in cycles of a `clock_hz` clock, rounded down, saturating.
fn nanos_to_cycles(nanos: u64, clock_hz: u64) -> u64 {
    let cycles = u128::from(nanos) * u128::from(clock_hz) / 1_000_000_000;
    u64::try_from(cycles).unwrap_or(u64::MAX)
}

impl FromStr for Pattern {
    type Err = String;

    /// Parses a [`Pattern::name`]; the error lists the valid names.
    fn from_str(text: &str) -> Result<Pattern, String> {
        Pattern::ALL
            .into_iter()
            .find(|pattern| pattern.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Pattern::ALL.iter().map(|p| p.name()).collect();
                format!("unknown pattern {text:?} (valid: {})", names.join(", "))
            })
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GHZ2: u64 = 2_000_000_000;

    fn add(at_cycle: u64, apic_id: u32) -> PatternEvent {
        PatternEvent {
            at_cycle,
            action: "cpu-add",
            apic_id,
        }
    }

    #[test]
    fn each_pattern_uses_the_highest_apic_ids() {
        assert_eq!(Pattern::Single.events(8, 100, 50, GHZ2), [add(100, 7)]);
        assert_eq!(
            Pattern::BackToBack.events(8, 100, 50, GHZ2),
            [add(100, 6), add(2_100, 7)]
        );
        assert_eq!(
            Pattern::Sequential.events(8, 100, 50, GHZ2),
            [add(100, 6), add(150, 7)]
        );
        let events = Pattern::AddRemoveAdd.events(4, 100, 50, GHZ2);
        assert_eq!(
            events
                .iter()
                .map(|e| (e.at_cycle, e.action, e.apic_id))
                .collect::<Vec<_>>(),
            [
                (100, "cpu-add", 3),
                (150, "cpu-remove", 3),
                (200, "cpu-add", 3)
            ]
        );
    }

    #[test]
    fn a_machine_too_small_for_a_pattern_gets_no_events() {
        for pattern in Pattern::ALL {
            assert!(pattern.events(0, 1, 1, GHZ2).is_empty());
            assert!(pattern.events(1, 1, 1, GHZ2).is_empty());
        }
        assert!(Pattern::BackToBack.events(2, 1, 1, GHZ2).is_empty());
        assert!(Pattern::Sequential.events(2, 1, 1, GHZ2).is_empty());
        assert_eq!(Pattern::Single.events(2, 1, 1, GHZ2).len(), 1);
        // Times saturate instead of wrapping.
        let events = Pattern::AddRemoveAdd.events(4, u64::MAX - 1, u64::MAX, GHZ2);
        assert_eq!(events[2].at_cycle, u64::MAX);
    }

    #[test]
    fn expectations_follow_the_events() {
        let events = Pattern::AddRemoveAdd.events(4, 100, 50, GHZ2);
        let expect = Pattern::expectations(&events, 1);
        assert_eq!(expect.online, [0, 3]);
        assert_eq!(
            expect.console,
            ["cpu 00000003 online", "cpu 00000003 removed"]
                .map(String::from)
                .to_vec()
        );
        let events = Pattern::BackToBack.events(4, 100, 50, GHZ2);
        assert_eq!(Pattern::expectations(&events, 2).online, [0, 1, 2, 3]);
    }

    #[test]
    fn automatic_times_grow_with_the_machine() {
        assert_eq!(auto_start_cycles(0, GHZ2), 40_000_000);
        assert_eq!(auto_start_cycles(4096, GHZ2), 2 * 429_600_000);
        assert_eq!(auto_spacing_cycles(4, GHZ2), 2 * 5_040_000);
    }

    #[test]
    fn seeded_offsets_are_fixed_numbers_within_the_jitter() {
        // SplitMix64's published first outputs for state 0 and 1.
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(seeded_offset(0, u64::MAX), 0xe220_a839_7b1d_cdaf);
        assert_eq!(seeded_offset(7, 0), 0);
        for seed in 0..100 {
            assert!(seeded_offset(seed, 1000) <= 1000);
        }
        assert_ne!(seeded_offset(1, 1_000_000), seeded_offset(2, 1_000_000));
    }

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_valid_ones() {
        for pattern in Pattern::ALL {
            assert_eq!(pattern.name().parse::<Pattern>(), Ok(pattern));
        }
        let error = "single-add".parse::<Pattern>().expect_err("unknown");
        assert!(error.contains("single, back-to-back, sequential, add-remove-add"));
    }
}
