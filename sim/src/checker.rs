//! The SMM safety checker (DESIGN.md §9): invariants checked on every run, each finding a
//! [`EventKind::Violation`] event in the run's stream, counted in the report.
//!
//! Where each check runs:
//! 1. in the core, where the state is at hand and the check costs nothing on the hot path:
//!    `smbase-outside-smram` at SMM entry, `smm-code-outside-smram` where a block is fetched
//!    in SMM, `unrelocated-cpu-runs` when a hot-added CPU leaves for non-SMM code (SIPI or
//!    RSM) with the SMBASE it was plugged in with;
//! 2. in the ordered event stream ([`Checker`], a stage of the recorder), for checks about
//!    several CPUs or about what the platform saw: `save-area-overlap`,
//!    `smram-write-attempt`, `controller-write-attempt`;
//! 3. at the end of the run, over the final SMBASE map: `duplicate-smbase`.
//!
//! Every check can be switched off by name ([`CheckSet`]); reports list the active ones.

use std::collections::BTreeMap;

use smmsim_traces::{Cycle, Event, EventKind};

use crate::cpu::smm::{DEFAULT_SMBASE, SAVE_AREA_START, SMI_ENTRY_OFFSET};

/// One invariant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// Two CPUs in SMM at the same time whose state-save areas overlap: one CPU's entry
    /// overwrites the other's saved state.
    SaveAreaOverlap,
    /// An instruction fetched in SMM from outside SMRAM (an SMM call-out), once SMRAM is
    /// locked.
    SmmCodeOutsideSmram,
    /// After SMRAM is locked, a CPU entering SMM with an SMBASE whose entry point or
    /// state-save area is outside SMRAM: code outside SMRAM would run in SMM.
    SmbaseOutsideSmram,
    /// A non-SMM write to SMRAM (blocked, but an attempted attack).
    SmramWriteAttempt,
    /// A write to the SMBASE controller from outside SMM or after its lock (dropped, but an
    /// attempted attack).
    ControllerWriteAttempt,
    /// A hot-added CPU running non-SMM code before its SMBASE was relocated: whoever
    /// controls that code controls where its first SMI lands.
    UnrelocatedCpuRuns,
    /// Two CPUs ending the run with the same SMBASE (other than the reset SMBASE, which
    /// unrelocated CPUs share by definition).
    DuplicateSmbase,
}

impl Check {
    /// Every check, in report order.
    pub const ALL: [Check; 7] = [
        Check::SaveAreaOverlap,
        Check::SmmCodeOutsideSmram,
        Check::SmbaseOutsideSmram,
        Check::SmramWriteAttempt,
        Check::ControllerWriteAttempt,
        Check::UnrelocatedCpuRuns,
        Check::DuplicateSmbase,
    ];

    /// Every check's name, in report order (for error messages listing the valid names).
    pub const NAMES: [&'static str; 7] = [
        "save-area-overlap",
        "smm-code-outside-smram",
        "smbase-outside-smram",
        "smram-write-attempt",
        "controller-write-attempt",
        "unrelocated-cpu-runs",
        "duplicate-smbase",
    ];

    /// The stable name scenarios and traces use.
    pub fn name(self) -> &'static str {
        match self {
            Check::SaveAreaOverlap => "save-area-overlap",
            Check::SmmCodeOutsideSmram => "smm-code-outside-smram",
            Check::SmbaseOutsideSmram => "smbase-outside-smram",
            Check::SmramWriteAttempt => "smram-write-attempt",
            Check::ControllerWriteAttempt => "controller-write-attempt",
            Check::UnrelocatedCpuRuns => "unrelocated-cpu-runs",
            Check::DuplicateSmbase => "duplicate-smbase",
        }
    }

    /// The check with this name.
    pub fn from_name(name: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|check| check.name() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Which checks are on: all by default, any switched off by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckSet(u8);

impl Default for CheckSet {
    fn default() -> CheckSet {
        CheckSet::all()
    }
}

impl CheckSet {
    /// Every check on.
    pub fn all() -> CheckSet {
        CheckSet(Check::ALL.iter().fold(0, |bits, check| bits | check.bit()))
    }

    /// No check on.
    pub fn none() -> CheckSet {
        CheckSet(0)
    }

    /// Whether `check` is on.
    #[inline]
    pub fn contains(self, check: Check) -> bool {
        self.0 & check.bit() != 0
    }

    /// This set without `check`.
    pub fn without(self, check: Check) -> CheckSet {
        CheckSet(self.0 & !check.bit())
    }

    /// The names of the checks that are on, in report order.
    pub fn names(self) -> Vec<&'static str> {
        Check::ALL
            .into_iter()
            .filter(|check| self.contains(*check))
            .map(Check::name)
            .collect()
    }
}

/// Builds a violation event.
pub fn violation(
    cycle: Cycle,
    cpu: u32,
    check: Check,
    detail: String,
    address: u64,
    other_cpu: Option<u32>,
) -> Event {
    let kind = EventKind::Violation {
        check: check.name().to_owned(),
        detail,
        address,
        other_cpu,
    };
    Event::at(cycle.0, cpu, kind)
}

/// The state-save area of a CPU with this SMBASE: [SMBASE + 0xFE00, SMBASE + 0x10000).
pub fn save_area(smbase: u64) -> std::ops::Range<u64> {
    smbase + SAVE_AREA_START..smbase + 0x1_0000
}

/// The SMI entry point of a CPU with this SMBASE.
pub fn entry_point(smbase: u64) -> u64 {
    smbase + SMI_ENTRY_OFFSET
}

/// A violation as reports show it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// When.
    pub cycle: u64,
    /// On which CPU.
    pub cpu: u32,
    /// Which check.
    pub check: String,
    /// What exactly.
    pub detail: String,
}

/// How many findings a report lists one by one (all are counted).
pub const FINDINGS_LISTED: usize = 32;

/// The stream stage of the checker: watches the ordered events, adds a violation event
/// right after each event that breaks an invariant, and counts every violation (the cores'
/// too).
#[derive(Debug)]
pub struct Checker {
    active: CheckSet,
    /// CPUs in SMM now, with the save area they entered with.
    in_smm: BTreeMap<u32, u64>,
    /// Violations by check name.
    pub counts: BTreeMap<String, u64>,
    /// The first [`FINDINGS_LISTED`] violations.
    pub findings: Vec<Finding>,
}

impl Checker {
    /// A checker running the `active` checks.
    pub fn new(active: CheckSet) -> Checker {
        Checker {
            active,
            in_smm: BTreeMap::new(),
            counts: BTreeMap::new(),
            findings: Vec::new(),
        }
    }

    /// The checks that are on.
    pub fn active(&self) -> CheckSet {
        self.active
    }

    /// Checks `events` (in order). Returns them with violation events inserted after the
    /// events that showed them, or `None` when there is nothing to insert (the common case,
    /// which then costs no copy).
    pub fn check(&mut self, events: &[Event]) -> Option<Vec<Event>> {
        let mut inserted: Vec<(usize, Event)> = Vec::new();
        for (index, event) in events.iter().enumerate() {
            if let EventKind::Violation { check, detail, .. } = &event.kind {
                self.count(event.cycle, event.cpu, check, detail);
            }
            if let Some(found) = self.examine(event) {
                if let EventKind::Violation { check, detail, .. } = &found.kind {
                    self.count(found.cycle, found.cpu, check, detail);
                }
                inserted.push((index, found));
            }
        }
        if inserted.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(events.len() + inserted.len());
        let mut next = inserted.into_iter().peekable();
        for (index, event) in events.iter().enumerate() {
            out.push(event.clone());
            while let Some((_, found)) = next.next_if(|(at, _)| *at == index) {
                out.push(found);
            }
        }
        Some(out)
    }

    fn count(&mut self, cycle: Cycle, cpu: u32, check: &str, detail: &str) {
        *self.counts.entry(check.to_owned()).or_default() += 1;
        if self.findings.len() < FINDINGS_LISTED {
            self.findings.push(Finding {
                cycle: cycle.0,
                cpu,
                check: check.to_owned(),
                detail: detail.to_owned(),
            });
        }
    }

    /// The violation `event` shows, if any.
    fn examine(&mut self, event: &Event) -> Option<Event> {
        let on = |check| self.active.contains(check);
        match &event.kind {
            EventKind::SmmEntry { save_area, .. } => {
                let mine = *save_area..save_area + 0x200;
                let overlap = self
                    .in_smm
                    .iter()
                    .find(|(_, other)| mine.start < **other + 0x200 && **other < mine.end)
                    .map(|(cpu, other)| (*cpu, *other));
                self.in_smm.insert(event.cpu, *save_area);
                let (other_cpu, other_area) = overlap?;
                on(Check::SaveAreaOverlap).then(|| {
                    violation(
                        event.cycle,
                        event.cpu,
                        Check::SaveAreaOverlap,
                        format!(
                            "CPU {} entered SMM with its save area at {save_area:#x} while CPU \
                             {other_cpu} was in SMM with its save area at {other_area:#x}",
                            event.cpu
                        ),
                        *save_area,
                        Some(other_cpu),
                    )
                })
            }
            EventKind::Rsm { .. } | EventKind::Init | EventKind::Reset { .. } => {
                self.in_smm.remove(&event.cpu);
                None
            }
            EventKind::CpuEjected { apic_id } => {
                self.in_smm.remove(apic_id);
                None
            }
            EventKind::SmramBlocked {
                address,
                write: true,
            } if on(Check::SmramWriteAttempt) => Some(violation(
                event.cycle,
                event.cpu,
                Check::SmramWriteAttempt,
                format!(
                    "CPU {} wrote SMRAM at {address:#x} from outside SMM (dropped)",
                    event.cpu
                ),
                *address,
                None,
            )),
            EventKind::ControllerWriteBlocked {
                offset,
                value,
                locked,
            } if on(Check::ControllerWriteAttempt) => Some(violation(
                event.cycle,
                event.cpu,
                Check::ControllerWriteAttempt,
                format!(
                    "CPU {} wrote {value:#x} to SMBASE controller register {offset:#x} {} (dropped)",
                    event.cpu,
                    if *locked { "after its lock" } else { "from outside SMM" }
                ),
                u64::from(*offset),
                None,
            )),
            _ => None,
        }
    }

    /// The end-of-run check over the final SMBASE map (APIC ID, SMBASE): one violation per
    /// CPU that shares its SMBASE with a CPU listed before it.
    pub fn final_map(&self, cycle: Cycle, map: &[(u32, u64)]) -> Vec<Event> {
        if !self.active.contains(Check::DuplicateSmbase) {
            return Vec::new();
        }
        let mut owners: BTreeMap<u64, u32> = BTreeMap::new();
        let mut found = Vec::new();
        // CPUs still on the reset SMBASE were never relocated; sharing it is the hazard
        // `save-area-overlap` and `unrelocated-cpu-runs` report when it matters, not a
        // relocation that ended in a collision.
        for &(cpu, smbase) in map.iter().filter(|(_, smbase)| *smbase != DEFAULT_SMBASE) {
            if let Some(&other) = owners.get(&smbase) {
                found.push(violation(
                    cycle,
                    cpu,
                    Check::DuplicateSmbase,
                    format!("CPUs {other} and {cpu} both have SMBASE {smbase:#x}"),
                    smbase,
                    Some(other),
                ));
            } else {
                owners.insert(smbase, cpu);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(cycle: u64, cpu: u32, kind: EventKind) -> Event {
        Event::at(cycle, cpu, kind)
    }

    fn entry(cycle: u64, cpu: u32, smbase: u64) -> Event {
        event(
            cycle,
            cpu,
            EventKind::SmmEntry {
                smbase,
                save_area: smbase + SAVE_AREA_START,
            },
        )
    }

    fn rsm(cycle: u64, cpu: u32, smbase: u64) -> Event {
        event(
            cycle,
            cpu,
            EventKind::Rsm {
                old_smbase: smbase,
                new_smbase: smbase,
            },
        )
    }

    fn checks(findings: &[Event]) -> Vec<String> {
        findings
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Violation { check, .. } => Some(check.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn two_cpus_in_smm_on_one_save_area_are_a_violation() {
        let mut checker = Checker::new(CheckSet::all());
        let out = checker
            .check(&[entry(1, 1, 0x30000), entry(2, 2, 0x30000)])
            .expect("a violation inserted");
        assert_eq!(checks(&out), ["save-area-overlap"]);
        assert_eq!(out.len(), 3);
        assert_eq!(checker.counts["save-area-overlap"], 1);
        assert_eq!(checker.findings[0].cpu, 2);
    }

    #[test]
    fn the_same_save_area_one_after_the_other_is_fine() {
        let mut checker = Checker::new(CheckSet::all());
        let out = checker.check(&[
            entry(1, 1, 0x30000),
            rsm(2, 1, 0x30000),
            entry(3, 2, 0x30000),
            // Distinct SMBASEs 8 KiB apart: their save areas do not overlap.
            entry(4, 3, 0x1000_0000),
            entry(5, 4, 0x1000_2000),
        ]);
        assert!(out.is_none(), "{out:?}");
        assert!(checker.counts.is_empty());
    }

    #[test]
    fn blocked_writes_are_attempted_attacks_but_reads_are_not() {
        let mut checker = Checker::new(CheckSet::all());
        let out = checker
            .check(&[
                event(
                    1,
                    0,
                    EventKind::SmramBlocked {
                        address: 0x38000,
                        write: false,
                    },
                ),
                event(
                    2,
                    0,
                    EventKind::SmramBlocked {
                        address: 0x38000,
                        write: true,
                    },
                ),
                event(
                    3,
                    1,
                    EventKind::ControllerWriteBlocked {
                        offset: 4,
                        value: 0x30000,
                        locked: false,
                    },
                ),
            ])
            .expect("violations inserted");
        assert_eq!(
            checks(&out),
            ["smram-write-attempt", "controller-write-attempt"]
        );
    }

    #[test]
    fn blocked_reads_and_other_cpus_outside_smm_are_no_attempts() {
        let mut checker = Checker::new(CheckSet::all());
        // A read of SMRAM from outside SMM is blocked too, but reads leak nothing to
        // attack with; SMM entries on distinct save areas and RSMs are routine.
        let out = checker.check(&[
            event(
                1,
                0,
                EventKind::SmramBlocked {
                    address: 0x38000,
                    write: false,
                },
            ),
            entry(2, 0, 0x1000_0000),
            rsm(3, 0, 0x1000_0000),
            event(4, 1, EventKind::HotAdd { apic_id: 1 }),
        ]);
        assert!(out.is_none(), "{out:?}");
        assert!(checker.counts.is_empty());
    }

    #[test]
    fn a_check_switched_off_stays_silent() {
        let active = CheckSet::all().without(Check::SaveAreaOverlap);
        assert!(!active.names().contains(&"save-area-overlap"));
        let mut checker = Checker::new(active);
        assert!(checker
            .check(&[entry(1, 1, 0x30000), entry(2, 2, 0x30000)])
            .is_none());
        assert_eq!(
            checker
                .final_map(Cycle(9), &[(0, 0x1000), (1, 0x1000)])
                .len(),
            1
        );
        let quiet = Checker::new(CheckSet::none());
        assert!(quiet
            .final_map(Cycle(9), &[(0, 0x1000), (1, 0x1000)])
            .is_empty());
    }

    #[test]
    fn the_final_map_names_cpus_sharing_an_smbase() {
        let checker = Checker::new(CheckSet::all());
        let found = checker.final_map(Cycle(9), &[(0, 0x1000), (1, 0x3000), (2, 0x1000)]);
        assert_eq!(checks(&found), ["duplicate-smbase"]);
        assert_eq!(found[0].cpu, 2);
        assert!(checker
            .final_map(Cycle(9), &[(0, 0x1000), (1, 0x3000)])
            .is_empty());
    }

    #[test]
    fn violations_recorded_by_the_cores_are_counted_as_they_pass() {
        let mut checker = Checker::new(CheckSet::all());
        let core_finding = violation(
            Cycle(4),
            1,
            Check::SmbaseOutsideSmram,
            "entry outside".to_owned(),
            0x38000,
            None,
        );
        assert!(checker.check(&[core_finding]).is_none());
        assert_eq!(checker.counts["smbase-outside-smram"], 1);
    }

    #[test]
    fn names_round_trip() {
        for (check, name) in Check::ALL.into_iter().zip(Check::NAMES) {
            assert_eq!(check.name(), name);
            assert_eq!(Check::from_name(check.name()), Some(check));
        }
        assert_eq!(Check::from_name("nope"), None);
    }
}
