//! The APIC bus: the messages local APICs send each other, and how an ICR write becomes one.
//!
//! A CPU sends an interprocessor interrupt (IPI) by writing its local APIC's Interrupt
//! Command Register (SDM Vol. 3A §12.6.1 "Interrupt Command Register (ICR)", Figure
//! "Interrupt Command Register (ICR)"; older editions §10.6.1). smmsim turns that write into
//! one [`Ipi`] value; the simulator stamps it with a delivery cycle and hands it to every
//! APIC its [`Destination`] includes.
//!
//! ```text
//! ICR — xAPIC: low dword at MMIO 0x300 (a write sends), high dword at 0x310;
//!       x2APIC: one 64-bit MSR 0x830 (a write sends).
//!
//!  63      56 55      32 31    20 19 18 17 16 15  14  13  12  11  10   8 7        0
//! +----------+----------+--------+-----+-----+---+---+---+---+---+------+----------+
//! | dest     | reserved | rsvd   |short| rsvd| TM| LV|rsv| DS| DM| mode | vector   |
//! | (xAPIC)  |          |        |hand |     |   |   |   |   |   |      |          |
//! +----------+----------+--------+-----+-----+---+---+---+---+---+------+----------+
//!  x2APIC: bits 63:32 are the whole 32-bit destination.
//!  mode   000 fixed, 001 lowest priority, 010 SMI, 100 NMI, 101 INIT, 110 start-up;
//!         011 and 111 reserved.
//!  DM     destination mode: 0 physical, 1 logical (not supported by smmsim).
//!  DS     delivery status (xAPIC, read-only): always reads 0 — smmsim sends at once.
//!  LV/TM  level (1 = assert) / trigger mode (1 = level); only INIT uses them.
//!  short  00 none (use dest), 01 self, 10 all including self, 11 all excluding self.
//! ```
//!
//! The flow of one ICR write:
//! 1. the local APIC assembles the 64-bit ICR value (xAPIC: high dword as last written,
//!    low dword just written; x2APIC: the MSR value) and calls [`decode_icr`];
//! 2. a shorthand wins over the destination field; without one, the destination is a
//!    physical APIC ID, or the broadcast ID (0xFF in xAPIC mode, 0xFFFF_FFFF in x2APIC
//!    mode) — QEMU `hw/intc/apic.c`, `apic_deliver` and `apic_get_delivery_bitmask`;
//! 3. a reserved delivery mode or logical destination mode is an [`IcrError`]: the APIC
//!    counts it and sends nothing;
//! 4. the simulator delivers the [`Ipi`] to each APIC for which
//!    [`Destination::includes`] holds.
//!
//! The SDM lists some shorthand/mode combinations as invalid (for example an INIT or SMI
//! to "self"). smmsim, like QEMU's `apic_deliver`, delivers them as written.

use std::fmt;

use crate::access::ApicId;

/// Bit positions and values of the Interrupt Command Register, as one 64-bit value.
///
/// Exists so the local APIC, the decoder and tests that build ICR values all name the same
/// bits (SDM Vol. 3A §12.6.1, Figure "Interrupt Command Register (ICR)").
pub mod icr {
    /// Bits 7:0, the vector (fixed, lowest priority, start-up).
    pub const VECTOR_MASK: u64 = 0xFF;
    /// Bits 10:8 hold the delivery mode.
    pub const DELIVERY_MODE_SHIFT: u32 = 8;
    /// Mask of the delivery-mode field once shifted down.
    pub const DELIVERY_MODE_MASK: u64 = 0x7;
    /// Bit 11: logical destination mode (0 = physical).
    pub const DESTINATION_LOGICAL: u64 = 1 << 11;
    /// Bit 12: delivery status, read-only in xAPIC mode ("send pending").
    pub const DELIVERY_STATUS: u64 = 1 << 12;
    /// Bit 14: level — 1 = assert, 0 = de-assert (only meaningful for INIT).
    pub const LEVEL_ASSERT: u64 = 1 << 14;
    /// Bit 15: trigger mode — 1 = level, 0 = edge.
    pub const TRIGGER_LEVEL: u64 = 1 << 15;
    /// Bits 19:18 hold the destination shorthand.
    pub const SHORTHAND_SHIFT: u32 = 18;
    /// Mask of the shorthand field once shifted down.
    pub const SHORTHAND_MASK: u64 = 0x3;
    /// Shorthand 00: no shorthand, the destination field names the target.
    pub const SHORTHAND_NONE: u64 = 0b00;
    /// Shorthand 01: the sending APIC only.
    pub const SHORTHAND_SELF: u64 = 0b01;
    /// Shorthand 10: every APIC, the sender included.
    pub const SHORTHAND_ALL_INCLUDING_SELF: u64 = 0b10;
    /// Shorthand 11: every APIC but the sender.
    pub const SHORTHAND_ALL_EXCLUDING_SELF: u64 = 0b11;
    /// xAPIC: the 8-bit destination sits in bits 63:56 (ICR high bits 31:24).
    pub const XAPIC_DESTINATION_SHIFT: u32 = 56;
    /// xAPIC: the destination that means "every APIC".
    pub const XAPIC_BROADCAST: u32 = 0xFF;
    /// x2APIC: the 32-bit destination sits in bits 63:32.
    pub const X2APIC_DESTINATION_SHIFT: u32 = 32;
    /// x2APIC: the destination that means "every APIC".
    pub const X2APIC_BROADCAST: u32 = 0xFFFF_FFFF;
}

/// How the target handles an IPI: ICR bits 10:8.
///
/// Exists because the simulator acts on each mode differently (a fixed interrupt goes to
/// the IRR, INIT resets the core, start-up starts it, SMI enters SMM). The discriminants
/// are the ICR encodings.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryMode {
    /// 000: deliver `vector` to the target's IRR.
    Fixed = 0,
    /// 001: deliver `vector` to the lowest-priority target. QEMU gives it to the first APIC
    /// of the destination set; smmsim leaves the choice to the simulator.
    LowestPriority = 1,
    /// 010: a System Management Interrupt; the vector should be 0.
    Smi = 2,
    /// 100: a non-maskable interrupt; the vector is ignored.
    Nmi = 4,
    /// 101: INIT (or, with level de-assert, INIT de-assert — see [`Ipi::level_assert`]).
    Init = 5,
    /// 110: start-up IPI; a CPU waiting for SIPI starts at `vector << 8 : 0000`.
    Startup = 6,
}

impl DeliveryMode {
    /// The mode with ICR encoding `bits` (bits 10:8 shifted down), or `None` for the
    /// reserved encodings 011 and 111 and anything wider than three bits.
    pub fn from_bits(bits: u8) -> Option<DeliveryMode> {
        match bits {
            0 => Some(DeliveryMode::Fixed),
            1 => Some(DeliveryMode::LowestPriority),
            2 => Some(DeliveryMode::Smi),
            4 => Some(DeliveryMode::Nmi),
            5 => Some(DeliveryMode::Init),
            6 => Some(DeliveryMode::Startup),
            _ => None,
        }
    }

    /// The ICR encoding of this mode (bits 10:8 shifted down).
    pub fn bits(self) -> u8 {
        self as u8
    }
}

/// Which APICs an IPI goes to.
///
/// Exists so the simulator can route a message without knowing ICR encodings; the variants
/// stay distinct (rather than folding `Broadcast` into `AllIncludingSelf`) so traces show
/// what the guest wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Destination {
    /// No shorthand, physical destination mode: the APIC with this ID.
    ///
    /// The ID is compared whole. In xAPIC mode only IDs 0…0xFE can be named; a CPU whose
    /// APIC ID is above 0xFF is reachable only by shorthand, broadcast or from x2APIC mode.
    Physical(ApicId),
    /// No shorthand, physical destination 0xFF (xAPIC) or 0xFFFF_FFFF (x2APIC): every APIC,
    /// the sender included (QEMU `apic_get_delivery_bitmask` sets every bit for 0xFF).
    Broadcast,
    /// Shorthand 01: the sender only.
    SelfOnly,
    /// Shorthand 10: every APIC, the sender included.
    AllIncludingSelf,
    /// Shorthand 11: every APIC but the sender.
    AllExcludingSelf,
}

impl Destination {
    /// Whether the APIC `target` receives an IPI sent by `source` to this destination.
    pub fn includes(&self, target: ApicId, source: ApicId) -> bool {
        match *self {
            Destination::Physical(id) => id == target,
            Destination::Broadcast | Destination::AllIncludingSelf => true,
            Destination::SelfOnly => target == source,
            Destination::AllExcludingSelf => target != source,
        }
    }
}

/// One message on the APIC bus: an IPI as the sender's ICR described it.
///
/// Exists as the one currency between a sending APIC, the simulator's delivery queue and
/// the receiving core. `Copy`, so one message can be handed to many targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipi {
    /// The sending APIC.
    pub source: ApicId,
    /// What the targets do with it.
    pub mode: DeliveryMode,
    /// ICR bits 7:0 as written (meaningful for fixed, lowest priority and start-up).
    pub vector: u8,
    /// Who receives it.
    pub destination: Destination,
    /// `false` only for INIT level de-assert (delivery mode INIT, level 0, trigger level),
    /// which the simulator treats as a no-op (PLATFORM.md; SDM §12.4.7.4: only Pentium and
    /// P6 processors act on it). QEMU's `apic_deliver` tests the same two bits. An INIT
    /// with level 0 and edge trigger is an ordinary INIT, as in QEMU. Every other mode is
    /// `true`: processors since the Pentium 4 ignore the level bit outside INIT.
    pub level_assert: bool,
}

/// Why an ICR value could not become an [`Ipi`]: a guest mistake or an unsupported
/// feature, which the local APIC counts instead of sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IcrError {
    /// Delivery mode 011 or 111, which the SDM reserves in the ICR.
    ReservedDeliveryMode {
        /// The three mode bits as written.
        bits: u8,
    },
    /// Logical destination mode without a shorthand; smmsim supports physical mode only.
    LogicalDestination {
        /// The destination field as written.
        destination: u32,
    },
}

impl fmt::Display for IcrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IcrError::ReservedDeliveryMode { bits } => {
                write!(f, "ICR delivery mode {bits:#05b} is reserved")
            }
            IcrError::LogicalDestination { destination } => write!(
                f,
                "ICR logical destination mode (destination {destination:#x}) is not supported"
            ),
        }
    }
}

impl std::error::Error for IcrError {}

/// Decodes the 64-bit ICR value `icr` written by the APIC `source` into the IPI it sends.
///
/// `x2apic` selects where the destination sits: bits 63:56 in xAPIC mode (the ICR high
/// dword's bits 31:24), bits 63:32 in x2APIC mode. Bits the decoder does not use are
/// ignored; x2APIC reserved-bit checks (#GP) belong to the MSR write, not here.
pub fn decode_icr(source: ApicId, icr: u64, x2apic: bool) -> Result<Ipi, IcrError> {
    let vector = (icr & icr::VECTOR_MASK) as u8;
    let mode_bits = ((icr >> icr::DELIVERY_MODE_SHIFT) & icr::DELIVERY_MODE_MASK) as u8;
    let mode = DeliveryMode::from_bits(mode_bits)
        .ok_or(IcrError::ReservedDeliveryMode { bits: mode_bits })?;
    let destination = match (icr >> icr::SHORTHAND_SHIFT) & icr::SHORTHAND_MASK {
        icr::SHORTHAND_SELF => Destination::SelfOnly,
        icr::SHORTHAND_ALL_INCLUDING_SELF => Destination::AllIncludingSelf,
        icr::SHORTHAND_ALL_EXCLUDING_SELF => Destination::AllExcludingSelf,
        // SHORTHAND_NONE: the destination field decides.
        _ => {
            let (field, broadcast) = if x2apic {
                (
                    (icr >> icr::X2APIC_DESTINATION_SHIFT) as u32,
                    icr::X2APIC_BROADCAST,
                )
            } else {
                (
                    (icr >> icr::XAPIC_DESTINATION_SHIFT) as u32,
                    icr::XAPIC_BROADCAST,
                )
            };
            if icr & icr::DESTINATION_LOGICAL != 0 {
                return Err(IcrError::LogicalDestination { destination: field });
            }
            if field == broadcast {
                Destination::Broadcast
            } else {
                Destination::Physical(ApicId(field))
            }
        }
    };
    // INIT level de-assert: level 0 with level trigger (SDM §12.6.1, "Level" and "Trigger
    // Mode"; QEMU `apic_deliver`, `level == 0 && trig_mode == 1`).
    let init_deassert =
        mode == DeliveryMode::Init && icr & icr::LEVEL_ASSERT == 0 && icr & icr::TRIGGER_LEVEL != 0;
    Ok(Ipi {
        source,
        mode,
        vector,
        destination,
        level_assert: !init_deassert,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: ApicId = ApicId(3);

    /// An xAPIC ICR: `high` is what the guest wrote at 0x310, `low` at 0x300.
    fn xapic(high: u32, low: u32) -> u64 {
        (u64::from(high) << 32) | u64::from(low)
    }

    #[test]
    fn xapic_init_sipi_sipi_to_one_cpu() {
        // edk2 SendInitSipiSipi: ICR high = APIC ID << 24, then ICR low.
        let init = decode_icr(SRC, xapic(0x0500_0000, 0x0000_4500), false).unwrap();
        assert_eq!(
            init,
            Ipi {
                source: SRC,
                mode: DeliveryMode::Init,
                vector: 0,
                destination: Destination::Physical(ApicId(5)),
                level_assert: true,
            }
        );
        let sipi = decode_icr(SRC, xapic(0x0500_0000, 0x0000_4698), false).unwrap();
        assert_eq!(sipi.mode, DeliveryMode::Startup);
        assert_eq!(sipi.vector, 0x98);
        assert_eq!(sipi.destination, Destination::Physical(ApicId(5)));
    }

    #[test]
    fn xapic_destination_is_bits_63_to_56_and_ff_broadcasts() {
        // Bits 55:32 (ICR high bits 23:0) are reserved in xAPIC mode and do not leak in.
        let ipi = decode_icr(SRC, xapic(0x12FF_FFFF, 0x0000_0030), false).unwrap();
        assert_eq!(ipi.destination, Destination::Physical(ApicId(0x12)));
        let ipi = decode_icr(SRC, xapic(0xFF00_0000, 0x0000_0200), false).unwrap();
        assert_eq!(ipi.mode, DeliveryMode::Smi);
        assert_eq!(ipi.destination, Destination::Broadcast);
    }

    #[test]
    fn x2apic_destination_is_bits_63_to_32_and_all_ones_broadcasts() {
        let ipi = decode_icr(SRC, 0x0000_0123_0000_0400, true).unwrap();
        assert_eq!(ipi.mode, DeliveryMode::Nmi);
        assert_eq!(ipi.destination, Destination::Physical(ApicId(0x123)));
        // 0xFF is an ordinary APIC ID in x2APIC mode.
        let ipi = decode_icr(SRC, 0x0000_00FF_0000_0000, true).unwrap();
        assert_eq!(ipi.destination, Destination::Physical(ApicId(0xFF)));
        let ipi = decode_icr(SRC, 0xFFFF_FFFF_0000_0000, true).unwrap();
        assert_eq!(ipi.destination, Destination::Broadcast);
    }

    #[test]
    fn shorthand_wins_over_destination_and_logical_mode() {
        let cases = [
            (0x0004_4000, Destination::SelfOnly),
            (0x0008_4000, Destination::AllIncludingSelf),
            (0x000C_4000, Destination::AllExcludingSelf),
        ];
        for (low, expected) in cases {
            // Logical mode (bit 11) with a shorthand: the destination mode is not used.
            let ipi = decode_icr(SRC, xapic(0x0700_0000, low | 0x800), false).unwrap();
            assert_eq!(ipi.destination, expected, "ICR low {low:#x}");
        }
    }

    #[test]
    fn init_deassert_is_level_zero_with_level_trigger() {
        // 0x8500: INIT, trigger level, level de-assert (the old MP-spec sequence).
        let deassert = decode_icr(SRC, xapic(0, 0x0000_8500), false).unwrap();
        assert_eq!(deassert.mode, DeliveryMode::Init);
        assert!(!deassert.level_assert);
        // 0xC500: INIT, level trigger, assert.
        assert!(
            decode_icr(SRC, xapic(0, 0x0000_C500), false)
                .unwrap()
                .level_assert
        );
        // 0x0500: level 0 but edge trigger is an ordinary INIT, as in QEMU.
        assert!(
            decode_icr(SRC, xapic(0, 0x0000_0500), false)
                .unwrap()
                .level_assert
        );
        // Level 0 on a fixed IPI is ignored (Linux sends fixed IPIs that way).
        assert!(
            decode_icr(SRC, xapic(0, 0x0000_8030), false)
                .unwrap()
                .level_assert
        );
    }

    #[test]
    fn reserved_modes_and_logical_destinations_are_errors() {
        assert_eq!(
            decode_icr(SRC, xapic(0, 0x0000_0300), false),
            Err(IcrError::ReservedDeliveryMode { bits: 0b011 })
        );
        assert_eq!(
            decode_icr(SRC, xapic(0, 0x0000_0700), true),
            Err(IcrError::ReservedDeliveryMode { bits: 0b111 })
        );
        let err = decode_icr(SRC, xapic(0x0100_0000, 0x0000_0830), false).unwrap_err();
        assert_eq!(err, IcrError::LogicalDestination { destination: 1 });
        assert_eq!(
            err.to_string(),
            "ICR logical destination mode (destination 0x1) is not supported"
        );
        assert_eq!(
            IcrError::ReservedDeliveryMode { bits: 3 }.to_string(),
            "ICR delivery mode 0b011 is reserved"
        );
    }

    #[test]
    fn delivery_mode_encodings_round_trip() {
        for bits in 0..=u8::MAX {
            match DeliveryMode::from_bits(bits) {
                Some(mode) => assert_eq!(mode.bits(), bits),
                None => assert!(matches!(bits, 3 | 7 | 8..=u8::MAX)),
            }
        }
    }

    #[test]
    fn destination_includes() {
        let (me, other) = (ApicId(1), ApicId(2));
        let d = Destination::Physical(other);
        assert!(d.includes(other, me) && !d.includes(me, me));
        assert!(Destination::Broadcast.includes(me, me));
        assert!(Destination::AllIncludingSelf.includes(me, me));
        assert!(
            Destination::SelfOnly.includes(me, me) && !Destination::SelfOnly.includes(other, me)
        );
        assert!(
            !Destination::AllExcludingSelf.includes(me, me)
                && Destination::AllExcludingSelf.includes(other, me)
        );
    }

    #[test]
    fn any_icr_value_decodes_without_panicking() {
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        for _ in 0..10_000 {
            // xorshift: cheap, deterministic coverage of all bit patterns.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let _ = decode_icr(SRC, x, false);
            let _ = decode_icr(SRC, x, true);
        }
    }
}
