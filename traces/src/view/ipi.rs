//! Pairing each IPI delivery with the send that caused it, so viewers can draw an arrow
//! from sender to receiver.
//!
//! A trace records the two ends separately: `IpiSent` on the sending CPU names the
//! destination APIC ID, `IpiDelivered` on the receiving CPU names the source APIC ID. CPU
//! indices are not APIC IDs (hot-added CPUs in particular may differ), so the matcher
//! learns which APIC ID each CPU index has from the pairs it makes.
//!
//! 1. A send is kept as pending (at most [`MAX_PENDING`], oldest dropped first).
//! 2. A delivery takes the oldest pending send with the same delivery mode whose sender
//!    and destination agree with what is known: first assuming an unlearned CPU's APIC ID
//!    equals its index (the usual power-on numbering), then with unlearned CPUs matching
//!    anything.
//! 3. A match teaches the sender's and (for a unicast) the receiver's APIC ID. A
//!    broadcast (destination 0xFF or 0xFFFF_FFFF) stays pending so every receiver can
//!    match it once.

use std::collections::{HashMap, VecDeque};

/// Sends kept waiting for their delivery. Deliveries follow sends within a few hundred
/// cycles in practice; the bound keeps a trace full of undelivered sends from making each
/// delivery scan grow without limit.
pub(crate) const MAX_PENDING: usize = 256;

/// The xAPIC broadcast destination (SDM Vol. 3A §12.6.1).
const XAPIC_BROADCAST: u32 = 0xFF;
/// The x2APIC broadcast destination.
const X2APIC_BROADCAST: u32 = 0xFFFF_FFFF;

/// The send end of an IPI, as handed back by a match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Send {
    /// CPU index of the sender.
    pub(crate) cpu: u32,
    /// Cycle of the send.
    pub(crate) cycle: u64,
    /// ICR delivery mode.
    pub(crate) mode: u8,
    /// Destination APIC ID as written.
    pub(crate) destination: u32,
    /// CPUs that already matched this send (only grows for broadcasts).
    received_by: Vec<u32>,
}

impl Send {
    fn is_broadcast(&self) -> bool {
        matches!(self.destination, XAPIC_BROADCAST | X2APIC_BROADCAST)
    }
}

/// Pairs IPI sends with deliveries; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct IpiMatcher {
    pending: VecDeque<Send>,
    apic_of_cpu: HashMap<u32, u32>,
}

impl IpiMatcher {
    /// Records a send.
    pub(crate) fn sent(&mut self, cpu: u32, cycle: u64, mode: u8, destination: u32) {
        if self.pending.len() == MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(Send {
            cpu,
            cycle,
            mode,
            destination,
            received_by: Vec::new(),
        });
    }

    /// Finds the send a delivery on `cpu` from APIC `source` belongs to, if any.
    pub(crate) fn delivered(&mut self, cpu: u32, mode: u8, source: u32) -> Option<Send> {
        let position = self
            .find(cpu, mode, source, true)
            .or_else(|| self.find(cpu, mode, source, false))?;
        let send = self.pending.get_mut(position)?;
        self.apic_of_cpu.insert(send.cpu, source);
        if send.is_broadcast() {
            send.received_by.push(cpu);
            return Some(send.clone());
        }
        self.apic_of_cpu.insert(cpu, send.destination);
        self.pending.remove(position)
    }

    /// The APIC ID learned for `cpu`, if any pair has shown it.
    pub(crate) fn apic_id(&self, cpu: u32) -> Option<u32> {
        self.apic_of_cpu.get(&cpu).copied()
    }

    /// The oldest pending send a delivery matches; `assume_identity` treats unlearned CPUs
    /// as having APIC ID = index instead of matching anything.
    fn find(&self, cpu: u32, mode: u8, source: u32, assume_identity: bool) -> Option<usize> {
        let agrees = |known: Option<u32>, index: u32, apic_id: u32| match known {
            Some(known) => known == apic_id,
            None => !assume_identity || index == apic_id,
        };
        let receiver = self.apic_id(cpu);
        self.pending.iter().position(|send| {
            send.mode == mode
                && agrees(self.apic_id(send.cpu), send.cpu, source)
                && if send.is_broadcast() {
                    !send.received_by.contains(&cpu)
                } else {
                    agrees(receiver, cpu, send.destination)
                }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_numbering_pairs_interleaved_sends() {
        let mut matcher = IpiMatcher::default();
        matcher.sent(0, 10, 2, 1);
        matcher.sent(0, 11, 2, 2);
        let second = matcher.delivered(2, 2, 0).unwrap();
        assert_eq!((second.cpu, second.cycle), (0, 11));
        let first = matcher.delivered(1, 2, 0).unwrap();
        assert_eq!((first.cpu, first.cycle), (0, 10));
        assert!(matcher.delivered(1, 2, 0).is_none());
    }

    #[test]
    fn unusual_numbering_is_learned_from_pairs() {
        let mut matcher = IpiMatcher::default();
        // CPU 3 has APIC ID 8: the identity pass fails, the open pass pairs it.
        matcher.sent(0, 10, 5, 8);
        assert_eq!(matcher.delivered(3, 5, 0).unwrap().cycle, 10);
        assert_eq!(matcher.apic_id(3), Some(8));
        assert_eq!(matcher.apic_id(0), Some(0));
        // Now a send to APIC 3 does not pair with a delivery on CPU 3.
        matcher.sent(0, 20, 5, 3);
        assert!(matcher.delivered(3, 5, 0).is_none());
    }

    #[test]
    fn a_broadcast_pairs_once_with_each_receiver() {
        let mut matcher = IpiMatcher::default();
        matcher.sent(0, 10, 2, XAPIC_BROADCAST);
        assert!(matcher.delivered(1, 2, 0).is_some());
        assert!(matcher.delivered(2, 2, 0).is_some());
        assert!(matcher.delivered(1, 2, 0).is_none());
        assert!(matcher.delivered(3, 6, 0).is_none(), "different mode");
    }

    #[test]
    fn pending_sends_are_bounded() {
        let mut matcher = IpiMatcher::default();
        for cycle in 0..(MAX_PENDING as u64 + 10) {
            matcher.sent(0, cycle, 0, 1);
        }
        assert_eq!(matcher.pending.len(), MAX_PENDING);
        assert_eq!(matcher.delivered(1, 0, 0).unwrap().cycle, 10);
    }
}
