//! System Management Mode: the SMBASE register, SMI entry, RSM, and the state-save map they
//! share.
//!
//! The state-save area is written **once** as a table ([`SaveField`] rows per layout) that
//! both SMI entry and RSM walk, so the two can never disagree about an offset. Offsets are from
//! SMBASE; the area spans SMBASE+0xFE00 … SMBASE+0xFFFF. Sources: Intel SDM Vol. 3C §32.4.1
//! "SMRAM State Save Map" (Table 32-3, the 32-bit layout), AMD APM Vol. 2 §10.2.3 (the 64-bit
//! layout QEMU's x86_64 target uses), cross-checked with QEMU `target/i386/tcg/system/smm_helper.c`
//! and Linux `arch/x86/kvm/smm.c` (`check_smram_offsets`).
//!
//! SMI entry, step by step (SDM §32.3, PLATFORM.md "State-save layouts"):
//! 1. every row of the map is written from the current state, plus SMBASE, the revision ID
//!    (with bit 17, "SMBASE relocation supported") and the auto-HALT flag;
//! 2. the core enters SMM: CS = SMBASE >> 4 with base SMBASE, EIP = 0x8000, EFLAGS = 2, CR0
//!    loses PE/EM/TS/PG, CR4 = EFER = 0, DR7 = 0x400, data segments flat 4 GiB, NMIs blocked.
//!
//! RSM reverses it: every row is read back, SMBASE is reloaded from its field (when the
//! profile says so), SMM is left, and a latched SMI, NMI or INIT is taken afterwards.

use super::state::{attr, cr0, flags, SegReg, Segment};
use super::Cpu;

/// SMBASE after RESET (SDM §32.4: "the default SMBASE is 30000H").
pub const DEFAULT_SMBASE: u64 = 0x3_0000;
/// Where SMI entry starts executing, from SMBASE.
pub const SMI_ENTRY_OFFSET: u64 = 0x8000;
/// The first byte of the state-save area, from SMBASE.
pub const SAVE_AREA_START: u64 = 0xFE00;
/// The SMBASE-relocation bit of the revision ID (SDM §32.5.1).
pub const REVISION_SMBASE_RELOCATION: u32 = 1 << 17;

/// Where QEMU TCG, KVM and the SDM disagree about SMI, INIT and SIPI, a machine picks one
/// (PLATFORM.md, "CPU behaviour profiles").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// QEMU TCG: an SMI in wait-for-SIPI enters SMM at once; INIT in SMM resets and leaves
    /// SMM; INIT drops a pending SMI; RSM reloads SMBASE only if revision bit 17 reads set.
    Qemu,
    /// Linux KVM (the default): an SMI in wait-for-SIPI waits for the SIPI; INIT in SMM is
    /// latched until RSM; INIT drops a pending SMI unless the CPU waits for SIPI; RSM always
    /// reloads SMBASE.
    #[default]
    Kvm,
    /// The SDM as written: as KVM for SMI in wait-for-SIPI; INIT in SMM is ignored; a pending
    /// SMI survives INIT; auto-HALT restart is honoured.
    Sdm,
}

/// Which state-save map a machine uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SaveStateLayout {
    /// The AMD64 64-bit map QEMU's x86_64 target writes (revision 0x00020064, SMBASE field at
    /// +0xFF00).
    #[default]
    Amd64,
    /// The Intel 32-bit map (revision 0x00020000, SMBASE field at +0xFEF8).
    Intel32,
}

impl Profile {
    /// Every profile, in the order help texts list them.
    pub const ALL: [Profile; 3] = [Profile::Kvm, Profile::Qemu, Profile::Sdm];

    /// The name scenarios, the command line and traces use.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Qemu => "qemu",
            Profile::Kvm => "kvm",
            Profile::Sdm => "sdm",
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = String;

    /// Parses a [`Profile::name`]; the error lists the valid names.
    fn from_str(text: &str) -> Result<Profile, String> {
        Profile::ALL
            .into_iter()
            .find(|profile| profile.name() == text)
            .ok_or_else(|| format!("unknown profile `{text}` (valid: kvm, qemu, sdm)"))
    }
}

impl std::str::FromStr for SaveStateLayout {
    type Err = String;

    /// Parses a [`SaveStateLayout::name`]; the error lists the valid names.
    fn from_str(text: &str) -> Result<SaveStateLayout, String> {
        [SaveStateLayout::Amd64, SaveStateLayout::Intel32]
            .into_iter()
            .find(|layout| layout.name() == text)
            .ok_or_else(|| format!("unknown state-save layout `{text}` (valid: amd64, intel32)"))
    }
}

impl SaveStateLayout {
    /// The name scenarios, the command line and traces use.
    pub fn name(self) -> &'static str {
        match self {
            SaveStateLayout::Amd64 => "amd64",
            SaveStateLayout::Intel32 => "intel32",
        }
    }

    /// The revision ID this layout stores.
    pub fn revision(self) -> u32 {
        match self {
            SaveStateLayout::Amd64 => 0x0002_0064,
            SaveStateLayout::Intel32 => 0x0002_0000,
        }
    }

    /// The map's rows.
    pub fn map(self) -> &'static [SaveField] {
        match self {
            SaveStateLayout::Amd64 => AMD64_MAP,
            SaveStateLayout::Intel32 => INTEL32_MAP,
        }
    }

    /// The offset of the SMBASE field from SMBASE.
    pub fn smbase_offset(self) -> u64 {
        field_offset(self, Item::Smbase)
    }
}

fn field_offset(layout: SaveStateLayout, item: Item) -> u64 {
    layout
        .map()
        .iter()
        .find(|field| field.item == item)
        .map_or(0, |field| u64::from(field.offset))
}

/// What a row of the map holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    /// General register n (RAX = 0 … R15 = 15).
    Gpr(u8),
    /// The instruction pointer.
    Rip,
    /// The flags.
    Rflags,
    /// CR0.
    Cr0,
    /// CR3.
    Cr3,
    /// CR4.
    Cr4,
    /// DR6.
    Dr6,
    /// DR7.
    Dr7,
    /// EFER.
    Efer,
    /// A segment's selector.
    Selector(SegReg),
    /// A segment's attributes: 16-bit form in the AMD64 map, `attrs << 8` in the Intel map.
    Attributes(SegReg),
    /// A segment's limit.
    Limit(SegReg),
    /// A segment's base.
    Base(SegReg),
    /// GDTR limit / base.
    GdtrLimit,
    /// GDTR base.
    GdtrBase,
    /// IDTR limit.
    IdtrLimit,
    /// IDTR base.
    IdtrBase,
    /// LDTR selector, attributes, limit, base.
    LdtrSelector,
    /// LDTR attributes.
    LdtrAttributes,
    /// LDTR limit.
    LdtrLimit,
    /// LDTR base.
    LdtrBase,
    /// TR selector.
    TrSelector,
    /// TR attributes.
    TrAttributes,
    /// TR limit.
    TrLimit,
    /// TR base.
    TrBase,
    /// The SMBASE field: written with the current SMBASE, read back by RSM.
    Smbase,
    /// The revision ID.
    Revision,
    /// The auto-HALT restart flag.
    AutoHalt,
}

/// One row of a state-save map: where a value lives and how wide it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaveField {
    /// Offset from SMBASE.
    pub offset: u16,
    /// Width in bytes (1, 2, 4 or 8).
    pub width: u8,
    /// What it holds.
    pub item: Item,
}

const fn row(offset: u16, width: u8, item: Item) -> SaveField {
    SaveField {
        offset,
        width,
        item,
    }
}

use Item::*;
use SegReg::{Cs, Ds, Es, Fs, Gs, Ss};

/// The AMD64 map (APM Vol. 2 Table 10-2; QEMU x86_64 `do_smm_enter`).
const AMD64_MAP: &[SaveField] = &[
    row(0xFE00, 2, Selector(Es)),
    row(0xFE02, 2, Attributes(Es)),
    row(0xFE04, 4, Limit(Es)),
    row(0xFE08, 8, Base(Es)),
    row(0xFE10, 2, Selector(Cs)),
    row(0xFE12, 2, Attributes(Cs)),
    row(0xFE14, 4, Limit(Cs)),
    row(0xFE18, 8, Base(Cs)),
    row(0xFE20, 2, Selector(Ss)),
    row(0xFE22, 2, Attributes(Ss)),
    row(0xFE24, 4, Limit(Ss)),
    row(0xFE28, 8, Base(Ss)),
    row(0xFE30, 2, Selector(Ds)),
    row(0xFE32, 2, Attributes(Ds)),
    row(0xFE34, 4, Limit(Ds)),
    row(0xFE38, 8, Base(Ds)),
    row(0xFE40, 2, Selector(Fs)),
    row(0xFE42, 2, Attributes(Fs)),
    row(0xFE44, 4, Limit(Fs)),
    row(0xFE48, 8, Base(Fs)),
    row(0xFE50, 2, Selector(Gs)),
    row(0xFE52, 2, Attributes(Gs)),
    row(0xFE54, 4, Limit(Gs)),
    row(0xFE58, 8, Base(Gs)),
    row(0xFE64, 4, GdtrLimit),
    row(0xFE68, 8, GdtrBase),
    row(0xFE70, 2, LdtrSelector),
    row(0xFE72, 2, LdtrAttributes),
    row(0xFE74, 4, LdtrLimit),
    row(0xFE78, 8, LdtrBase),
    row(0xFE84, 4, IdtrLimit),
    row(0xFE88, 8, IdtrBase),
    row(0xFE90, 2, TrSelector),
    row(0xFE92, 2, TrAttributes),
    row(0xFE94, 4, TrLimit),
    row(0xFE98, 8, TrBase),
    row(0xFEC9, 1, AutoHalt),
    row(0xFED0, 8, Efer),
    row(0xFEFC, 4, Revision),
    row(0xFF00, 4, Smbase),
    row(0xFF48, 8, Cr4),
    row(0xFF50, 8, Cr3),
    row(0xFF58, 8, Cr0),
    row(0xFF60, 8, Dr7),
    row(0xFF68, 8, Dr6),
    row(0xFF70, 8, Rflags),
    row(0xFF78, 8, Rip),
    row(0xFF80, 8, Gpr(15)),
    row(0xFF88, 8, Gpr(14)),
    row(0xFF90, 8, Gpr(13)),
    row(0xFF98, 8, Gpr(12)),
    row(0xFFA0, 8, Gpr(11)),
    row(0xFFA8, 8, Gpr(10)),
    row(0xFFB0, 8, Gpr(9)),
    row(0xFFB8, 8, Gpr(8)),
    row(0xFFC0, 8, Gpr(7)),
    row(0xFFC8, 8, Gpr(6)),
    row(0xFFD0, 8, Gpr(5)),
    row(0xFFD8, 8, Gpr(4)),
    row(0xFFE0, 8, Gpr(3)),
    row(0xFFE8, 8, Gpr(2)),
    row(0xFFF0, 8, Gpr(1)),
    row(0xFFF8, 8, Gpr(0)),
];

/// The Intel 32-bit map (SDM Vol. 3C Table 32-3; the segment caches in the order KVM and QEMU
/// store them: ES, CS, SS from 0xFF84, DS, FS, GS from 0xFF2C, 12 bytes each).
const INTEL32_MAP: &[SaveField] = &[
    row(0xFEF8, 4, Smbase),
    row(0xFEFC, 4, Revision),
    row(0xFF02, 2, AutoHalt),
    row(0xFF14, 4, Cr4),
    row(0xFF2C, 4, Attributes(Ds)),
    row(0xFF30, 4, Limit(Ds)),
    row(0xFF34, 4, Base(Ds)),
    row(0xFF38, 4, Attributes(Fs)),
    row(0xFF3C, 4, Limit(Fs)),
    row(0xFF40, 4, Base(Fs)),
    row(0xFF44, 4, Attributes(Gs)),
    row(0xFF48, 4, Limit(Gs)),
    row(0xFF4C, 4, Base(Gs)),
    row(0xFF54, 4, IdtrLimit),
    row(0xFF58, 4, IdtrBase),
    row(0xFF5C, 4, TrAttributes),
    row(0xFF60, 4, TrLimit),
    row(0xFF64, 4, TrBase),
    row(0xFF70, 4, GdtrLimit),
    row(0xFF74, 4, GdtrBase),
    row(0xFF78, 4, LdtrAttributes),
    row(0xFF7C, 4, LdtrLimit),
    row(0xFF80, 4, LdtrBase),
    row(0xFF84, 4, Attributes(Es)),
    row(0xFF88, 4, Limit(Es)),
    row(0xFF8C, 4, Base(Es)),
    row(0xFF90, 4, Attributes(Cs)),
    row(0xFF94, 4, Limit(Cs)),
    row(0xFF98, 4, Base(Cs)),
    row(0xFF9C, 4, Attributes(Ss)),
    row(0xFFA0, 4, Limit(Ss)),
    row(0xFFA4, 4, Base(Ss)),
    row(0xFFA8, 4, Selector(Es)),
    row(0xFFAC, 4, Selector(Cs)),
    row(0xFFB0, 4, Selector(Ss)),
    row(0xFFB4, 4, Selector(Ds)),
    row(0xFFB8, 4, Selector(Fs)),
    row(0xFFBC, 4, Selector(Gs)),
    row(0xFFC0, 4, LdtrSelector),
    row(0xFFC4, 4, TrSelector),
    row(0xFFC8, 4, Dr7),
    row(0xFFCC, 4, Dr6),
    row(0xFFD0, 4, Gpr(0)),
    row(0xFFD4, 4, Gpr(1)),
    row(0xFFD8, 4, Gpr(2)),
    row(0xFFDC, 4, Gpr(3)),
    row(0xFFE0, 4, Gpr(4)),
    row(0xFFE4, 4, Gpr(5)),
    row(0xFFE8, 4, Gpr(6)),
    row(0xFFEC, 4, Gpr(7)),
    row(0xFFF0, 4, Rip),
    row(0xFFF4, 4, Rflags),
    row(0xFFF8, 4, Cr3),
    row(0xFFFC, 4, Cr0),
];

/// Segment attributes as a layout stores them.
fn encode_attrs(layout: SaveStateLayout, attrs: u16) -> u64 {
    match layout {
        SaveStateLayout::Amd64 => u64::from(attrs & 0xF0FF),
        SaveStateLayout::Intel32 => u64::from(attrs & 0xF0FF) << 8,
    }
}

fn decode_attrs(layout: SaveStateLayout, raw: u64) -> u16 {
    match layout {
        SaveStateLayout::Amd64 => (raw as u16) & 0xF0FF,
        SaveStateLayout::Intel32 => ((raw >> 8) as u16) & 0xF0FF,
    }
}

/// The values one save or restore moves, apart from the architectural state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaveExtras {
    /// The SMBASE field.
    pub smbase: u64,
    /// The revision ID.
    pub revision: u32,
    /// The auto-HALT flag.
    pub auto_halt: bool,
}

impl Cpu {
    /// Writes the state-save area at `smbase` from the current state.
    pub(super) fn write_save_area(
        &mut self,
        layout: SaveStateLayout,
        smbase: u64,
        extras: SaveExtras,
    ) {
        for field in layout.map() {
            let value = self.save_value(layout, field.item, extras);
            let phys = (smbase + u64::from(field.offset)) & 0xFFFF_FFFF;
            self.mem
                .write(phys, field.width, value & super::alu::mask(field.width));
        }
    }

    /// Reads the state-save area at `smbase` back into the state; returns the extras.
    pub(super) fn read_save_area(&mut self, layout: SaveStateLayout, smbase: u64) -> SaveExtras {
        let mut extras = SaveExtras::default();
        for field in layout.map() {
            let phys = (smbase + u64::from(field.offset)) & 0xFFFF_FFFF;
            let value = self.mem.read(phys, field.width);
            self.restore_value(layout, field.item, value, &mut extras);
        }
        extras
    }

    fn save_value(&self, layout: SaveStateLayout, item: Item, extras: SaveExtras) -> u64 {
        let s = &self.state;
        let seg = |seg: SegReg| s.segs[seg as usize];
        match item {
            Gpr(n) => s.regs[usize::from(n & 15)],
            Rip => s.rip,
            Rflags => s.rflags,
            Cr0 => s.cr0,
            Cr3 => s.cr3,
            Cr4 => s.cr4,
            Dr6 => s.dr6,
            Dr7 => s.dr7,
            Efer => s.efer,
            Selector(r) => u64::from(seg(r).selector),
            Attributes(r) => encode_attrs(layout, seg(r).attrs),
            Limit(r) => u64::from(seg(r).limit),
            Base(r) => seg(r).base,
            GdtrLimit => u64::from(s.gdtr.limit),
            GdtrBase => s.gdtr.base,
            IdtrLimit => u64::from(s.idtr.limit),
            IdtrBase => s.idtr.base,
            LdtrSelector => u64::from(s.ldtr.selector),
            LdtrAttributes => encode_attrs(layout, s.ldtr.attrs),
            LdtrLimit => u64::from(s.ldtr.limit),
            LdtrBase => s.ldtr.base,
            TrSelector => u64::from(s.tr.selector),
            TrAttributes => encode_attrs(layout, s.tr.attrs),
            TrLimit => u64::from(s.tr.limit),
            TrBase => s.tr.base,
            Smbase => extras.smbase,
            Revision => u64::from(extras.revision),
            AutoHalt => u64::from(extras.auto_halt),
        }
    }

    fn restore_value(
        &mut self,
        layout: SaveStateLayout,
        item: Item,
        value: u64,
        extras: &mut SaveExtras,
    ) {
        let s = &mut self.state;
        match item {
            Gpr(n) => s.regs[usize::from(n & 15)] = value,
            Rip => s.rip = value,
            Rflags => s.rflags = value | flags::FIXED1,
            Cr0 => s.cr0 = value | cr0::ET,
            Cr3 => s.cr3 = value,
            Cr4 => s.cr4 = value,
            Dr6 => s.dr6 = value,
            Dr7 => s.dr7 = value,
            Efer => s.efer = value,
            Selector(r) => s.segs[r as usize].selector = value as u16,
            Attributes(r) => s.segs[r as usize].attrs = decode_attrs(layout, value),
            Limit(r) => s.segs[r as usize].limit = value as u32,
            Base(r) => s.segs[r as usize].base = value & 0xFFFF_FFFF,
            GdtrLimit => s.gdtr.limit = value as u16,
            GdtrBase => s.gdtr.base = value & 0xFFFF_FFFF,
            IdtrLimit => s.idtr.limit = value as u16,
            IdtrBase => s.idtr.base = value & 0xFFFF_FFFF,
            LdtrSelector => s.ldtr.selector = value as u16,
            LdtrAttributes => s.ldtr.attrs = decode_attrs(layout, value),
            LdtrLimit => s.ldtr.limit = value as u32,
            LdtrBase => s.ldtr.base = value & 0xFFFF_FFFF,
            TrSelector => s.tr.selector = value as u16,
            TrAttributes => s.tr.attrs = decode_attrs(layout, value),
            TrLimit => s.tr.limit = value as u32,
            TrBase => s.tr.base = value & 0xFFFF_FFFF,
            Smbase => extras.smbase = value,
            Revision => extras.revision = value as u32,
            AutoHalt => extras.auto_halt = value & 1 != 0,
        }
    }

    /// Puts the core in the SMM entry state of SDM §32.5.1 / PLATFORM.md.
    pub(super) fn load_smm_entry_state(&mut self, smbase: u64) {
        let flat = Segment {
            selector: 0,
            base: 0,
            limit: 0xFFFF_FFFF,
            attrs: attr::P | attr::S | attr::RW | attr::ACCESSED | attr::G,
        };
        let s = &mut self.state;
        for seg in [SegReg::Es, SegReg::Ss, SegReg::Ds, SegReg::Fs, SegReg::Gs] {
            s.segs[seg as usize] = flat;
        }
        s.segs[SegReg::Cs as usize] = Segment {
            selector: (smbase >> 4) as u16,
            base: smbase,
            ..flat
        };
        s.rip = SMI_ENTRY_OFFSET;
        s.rflags = flags::FIXED1;
        s.cr0 &= !(cr0::PE | cr0::EM | cr0::TS | cr0::PG);
        s.cr4 = 0;
        s.efer = 0;
        s.dr7 = 0x400;
    }
}

/// SMM state of a core beyond its architectural registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmmState {
    /// The internal SMBASE register: 0x30000 after RESET, kept across INIT, loaded only by
    /// RSM.
    pub smbase: u64,
    /// In System Management Mode.
    pub in_smm: bool,
    /// An SMI waits to be taken (one is latched while in SMM).
    pub smi_pending: bool,
    /// An NMI waits to be taken (one is latched while NMIs are blocked).
    pub nmi_pending: bool,
    /// NMIs are blocked (in SMM, or inside an NMI handler until IRET).
    pub nmi_blocked: bool,
    /// NMI blocking as it was when SMM was entered, restored by RSM.
    nmi_blocked_before_smm: bool,
    /// An INIT latched in SMM (KVM profile), processed after RSM.
    pub init_latched: bool,
    /// The core was halted when the SMI arrived (for auto-HALT restart).
    halted_at_smi: bool,
    /// Which save map to use.
    pub layout: SaveStateLayout,
    /// Which behaviour profile to follow.
    pub profile: Profile,
}

impl SmmState {
    /// The state after RESET.
    pub fn at_reset(layout: SaveStateLayout, profile: Profile) -> SmmState {
        SmmState {
            smbase: DEFAULT_SMBASE,
            in_smm: false,
            smi_pending: false,
            nmi_pending: false,
            nmi_blocked: false,
            nmi_blocked_before_smm: false,
            init_latched: false,
            halted_at_smi: false,
            layout,
            profile,
        }
    }
}

impl Cpu {
    /// Signals an SMI to this core (from the APIC bus or the platform). It is taken at the
    /// next instruction boundary, wakes a halted core, and is latched (once) while in SMM.
    pub fn raise_smi(&mut self, source: SmiSource) {
        self.record(EventKind::SmiRaised { source });
        self.smm.smi_pending = true;
        match self.activity {
            Activity::Halted => {
                self.smm.halted_at_smi = true;
                self.activity = Activity::Running;
                self.record(EventKind::Wake);
            }
            // QEMU TCG takes the SMI at once, saving the post-INIT state: after RSM the core
            // runs from the reset vector although its APIC still waits for SIPI.
            Activity::WaitForSipi if self.smm.profile == Profile::Qemu => {
                self.activity = Activity::Running;
            }
            _ => {}
        }
    }

    /// Enters SMM: saves state at SMBASE and jumps to SMBASE + 0x8000.
    pub(super) fn enter_smm(&mut self) {
        let smm = self.smm;
        let extras = SaveExtras {
            smbase: smm.smbase,
            revision: smm.layout.revision(),
            auto_halt: smm.halted_at_smi && smm.profile == Profile::Sdm,
        };
        self.record(EventKind::SmmEntry {
            smbase: smm.smbase,
            save_area: smm.smbase + SAVE_AREA_START,
        });
        self.check_smm_entry(smm.smbase);
        self.write_save_area(smm.layout, smm.smbase, extras);
        self.load_smm_entry_state(smm.smbase);
        self.smm.in_smm = true;
        self.smm.smi_pending = false;
        self.smm.halted_at_smi = false;
        self.smm.nmi_blocked_before_smm = smm.nmi_blocked;
        self.smm.nmi_blocked = true;
        self.next_rip = SMI_ENTRY_OFFSET;
        self.stats.smm_entries += 1;
        self.charge(self.timing.smi_entry);
    }

    /// RSM: restores state from the save area and leaves SMM.
    pub(super) fn resume_from_smm(&mut self) {
        let smm = self.smm;
        let extras = self.read_save_area(smm.layout, smm.smbase);
        let reload = match smm.profile {
            Profile::Kvm => true,
            Profile::Qemu | Profile::Sdm => extras.revision & REVISION_SMBASE_RELOCATION != 0,
        };
        if reload {
            self.smm.smbase = extras.smbase & 0xFFFF_FFFF;
        }
        self.record(EventKind::Rsm {
            old_smbase: smm.smbase,
            new_smbase: self.smm.smbase,
        });
        if self.smm.smbase != smm.smbase {
            self.record(EventKind::SmbaseRelocated {
                old: smm.smbase,
                new: self.smm.smbase,
            });
        }
        self.smm.in_smm = false;
        self.smm.nmi_blocked = smm.nmi_blocked_before_smm;
        self.stats.rsm_count += 1;
        self.charge(self.timing.rsm);
        self.next_rip = self.state.rip;
        if self.unrelocated_hotadd {
            self.check_leaving_for_guest_code("RSM");
        }
        if extras.auto_halt && smm.profile == Profile::Sdm {
            self.activity = Activity::Halted;
            self.request_stop(StopReason::Halted);
        }
        if self.smm.init_latched {
            self.smm.init_latched = false;
            self.record(EventKind::Init);
            self.init();
            self.request_stop(StopReason::WaitForSipi);
        }
    }

    /// What INIT does around SMM, per profile; returns true when the INIT must be processed
    /// now.
    pub(super) fn init_allowed(&mut self) -> bool {
        let profile = self.smm.profile;
        if self.smm.in_smm {
            return match profile {
                // QEMU resets the CPU and silently leaves SMM; `do_cpu_init` keeps only a
                // pending SIPI, so an SMI latched while in SMM is dropped too
                // (target/i386/helper.c).
                Profile::Qemu => {
                    self.smm.in_smm = false;
                    self.smm.nmi_blocked = false;
                    self.smm.smi_pending = false;
                    true
                }
                Profile::Kvm => {
                    self.smm.init_latched = true;
                    false
                }
                Profile::Sdm => false,
            };
        }
        if self.smm.smi_pending {
            let keep = match profile {
                Profile::Qemu => false,
                Profile::Kvm => self.activity == Activity::WaitForSipi,
                Profile::Sdm => true,
            };
            self.smm.smi_pending = keep;
        }
        true
    }

    /// Takes whatever SMI or NMI is pending, in that order (SDM §32.5: an SMI has priority).
    pub(super) fn take_smm_events(&mut self) {
        if self.smm.smi_pending && !self.smm.in_smm {
            self.enter_smm();
            self.state.rip = self.next_rip;
            return;
        }
        if self.smm.nmi_pending && !self.smm.nmi_blocked {
            self.smm.nmi_pending = false;
            self.smm.nmi_blocked = true;
            self.external_interrupt(2);
        }
    }
}

use super::{Activity, StopReason};
use smmsim_traces::{EventKind, SmiSource};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::testing::{Bench, Mode};

    fn scrambled_state(bench: &mut Bench) {
        let s = &mut bench.cpu.state;
        for (i, reg) in s.regs.iter_mut().enumerate() {
            *reg = 0x1111_1111_0000_0000 * (i as u64 % 3) + 0x0101_0101 * i as u64;
        }
        s.rip = 0x1234;
        s.rflags = 0x0000_0ED7;
        s.cr0 = 0x6000_0011;
        s.cr3 = 0x0000_5000;
        s.cr4 = 0x0000_0010;
        s.dr6 = 0xFFFF_0FF0;
        s.dr7 = 0x0000_0400;
        s.gdtr = super::super::state::TableRegister {
            base: 0x0008_0000,
            limit: 0x0027,
        };
        s.idtr = super::super::state::TableRegister {
            base: 0x0009_0000,
            limit: 0x07FF,
        };
        for (i, seg) in s.segs.iter_mut().enumerate() {
            *seg = Segment {
                selector: 0x08 * i as u16 + 3,
                base: 0x0010_0000 * i as u64,
                limit: 0x000F_FFFF + i as u32,
                attrs: 0xC093 | (i as u16 & 1) << 3,
            };
        }
        s.ldtr = Segment {
            selector: 0x30,
            base: 0x7000,
            limit: 0x1F,
            attrs: 0x0082,
        };
        s.tr = Segment {
            selector: 0x38,
            base: 0x7100,
            limit: 0x67,
            attrs: 0x008B,
        };
    }

    #[test]
    fn every_field_of_both_layouts_round_trips_through_the_save_area() {
        for layout in [SaveStateLayout::Amd64, SaveStateLayout::Intel32] {
            let mut bench = Bench::new(Mode::Real, &[0x90]);
            scrambled_state(&mut bench);
            if layout == SaveStateLayout::Intel32 {
                // The 32-bit map keeps only the low halves of the registers.
                for reg in bench.cpu.state.regs.iter_mut() {
                    *reg &= 0xFFFF_FFFF;
                }
                for reg in bench.cpu.state.regs[8..].iter_mut() {
                    *reg = 0;
                }
            }
            let before = bench.cpu.state.clone();
            let extras = SaveExtras {
                smbase: 0x000A_0000,
                revision: layout.revision(),
                auto_halt: true,
            };
            bench.cpu.write_save_area(layout, 0x4_0000, extras);
            bench.cpu.state = super::super::state::CpuState::at_reset();
            if layout == SaveStateLayout::Intel32 {
                for reg in bench.cpu.state.regs[8..].iter_mut() {
                    *reg = 0;
                }
            }
            let restored = bench.cpu.read_save_area(layout, 0x4_0000);
            assert_eq!(restored, extras, "{layout:?}");
            assert_eq!(bench.cpu.state, before, "{layout:?}");
        }
    }

    #[test]
    fn the_smbase_field_and_revision_sit_where_platform_md_says() {
        assert_eq!(SaveStateLayout::Amd64.smbase_offset(), 0xFF00);
        assert_eq!(SaveStateLayout::Intel32.smbase_offset(), 0xFEF8);
        for layout in [SaveStateLayout::Amd64, SaveStateLayout::Intel32] {
            assert_eq!(field_offset(layout, Item::Revision), 0xFEFC);
            assert_ne!(layout.revision() & REVISION_SMBASE_RELOCATION, 0);
            for field in layout.map() {
                let end = u32::from(field.offset) + u32::from(field.width);
                assert!(
                    u64::from(field.offset) >= SAVE_AREA_START && end <= 0x1_0000,
                    "{field:?}"
                );
            }
        }
    }

    #[test]
    fn no_two_rows_of_a_map_overlap() {
        for layout in [SaveStateLayout::Amd64, SaveStateLayout::Intel32] {
            let mut rows: Vec<_> = layout.map().to_vec();
            rows.sort_by_key(|field| field.offset);
            for pair in rows.windows(2) {
                let end = u32::from(pair[0].offset) + u32::from(pair[0].width);
                assert!(
                    end <= u32::from(pair[1].offset),
                    "{layout:?}: {:?} overlaps {:?}",
                    pair[0],
                    pair[1]
                );
            }
        }
    }
}
