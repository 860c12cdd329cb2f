//! Narrowing a trace to the events someone asked about: one CPU, some kinds, a cycle range.
//!
//! 1. The caller fills a [`Filter`] from command-line options.
//! 2. [`Filter::compile`] checks the kind names against [`EventKind::NAMES`] and the range,
//!    once, so a typo is an error naming every valid kind rather than an empty output.
//! 3. The compiled form tests each event with a bit mask and two comparisons.

use crate::event::{Event, EventKind};
use crate::time::Cycle;
use crate::view::ViewError;

/// Which events a view should include. Every field narrows; the default includes all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only events on this CPU index.
    pub cpu: Option<u32>,
    /// Only events whose [`EventKind::kind_name`] is one of these; empty means every kind.
    pub kinds: Vec<String>,
    /// Only events at or after this cycle (the reader seeks to it).
    pub from: Option<Cycle>,
    /// Only events at or before this cycle (inclusive, so `--from c --to c` shows cycle c).
    pub to: Option<Cycle>,
}

// The kind mask below has one bit per kind.
const _: () = assert!(EventKind::NAMES.len() <= 64);

/// A validated [`Filter`], cheap to test per event.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CompiledFilter {
    cpu: Option<u32>,
    /// Bit `i` set: kind `NAMES[i]` is included.
    kinds: u64,
    pub(crate) from: Cycle,
    pub(crate) to: Cycle,
}

impl Filter {
    /// Checks the kind names and range and builds the per-event test.
    pub(crate) fn compile(&self) -> Result<CompiledFilter, ViewError> {
        let mut kinds = if self.kinds.is_empty() { u64::MAX } else { 0 };
        for name in &self.kinds {
            let index = EventKind::index_of_name(name).ok_or_else(|| ViewError::UnknownKind {
                name: name.clone(),
                valid: EventKind::NAMES.join(", "),
            })?;
            kinds |= 1 << index;
        }
        let from = self.from.unwrap_or(Cycle::ZERO);
        let to = self.to.unwrap_or(Cycle(u64::MAX));
        if from > to {
            return Err(ViewError::EmptyRange {
                from: from.0,
                to: to.0,
            });
        }
        Ok(CompiledFilter {
            cpu: self.cpu,
            kinds,
            from,
            to,
        })
    }
}

impl CompiledFilter {
    /// Whether `event` passes the CPU and kind tests (the range is the caller's: it seeks
    /// to `from` and stops after `to`).
    pub(crate) fn matches(&self, event: &Event) -> bool {
        self.cpu.map_or(true, |cpu| cpu == event.cpu)
            && self.kinds & (1 << event.kind.kind_index()) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kind_lists_the_valid_ones() {
        let filter = Filter {
            kinds: vec!["smi".into()],
            ..Filter::default()
        };
        let message = filter.compile().unwrap_err().to_string();
        assert!(
            message
                .starts_with("unknown event kind \"smi\"; valid kinds are: smi_raised, smm_entry,"),
            "{message}"
        );
        assert!(message.ends_with("violation, instruction"), "{message}");
    }

    #[test]
    fn reversed_range_is_refused() {
        let filter = Filter {
            from: Some(Cycle(10)),
            to: Some(Cycle(9)),
            ..Filter::default()
        };
        assert!(matches!(
            filter.compile(),
            Err(ViewError::EmptyRange { from: 10, to: 9 })
        ));
    }

    #[test]
    fn cpu_and_kinds_both_narrow() {
        let filter = Filter {
            cpu: Some(1),
            kinds: vec!["halt".into(), "wake".into()],
            ..Filter::default()
        }
        .compile()
        .unwrap();
        let event = |cpu, kind| Event {
            cycle: Cycle(0),
            cpu,
            kind,
        };
        assert!(filter.matches(&event(1, EventKind::Halt)));
        assert!(filter.matches(&event(1, EventKind::Wake)));
        assert!(!filter.matches(&event(0, EventKind::Halt)));
        assert!(!filter.matches(&event(1, EventKind::Init)));
    }
}
