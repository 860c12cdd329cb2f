//! Who is accessing a device, and how wide the access is.

use smmsim_traces::Cycle;

/// Index of a simulated CPU slot in the machine (0 … maxcpus−1).
///
/// Not the same thing as an [`ApicId`]: the index names a slot in smmsim's tables, the APIC
/// ID is what the guest sees and addresses interrupts to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuIndex(pub u32);

/// A CPU's local APIC ID as the guest sees it (CPUID, APIC ID register, ICR destinations).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApicId(pub u32);

/// The circumstances of one device access.
///
/// Devices that guard SMM-only state (SMRAM control, the SMBASE controller) decide by
/// `in_smm`; devices that time-stamp what they do use `cycle`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessContext {
    /// The CPU slot making the access.
    pub cpu: CpuIndex,
    /// That CPU's APIC ID.
    pub apic_id: ApicId,
    /// Whether the CPU is in System Management Mode at the time of the access.
    pub in_smm: bool,
    /// The accessing core's cycle counter at the access.
    pub cycle: Cycle,
}

impl AccessContext {
    /// A context for tests and for accesses made by the platform itself: CPU 0, not in SMM.
    pub fn at_cycle(cycle: Cycle) -> AccessContext {
        AccessContext {
            cpu: CpuIndex(0),
            apic_id: ApicId(0),
            in_smm: false,
            cycle,
        }
    }
}

/// The width of a port or MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessWidth {
    /// 8 bits (`IN AL, DX`).
    Byte,
    /// 16 bits (`IN AX, DX`).
    Word,
    /// 32 bits (`IN EAX, DX`).
    Dword,
}

impl AccessWidth {
    /// The width in bytes.
    pub fn bytes(self) -> u32 {
        match self {
            AccessWidth::Byte => 1,
            AccessWidth::Word => 2,
            AccessWidth::Dword => 4,
        }
    }

    /// A value with every bit of this width set: what reading nothing returns on x86.
    pub fn all_ones(self) -> u32 {
        match self {
            AccessWidth::Byte => 0xFF,
            AccessWidth::Word => 0xFFFF,
            AccessWidth::Dword => 0xFFFF_FFFF,
        }
    }
}
