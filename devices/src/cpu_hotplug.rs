//! The ACPI CPU hot-plug register block at 0x0CD8: how the platform tells firmware and the
//! OS that a CPU arrived or should leave, and how they acknowledge it and eject CPUs.
//!
//! This is QEMU's "modern" interface, as `hw/acpi/cpu.c` (`cpu_hotplug_rd`,
//! `cpu_hotplug_wr`, `acpi_cpu_plug_cb`, `acpi_cpu_unplug_request_cb`) implements it and
//! `docs/specs/acpi_cpu_hotplug.rst` specifies it; PLATFORM.md, "ACPI CPU hot-plug block".
//! The guest side is QEMU's generated AML (`CSCN`, `CEJ0`) and OVMF's
//! `OvmfPkg/CpuHotplugSmm`.
//!
//! ```text
//! off  width  read                                   write
//! 0x0  32     command data 2: cmd 3 -> APIC ID 63:32  CPU selector (0 .. max_cpus-1)
//!             (0 for every other command)
//! 0x4  8      status of the selected CPU             control for the selected CPU
//! 0x5  8      0                                      command (0..=3; others ignored)
//! 0x8  32     command data: cmd 0 -> selector,        cmd 1: OST event, cmd 2: OST status
//!             cmd 3 -> APIC ID 31:0, else 0           of the selected CPU
//! other       0                                      ignored
//!
//! status (read at 0x4)                            control (write at 0x4)
//!  7..5   4          3     2        1       0      7..5   4          3      2       1       0
//! +-----+-----------+----+--------+--------+----+  +-----+----------+------+-------+-------+----+
//! | 0   | FW_REMOVE | 0  | REMOVE | INSERT | EN |  | -   | FW_REMOVE| EJECT| CLR_RM| CLR_IN| -  |
//! +-----+-----------+----+--------+--------+----+  +-----+----------+------+-------+-------+----+
//! ```
//!
//! A CPU slot moves like this (index k is possible CPU k; APIC ID from the constructor):
//!
//! ```text
//! absent --insert()--------------------------> present, INSERT
//! present, INSERT --control CLR_IN-----------> present
//! present --request_unplug()-----------------> present, REMOVE          (not CPU 0)
//! present, REMOVE --control CLR_RM-----------> present
//! present --control FW_REMOVE----------------> present, FW_REMOVE       (not CPU 0)
//! present --control EJECT--------------------> absent, no events        (not CPU 0;
//!                                                                        Effect::EjectCpu)
//! ```
//!
//! 1. The selector is write-only. While it names no possible CPU every read returns 0 and
//!    every write other than to the selector is dropped (`cpu_hotplug_rd`/`_wr` check
//!    `selector >= dev_count` first); the spec's enumeration recipe relies on that.
//! 2. Accesses of 1, 2 or 4 bytes are taken whole, at the offset they start at, as QEMU's
//!    `cpu_hotplug_ops` declare (`valid.min_access_size = 1`, `max_access_size = 4`, no
//!    `impl` sizes, so the memory core hands the callback the whole access; `unaligned`
//!    not allowed). So a register answers only an access that starts at its own offset: a
//!    byte write at 0x0 sets the whole selector to that byte, a word write at 0x4 is a
//!    control write whose high byte is *not* a command, a byte read at 0x9 reads 0. An
//!    access not aligned to its width is refused: it reads 0 and its write is dropped
//!    (QEMU `memory_region_access_valid` fails and the read is `unassigned_mem_read`),
//!    and smmsim counts it.
//! 3. A control write does at most one thing, the first of CLR_IN, CLR_RM, EJECT,
//!    FW_REMOVE that is set, in that order (QEMU's `if … else if` chain). EJECT and
//!    FW_REMOVE are refused for an absent CPU and for CPU 0 (QEMU compares with
//!    `first_cpu`, the boot CPU, which is index 0 here).
//! 4. Command 0 searches, starting at the selected CPU and wrapping once round, for a CPU
//!    with INSERT, REMOVE or FW_REMOVE set, and selects it; with none the selector stays.
//!    Command data then reads the selector. Command 3 makes command data / command data 2
//!    read the selected CPU's APIC ID (x86's "arch ID"), low and high half. A command
//!    value of 4 or more is dropped and the previous command stays (`data < CPHP_CMD_MAX`).
//! 5. EJECT marks the CPU absent and pushes [`Effect::EjectCpu`]; the simulator stops the
//!    core (QEMU `hotplug_handler_unplug` → `acpi_cpu_unplug_cb` and `object_unparent`).
//!
//! Where smmsim is not QEMU:
//! - Power-on mode. QEMU's ICH9 PM block long started this window in *legacy* mode
//!   (`cpu_hotplug_legacy` set in `ich9_pm_add_properties`): a 32-byte bitmap of present
//!   CPUs (`hw/acpi/cpu_hotplug.c`) until the guest writes 0 at offset 0
//!   (`cpu_status_write`), which swaps in the modern block (`acpi_switch_to_modern_cphp`)
//!   for the rest of the machine's life. QEMU's AML does that write in `_INI`, and OVMF's
//!   `PlatformPei` (`MaxCpuCountInitialization`) does it before probing. Later QEMU
//!   dropped legacy mode on q35, and the current spec says QEMU "starts with modern CPU
//!   hotplug interface enabled". smmsim starts modern, as PLATFORM.md specifies: the
//!   switching write is an ordinary selection of CPU 0, so firmware written for either
//!   QEMU behaves the same here.
//! - EJECT also clears the CPU's INSERT and REMOVE events. QEMU leaves them to the guest,
//!   whose `CSCN` has cleared them before it ejects; clearing them keeps an absent CPU from
//!   showing up in a command-0 search forever.
//! - Hard reset: a hot-added CPU stays plugged (as in QEMU, where a plugged CPU object
//!   survives `system_reset`), but pending events, FW_REMOVE requests, the OST values, the
//!   command and the selector are cleared. QEMU has no reset handler for this block, so
//!   there all of those survive a reboot (the spec: "on reset it keeps the current
//!   value"). smmsim clears them because after a hard reset every present CPU, hot-added
//!   or not, is a boot CPU in its RESET state that firmware relocates during boot; a stale
//!   INSERT would make firmware treat it as hot-added a second time, and a stale REMOVE
//!   would eject a CPU the new boot just brought up. An unplug request pending at reset is
//!   therefore lost; the simulator asks again if it still wants the CPU gone.
//! - QEMU refuses `device_add`/`device_del` of a CPU in some SMI negotiation states
//!   (`ich9_pm_device_pre_plug_cb`, `ich9_pm_device_unplug_request_cb`; the exact rule
//!   has changed between versions). This block does not: whether a hot-add is allowed is
//!   the scenario's decision, which can consult
//!   [`crate::Q35Chipset::negotiated_smi_features`].

use std::fmt;

use crate::access::{AccessWidth, ApicId, CpuIndex};
use crate::effect::Effect;

/// The last value the guest stored through commands 1 and 2 for one CPU: what OSPM
/// reported about the last hot-plug event (ACPI `_OST`).
///
/// Exists so a run can report what the OS said about an insert or eject; QEMU forwards the
/// same pair to management software as an `ACPI_DEVICE_OST` event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OstRecord {
    /// The `_OST` source event (command 1).
    pub event: u32,
    /// The `_OST` status code (command 2).
    pub status: u32,
}

/// What command data (offset 0x8) and command data 2 (offset 0x0) read, and what a
/// command-data write means (QEMU's `CPHP_*_CMD`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HotplugCommand {
    /// 0: select the next CPU with a pending event; command data reads the selector
    /// (`CPHP_GET_NEXT_CPU_WITH_EVENT_CMD`).
    #[default]
    NextCpuWithEvent = 0,
    /// 1: command-data writes store the selected CPU's OST event (`CPHP_OST_EVENT_CMD`).
    OstEvent = 1,
    /// 2: command-data writes store the selected CPU's OST status (`CPHP_OST_STATUS_CMD`).
    OstStatus = 2,
    /// 3: command data / command data 2 read the selected CPU's APIC ID
    /// (`CPHP_GET_CPU_ID_CMD`).
    GetApicId = 3,
}

impl HotplugCommand {
    /// The command a write of `value` to offset 0x5 selects; `None` for 4 and above,
    /// which the block ignores.
    pub fn from_value(value: u32) -> Option<HotplugCommand> {
        match value {
            0 => Some(HotplugCommand::NextCpuWithEvent),
            1 => Some(HotplugCommand::OstEvent),
            2 => Some(HotplugCommand::OstStatus),
            3 => Some(HotplugCommand::GetApicId),
            _ => None,
        }
    }
}

/// Why the platform could not plug or unplug a CPU: a mistake in the scenario, not
/// something the guest did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HotplugError {
    /// The index names no possible CPU.
    NoSuchCpu {
        /// The index given.
        cpu: CpuIndex,
        /// How many CPUs are possible.
        max_cpus: u32,
    },
    /// The CPU is already plugged (QEMU `x86_cpu_pre_plug`: "CPU … exists").
    AlreadyPresent {
        /// The CPU.
        cpu: CpuIndex,
    },
    /// The CPU is not plugged, so it cannot be unplugged.
    NotPresent {
        /// The CPU.
        cpu: CpuIndex,
    },
    /// CPU 0 is the boot CPU and cannot be unplugged (QEMU `x86_cpu_unplug_request_cb`:
    /// "Boot CPU is unpluggable").
    BootCpu,
}

impl fmt::Display for HotplugError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HotplugError::NoSuchCpu { cpu, max_cpus } => write!(
                f,
                "CPU {} is not one of the {max_cpus} possible CPUs",
                cpu.0
            ),
            HotplugError::AlreadyPresent { cpu } => write!(f, "CPU {} is already plugged", cpu.0),
            HotplugError::NotPresent { cpu } => write!(f, "CPU {} is not plugged", cpu.0),
            HotplugError::BootCpu => write!(f, "CPU 0 is the boot CPU and cannot be unplugged"),
        }
    }
}

impl std::error::Error for HotplugError {}

/// Why a [`CpuHotplug`] could not be built: a mistake in the machine's setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HotplugConfigError {
    /// No possible CPUs were given (QEMU asserts `dev_count` is non-zero).
    NoCpus,
    /// More possible CPUs than a 32-bit selector can name.
    TooManyCpus {
        /// How many were given.
        max_cpus: usize,
    },
    /// The boot CPU count is 0 or more than the possible CPUs.
    BootCpus {
        /// The count given.
        boot_cpus: u32,
        /// How many CPUs are possible.
        max_cpus: u32,
    },
    /// Two possible CPUs share an APIC ID (QEMU finds a CPU's slot by its APIC ID).
    DuplicateApicId {
        /// The shared APIC ID.
        apic_id: ApicId,
        /// The first CPU with it.
        first: CpuIndex,
        /// The second CPU with it.
        second: CpuIndex,
    },
}

impl fmt::Display for HotplugConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HotplugConfigError::NoCpus => write!(f, "the CPU hot-plug block needs a CPU"),
            HotplugConfigError::TooManyCpus { max_cpus } => {
                write!(f, "{max_cpus} possible CPUs do not fit a 32-bit selector")
            }
            HotplugConfigError::BootCpus {
                boot_cpus,
                max_cpus,
            } => write!(
                f,
                "{boot_cpus} boot CPUs is not between 1 and the {max_cpus} possible CPUs"
            ),
            HotplugConfigError::DuplicateApicId {
                apic_id,
                first,
                second,
            } => write!(
                f,
                "CPUs {} and {} share APIC ID {:#x}",
                first.0, second.0, apic_id.0
            ),
        }
    }
}

impl std::error::Error for HotplugConfigError {}

/// One possible CPU as the block sees it (QEMU `AcpiCpuStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    apic_id: ApicId,
    /// Plugged (QEMU: `cdev->cpu != NULL`); reads as status bit 0.
    present: bool,
    inserting: bool,
    removing: bool,
    fw_remove: bool,
    ost: OstRecord,
}

impl Slot {
    fn has_event(&self) -> bool {
        self.inserting || self.removing || self.fw_remove
    }

    fn clear_events(&mut self) {
        self.inserting = false;
        self.removing = false;
        self.fw_remove = false;
    }

    fn status(&self) -> u8 {
        let mut status = 0;
        for (set, bit) in [
            (self.present, CpuHotplug::STATUS_ENABLED),
            (self.inserting, CpuHotplug::STATUS_INSERT),
            (self.removing, CpuHotplug::STATUS_REMOVE),
            (self.fw_remove, CpuHotplug::STATUS_FW_REMOVE),
        ] {
            if set {
                status |= bit;
            }
        }
        status
    }
}

/// The ACPI CPU hot-plug register block: one slot per possible CPU, the guest's selector
/// and command, and the platform-side plug/unplug requests.
///
/// Exists because hot-adding a CPU is the event this simulator studies: the platform marks
/// the new CPU here, firmware's SMI handler and the OS find it through these registers,
/// and an eject here is how a CPU leaves the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuHotplug {
    slots: Vec<Slot>,
    /// As written; may name no CPU (module doc, step 1).
    selector: u32,
    command: HotplugCommand,
    ignored_accesses: u64,
}

impl CpuHotplug {
    /// The first port (QEMU `ICH9_CPU_HOTPLUG_IO_BASE`).
    pub const PORT: u16 = 0x0CD8;
    /// Twelve ports (QEMU `ACPI_CPU_HOTPLUG_REG_LEN`).
    pub const WINDOW_LEN: u16 = 12;
    /// Offset of the CPU selector (write; `ACPI_CPU_SELECTOR_OFFSET_WR`).
    pub const REG_SELECTOR: u16 = 0x0;
    /// Offset of command data 2 (read; `ACPI_CPU_CMD_DATA2_OFFSET_R`), shared with the
    /// selector.
    pub const REG_COMMAND_DATA2: u16 = 0x0;
    /// Offset of the status (read) and control (write) byte (`ACPI_CPU_FLAGS_OFFSET_RW`).
    pub const REG_FLAGS: u16 = 0x4;
    /// Offset of the command byte (write; `ACPI_CPU_CMD_OFFSET_WR`).
    pub const REG_COMMAND: u16 = 0x5;
    /// Offset of command data (`ACPI_CPU_CMD_DATA_OFFSET_RW`).
    pub const REG_COMMAND_DATA: u16 = 0x8;

    /// Status bit 0: the CPU is plugged and may be used (AML `CPEN`).
    pub const STATUS_ENABLED: u8 = 1 << 0;
    /// Status bit 1: insert event not yet acknowledged (AML `CINS`).
    pub const STATUS_INSERT: u8 = 1 << 1;
    /// Status bit 2: remove event not yet acknowledged (AML `CRMV`).
    pub const STATUS_REMOVE: u8 = 1 << 2;
    /// Status bit 4: the OS asked firmware to eject this CPU (AML `CEJF`).
    pub const STATUS_FW_REMOVE: u8 = 1 << 4;
    /// Control bit 1: clear the insert event.
    pub const CONTROL_CLEAR_INSERT: u8 = 1 << 1;
    /// Control bit 2: clear the remove event.
    pub const CONTROL_CLEAR_REMOVE: u8 = 1 << 2;
    /// Control bit 3: eject the CPU now (AML `CEJ0`).
    pub const CONTROL_EJECT: u8 = 1 << 3;
    /// Control bit 4: hand the eject over to firmware (AML `CEJF`).
    pub const CONTROL_FW_REMOVE: u8 = 1 << 4;

    /// A block for the possible CPUs `apic_ids` (CPU index k has APIC ID `apic_ids[k]`,
    /// as QEMU's `possible_cpu_arch_ids` list), of which the first `boot_cpus` are plugged
    /// at power-on, as `-smp boot_cpus,maxcpus=…` plugs them. No events are pending.
    pub fn new(apic_ids: &[ApicId], boot_cpus: u32) -> Result<CpuHotplug, HotplugConfigError> {
        if apic_ids.is_empty() {
            return Err(HotplugConfigError::NoCpus);
        }
        let max_cpus =
            u32::try_from(apic_ids.len()).map_err(|_| HotplugConfigError::TooManyCpus {
                max_cpus: apic_ids.len(),
            })?;
        if boot_cpus == 0 || boot_cpus > max_cpus {
            return Err(HotplugConfigError::BootCpus {
                boot_cpus,
                max_cpus,
            });
        }
        let mut by_apic_id = std::collections::HashMap::with_capacity(apic_ids.len());
        for (index, &apic_id) in (0..max_cpus).zip(apic_ids) {
            if let Some(&first) = by_apic_id.get(&apic_id) {
                return Err(HotplugConfigError::DuplicateApicId {
                    apic_id,
                    first: CpuIndex(first),
                    second: CpuIndex(index),
                });
            }
            by_apic_id.insert(apic_id, index);
        }
        let slots = (0..max_cpus)
            .zip(apic_ids)
            .map(|(index, &apic_id)| Slot {
                apic_id,
                present: index < boot_cpus,
                inserting: false,
                removing: false,
                fw_remove: false,
                ost: OstRecord::default(),
            })
            .collect();
        Ok(CpuHotplug {
            slots,
            selector: 0,
            command: HotplugCommand::default(),
            ignored_accesses: 0,
        })
    }

    /// How many CPUs are possible (present or not).
    pub fn max_cpus(&self) -> u32 {
        // `new` made sure the count fits.
        self.slots.len() as u32
    }

    /// The APIC ID of possible CPU `cpu`.
    pub fn apic_id(&self, cpu: CpuIndex) -> Option<ApicId> {
        self.slot(cpu).map(|slot| slot.apic_id)
    }

    /// The CPU index with APIC ID `apic_id`, if it is a possible CPU's.
    pub fn cpu_index(&self, apic_id: ApicId) -> Option<CpuIndex> {
        (0..self.max_cpus())
            .zip(&self.slots)
            .find(|(_, slot)| slot.apic_id == apic_id)
            .map(|(index, _)| CpuIndex(index))
    }

    /// Whether `cpu` is plugged; false for an index that names no possible CPU.
    pub fn is_present(&self, cpu: CpuIndex) -> bool {
        self.slot(cpu).is_some_and(|slot| slot.present)
    }

    /// How many CPUs are plugged.
    pub fn present_count(&self) -> u32 {
        self.slots.iter().filter(|slot| slot.present).count() as u32
    }

    /// The status byte the guest reads at 0x4 with `cpu` selected; `None` for an index
    /// that names no possible CPU.
    pub fn status(&self, cpu: CpuIndex) -> Option<u8> {
        self.slot(cpu).map(Slot::status)
    }

    /// What the OS last reported through commands 1 and 2 for `cpu`.
    pub fn ost(&self, cpu: CpuIndex) -> Option<OstRecord> {
        self.slot(cpu).map(|slot| slot.ost)
    }

    /// The selector as last written (it may name no CPU).
    pub fn selector(&self) -> u32 {
        self.selector
    }

    /// The command last accepted.
    pub fn command(&self) -> HotplugCommand {
        self.command
    }

    /// How many guest accesses were refused or dropped: misaligned accesses, writes while
    /// the selector names no CPU, writes to offsets with no register, unknown commands,
    /// and ejects or firmware-remove requests for absent CPUs or CPU 0.
    pub fn ignored_accesses(&self) -> u64 {
        self.ignored_accesses
    }

    /// Plugs `cpu` (QEMU `device_add` → `acpi_cpu_plug_cb` for a hot-plugged device): it
    /// becomes enabled with an insert event. The caller raises the GPE (see
    /// [`crate::Q35Chipset::hot_add_cpu`]) and puts the core in its RESET state.
    pub fn insert(&mut self, cpu: CpuIndex) -> Result<(), HotplugError> {
        let slot = self.slot_mut(cpu)?;
        if slot.present {
            return Err(HotplugError::AlreadyPresent { cpu });
        }
        slot.present = true;
        slot.clear_events();
        slot.inserting = true;
        Ok(())
    }

    /// Asks the guest to give up `cpu` (QEMU `device_del` → `acpi_cpu_unplug_request_cb`):
    /// it gets a remove event; the CPU leaves only when the guest ejects it. Asking again
    /// while the event is pending changes nothing.
    pub fn request_unplug(&mut self, cpu: CpuIndex) -> Result<(), HotplugError> {
        if cpu == CpuIndex(0) && self.slot(cpu).is_some() {
            return Err(HotplugError::BootCpu);
        }
        let slot = self.slot_mut(cpu)?;
        if !slot.present {
            return Err(HotplugError::NotPresent { cpu });
        }
        slot.removing = true;
        Ok(())
    }

    /// Platform reset. `hard` keeps which CPUs are plugged and clears everything else
    /// (module doc, "Hard reset"); a soft reset (INIT) leaves the block alone.
    pub fn reset(&mut self, hard: bool) {
        if !hard {
            return;
        }
        for slot in &mut self.slots {
            slot.clear_events();
            slot.ost = OstRecord::default();
        }
        self.selector = 0;
        self.command = HotplugCommand::default();
    }

    /// `IN` of `width` at `offset` into the window (module doc, steps 1, 2 and 4).
    pub fn read(&mut self, offset: u16, width: AccessWidth) -> u32 {
        if !Self::aligned(offset, width) {
            self.count_ignored();
            return 0;
        }
        let Some(slot) = self.selected() else {
            return 0;
        };
        let value = match (offset, self.command) {
            (Self::REG_FLAGS, _) => u32::from(slot.status()),
            (Self::REG_COMMAND_DATA, HotplugCommand::NextCpuWithEvent) => self.selector,
            (Self::REG_COMMAND_DATA, HotplugCommand::GetApicId) => slot.apic_id.0,
            // Command data 2 holds APIC ID bits 63:32, always 0 for a 32-bit APIC ID.
            _ => 0,
        };
        value & width.all_ones()
    }

    /// `OUT` of `value` (masked to `width`) at `offset` into the window; an eject pushes
    /// [`Effect::EjectCpu`] (module doc, steps 1–5).
    pub fn write(
        &mut self,
        offset: u16,
        width: AccessWidth,
        value: u32,
        effects: &mut Vec<Effect>,
    ) {
        if !Self::aligned(offset, width) {
            self.count_ignored();
            return;
        }
        let value = value & width.all_ones();
        if offset == Self::REG_SELECTOR {
            // Any value: an out-of-range one is how the enumeration recipe ends.
            self.selector = value;
            return;
        }
        let Some(index) = self.selected_index() else {
            self.count_ignored();
            return;
        };
        match offset {
            Self::REG_FLAGS => self.control(index, value, effects),
            Self::REG_COMMAND => self.set_command(value),
            Self::REG_COMMAND_DATA => self.command_data(index, value),
            _ => self.count_ignored(),
        }
    }

    /// A write to the control byte for the selected CPU (module doc, step 3).
    fn control(&mut self, index: usize, value: u32, effects: &mut Vec<Effect>) {
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let set = |bit: u8| value & u32::from(bit) != 0;
        // Index 0 is the boot CPU: never ejected, never handed to firmware for ejection.
        let ejectable = slot.present && index != 0;
        let refused = if set(Self::CONTROL_CLEAR_INSERT) {
            slot.inserting = false;
            false
        } else if set(Self::CONTROL_CLEAR_REMOVE) {
            slot.removing = false;
            false
        } else if set(Self::CONTROL_EJECT) {
            if ejectable {
                slot.present = false;
                slot.clear_events();
                // `index` came from a selector below `max_cpus`, a u32.
                effects.push(Effect::EjectCpu(CpuIndex(index as u32)));
            }
            !ejectable
        } else if set(Self::CONTROL_FW_REMOVE) {
            if ejectable {
                slot.fw_remove = true;
            }
            !ejectable
        } else {
            false
        };
        if refused {
            self.count_ignored();
        }
    }

    /// A write to the command byte (module doc, step 4).
    fn set_command(&mut self, value: u32) {
        let Some(command) = HotplugCommand::from_value(value) else {
            self.count_ignored();
            return;
        };
        self.command = command;
        if command == HotplugCommand::NextCpuWithEvent {
            let count = self.slots.len();
            let start = self.selector as usize;
            if let Some(found) = (0..count)
                .map(|step| (start + step) % count)
                .find(|&index| self.slots.get(index).is_some_and(Slot::has_event))
            {
                // `found` < `max_cpus`, a u32.
                self.selector = found as u32;
            }
        }
    }

    /// A write to command data: the OST pair for commands 1 and 2, nothing otherwise.
    fn command_data(&mut self, index: usize, value: u32) {
        match (self.command, self.slots.get_mut(index)) {
            (HotplugCommand::OstEvent, Some(slot)) => slot.ost.event = value,
            (HotplugCommand::OstStatus, Some(slot)) => slot.ost.status = value,
            _ => self.count_ignored(),
        }
    }

    /// Whether QEMU's memory core would accept an access of `width` at `offset`.
    fn aligned(offset: u16, width: AccessWidth) -> bool {
        u32::from(offset) % width.bytes() == 0
    }

    /// The slot index the selector names, if it names one.
    fn selected_index(&self) -> Option<usize> {
        let index = usize::try_from(self.selector).ok()?;
        (index < self.slots.len()).then_some(index)
    }

    fn selected(&self) -> Option<&Slot> {
        self.slots.get(self.selected_index()?)
    }

    fn slot(&self, cpu: CpuIndex) -> Option<&Slot> {
        self.slots.get(usize::try_from(cpu.0).ok()?)
    }

    fn slot_mut(&mut self, cpu: CpuIndex) -> Result<&mut Slot, HotplugError> {
        let max_cpus = self.max_cpus();
        usize::try_from(cpu.0)
            .ok()
            .and_then(|index| self.slots.get_mut(index))
            .ok_or(HotplugError::NoSuchCpu { cpu, max_cpus })
    }

    fn count_ignored(&mut self) {
        self.ignored_accesses = self.ignored_accesses.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: AccessWidth = AccessWidth::Byte;
    const W: AccessWidth = AccessWidth::Word;
    const D: AccessWidth = AccessWidth::Dword;

    fn ids(n: u32) -> Vec<ApicId> {
        (0..n).map(ApicId).collect()
    }

    /// Four possible CPUs, two plugged.
    fn block() -> CpuHotplug {
        CpuHotplug::new(&ids(4), 2).expect("a valid configuration")
    }

    fn out(hp: &mut CpuHotplug, offset: u16, width: AccessWidth, value: u32) -> Vec<Effect> {
        let mut effects = Vec::new();
        hp.write(offset, width, value, &mut effects);
        effects
    }

    fn status_of(hp: &mut CpuHotplug, cpu: u32) -> u32 {
        out(hp, CpuHotplug::REG_SELECTOR, D, cpu);
        hp.read(CpuHotplug::REG_FLAGS, B)
    }

    #[test]
    fn bad_configurations_are_refused_with_the_value() {
        assert_eq!(CpuHotplug::new(&[], 1), Err(HotplugConfigError::NoCpus));
        let err = CpuHotplug::new(&ids(4), 5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "5 boot CPUs is not between 1 and the 4 possible CPUs"
        );
        assert!(CpuHotplug::new(&ids(4), 0).is_err());
        let err = CpuHotplug::new(&[ApicId(0), ApicId(2), ApicId(2)], 1).unwrap_err();
        assert_eq!(
            err,
            HotplugConfigError::DuplicateApicId {
                apic_id: ApicId(2),
                first: CpuIndex(1),
                second: CpuIndex(2)
            }
        );
        assert_eq!(err.to_string(), "CPUs 1 and 2 share APIC ID 0x2");
    }

    #[test]
    fn boot_cpus_are_enabled_without_events() {
        let mut hp = block();
        assert_eq!(hp.present_count(), 2);
        assert_eq!(status_of(&mut hp, 0), 1);
        assert_eq!(status_of(&mut hp, 1), 1);
        assert_eq!(status_of(&mut hp, 2), 0);
        assert_eq!(hp.apic_id(CpuIndex(3)), Some(ApicId(3)));
        assert_eq!(hp.cpu_index(ApicId(3)), Some(CpuIndex(3)));
        assert_eq!(hp.cpu_index(ApicId(4)), None);
    }

    #[test]
    fn insert_sets_enabled_and_insert_and_refuses_twice() {
        let mut hp = block();
        hp.insert(CpuIndex(3)).unwrap();
        assert_eq!(hp.status(CpuIndex(3)), Some(0b11));
        assert_eq!(
            hp.insert(CpuIndex(3)),
            Err(HotplugError::AlreadyPresent { cpu: CpuIndex(3) })
        );
        assert_eq!(
            hp.insert(CpuIndex(4)),
            Err(HotplugError::NoSuchCpu {
                cpu: CpuIndex(4),
                max_cpus: 4
            })
        );
        assert_eq!(
            hp.insert(CpuIndex(u32::MAX)).unwrap_err().to_string(),
            "CPU 4294967295 is not one of the 4 possible CPUs"
        );
    }

    #[test]
    fn unplug_requests_need_a_present_cpu_other_than_0() {
        let mut hp = block();
        assert_eq!(hp.request_unplug(CpuIndex(0)), Err(HotplugError::BootCpu));
        assert_eq!(
            hp.request_unplug(CpuIndex(2)),
            Err(HotplugError::NotPresent { cpu: CpuIndex(2) })
        );
        assert!(matches!(
            hp.request_unplug(CpuIndex(9)),
            Err(HotplugError::NoSuchCpu { .. })
        ));
        hp.request_unplug(CpuIndex(1)).unwrap();
        hp.request_unplug(CpuIndex(1)).unwrap();
        assert_eq!(hp.status(CpuIndex(1)), Some(0b101));
    }

    #[test]
    fn one_control_action_per_write_in_qemu_order() {
        let mut hp = block();
        hp.insert(CpuIndex(2)).unwrap();
        hp.request_unplug(CpuIndex(2)).unwrap();
        out(&mut hp, CpuHotplug::REG_SELECTOR, D, 2);
        // All of CLR_IN, CLR_RM and EJECT: only the insert event goes.
        let effects = out(&mut hp, CpuHotplug::REG_FLAGS, B, 0b1110);
        assert_eq!(effects, []);
        assert_eq!(hp.read(CpuHotplug::REG_FLAGS, B), 0b101);
        out(&mut hp, CpuHotplug::REG_FLAGS, B, 0b1100);
        assert_eq!(hp.read(CpuHotplug::REG_FLAGS, B), 0b001);
        let effects = out(&mut hp, CpuHotplug::REG_FLAGS, B, 0b11000);
        assert_eq!(effects, [Effect::EjectCpu(CpuIndex(2))], "EJECT wins");
        assert_eq!(hp.read(CpuHotplug::REG_FLAGS, B), 0, "FW_REMOVE not set");
        assert_eq!(hp.present_count(), 2);
    }

    #[test]
    fn eject_and_fw_remove_spare_cpu_0_and_absent_cpus() {
        let mut hp = block();
        for cpu in [0, 2] {
            out(&mut hp, CpuHotplug::REG_SELECTOR, D, cpu);
            assert_eq!(
                out(
                    &mut hp,
                    CpuHotplug::REG_FLAGS,
                    B,
                    u32::from(CpuHotplug::CONTROL_EJECT)
                ),
                []
            );
            out(
                &mut hp,
                CpuHotplug::REG_FLAGS,
                B,
                u32::from(CpuHotplug::CONTROL_FW_REMOVE),
            );
        }
        assert_eq!(hp.status(CpuIndex(0)), Some(1));
        assert_eq!(hp.status(CpuIndex(2)), Some(0));
        assert_eq!(hp.ignored_accesses(), 4);
    }

    #[test]
    fn eject_clears_the_events_and_reports_the_cpu() {
        let mut hp = block();
        hp.request_unplug(CpuIndex(1)).unwrap();
        out(&mut hp, CpuHotplug::REG_SELECTOR, D, 1);
        out(
            &mut hp,
            CpuHotplug::REG_FLAGS,
            B,
            u32::from(CpuHotplug::CONTROL_FW_REMOVE),
        );
        assert_eq!(hp.read(CpuHotplug::REG_FLAGS, B), 0b1_0101);
        let effects = out(
            &mut hp,
            CpuHotplug::REG_FLAGS,
            B,
            u32::from(CpuHotplug::CONTROL_EJECT),
        );
        assert_eq!(effects, [Effect::EjectCpu(CpuIndex(1))]);
        assert_eq!(hp.read(CpuHotplug::REG_FLAGS, B), 0);
        assert!(!hp.is_present(CpuIndex(1)));
        // It can come back.
        hp.insert(CpuIndex(1)).unwrap();
        assert_eq!(hp.status(CpuIndex(1)), Some(0b11));
    }

    #[test]
    fn next_event_search_wraps_and_keeps_the_selector_when_nothing_is_pending() {
        let mut hp = CpuHotplug::new(&ids(8), 2).unwrap();
        out(&mut hp, CpuHotplug::REG_SELECTOR, D, 5);
        out(&mut hp, CpuHotplug::REG_COMMAND, B, 0);
        assert_eq!(hp.read(CpuHotplug::REG_COMMAND_DATA, D), 5);
        hp.insert(CpuIndex(3)).unwrap();
        hp.insert(CpuIndex(7)).unwrap();
        out(&mut hp, CpuHotplug::REG_COMMAND, B, 0);
        assert_eq!(hp.read(CpuHotplug::REG_COMMAND_DATA, D), 7);
        // The selected CPU itself counts: searching again stays.
        out(&mut hp, CpuHotplug::REG_COMMAND, B, 0);
        assert_eq!(hp.selector(), 7);
        out(&mut hp, CpuHotplug::REG_FLAGS, B, 2);
        out(&mut hp, CpuHotplug::REG_COMMAND, B, 0);
        assert_eq!(hp.selector(), 3, "wrapped past the end");
    }

    #[test]
    fn get_apic_id_reads_both_halves() {
        let mut hp = CpuHotplug::new(&[ApicId(0), ApicId(0x8000_0102)], 1).unwrap();
        out(&mut hp, CpuHotplug::REG_SELECTOR, D, 1);
        out(&mut hp, CpuHotplug::REG_COMMAND, B, 3);
        assert_eq!(hp.command(), HotplugCommand::GetApicId);
        assert_eq!(hp.read(CpuHotplug::REG_COMMAND_DATA, D), 0x8000_0102);
        assert_eq!(hp.read(CpuHotplug::REG_COMMAND_DATA, W), 0x0102);
        assert_eq!(hp.read(CpuHotplug::REG_COMMAND_DATA2, D), 0);
        // An unknown command leaves command 3 in place.
        out(&mut hp, CpuHotplug::REG_COMMAND, B, 4);
        assert_eq!(hp.command(), HotplugCommand::GetApicId);
    }

    #[test]
    fn ost_writes_land_on_the_selected_cpu() {
        let mut hp = block();
        out(&mut hp, CpuHotplug::REG_SELECTOR, D, 1);
        out(&mut hp, CpuHotplug::REG_COMMAND, B, 1);
        out(&mut hp, CpuHotplug::REG_COMMAND_DATA, D, 0x103);
        out(&mut hp, CpuHotplug::REG_COMMAND, B, 2);
        out(&mut hp, CpuHotplug::REG_COMMAND_DATA, D, 0x80);
        assert_eq!(
            hp.ost(CpuIndex(1)),
            Some(OstRecord {
                event: 0x103,
                status: 0x80
            })
        );
        assert_eq!(hp.read(CpuHotplug::REG_COMMAND_DATA, D), 0, "cmd 2 reads 0");
    }

    #[test]
    fn invalid_selector_reads_zero_and_drops_other_writes() {
        let mut hp = block();
        hp.insert(CpuIndex(2)).unwrap();
        out(&mut hp, CpuHotplug::REG_SELECTOR, D, 4);
        assert_eq!(hp.read(CpuHotplug::REG_FLAGS, B), 0);
        assert_eq!(hp.read(CpuHotplug::REG_COMMAND_DATA, D), 0);
        out(&mut hp, CpuHotplug::REG_COMMAND, B, 3);
        assert_eq!(hp.command(), HotplugCommand::NextCpuWithEvent);
        out(&mut hp, CpuHotplug::REG_SELECTOR, D, 2);
        assert_eq!(hp.read(CpuHotplug::REG_FLAGS, B), 0b11);
    }

    #[test]
    fn accesses_are_taken_whole_at_their_start_offset() {
        let mut hp = block();
        hp.insert(CpuIndex(2)).unwrap();
        // A byte write at 0 replaces the whole selector.
        out(&mut hp, CpuHotplug::REG_SELECTOR, D, 0x0102_0300);
        out(&mut hp, CpuHotplug::REG_SELECTOR, B, 2);
        assert_eq!(hp.selector(), 2);
        // A word write at 2 is not the selector's.
        out(&mut hp, 2, W, 0xFFFF);
        assert_eq!(hp.selector(), 2);
        // A word write at 4 is control only: its high byte is not a command.
        out(&mut hp, CpuHotplug::REG_FLAGS, W, 0x0300);
        assert_eq!(hp.command(), HotplugCommand::NextCpuWithEvent);
        // A dword read at 4 is the status; bytes past a register's start read 0.
        assert_eq!(hp.read(CpuHotplug::REG_FLAGS, D), 0b11);
        assert_eq!(hp.read(9, B), 0);
        assert_eq!(hp.read(CpuHotplug::REG_COMMAND, B), 0);
        // Misaligned: refused and counted.
        let before = hp.ignored_accesses();
        assert_eq!(hp.read(5, W), 0);
        out(&mut hp, 1, D, 0);
        assert_eq!(hp.ignored_accesses(), before + 2);
        assert_eq!(hp.selector(), 2);
    }

    #[test]
    fn hard_reset_keeps_presence_and_clears_the_rest() {
        let mut hp = block();
        hp.insert(CpuIndex(3)).unwrap();
        hp.request_unplug(CpuIndex(1)).unwrap();
        out(&mut hp, CpuHotplug::REG_SELECTOR, D, 3);
        out(&mut hp, CpuHotplug::REG_COMMAND, B, 1);
        out(&mut hp, CpuHotplug::REG_COMMAND_DATA, D, 7);
        let before = hp.clone();
        hp.reset(false);
        assert_eq!(hp, before, "INIT leaves the block alone");
        hp.reset(true);
        assert_eq!(hp.present_count(), 3);
        assert_eq!(hp.status(CpuIndex(3)), Some(1));
        assert_eq!(hp.status(CpuIndex(1)), Some(1));
        assert_eq!(hp.ost(CpuIndex(3)), Some(OstRecord::default()));
        assert_eq!(hp.selector(), 0);
        assert_eq!(hp.command(), HotplugCommand::NextCpuWithEvent);
    }

    #[test]
    fn any_access_anywhere_is_safe() {
        let mut hp = block();
        hp.insert(CpuIndex(2)).unwrap();
        let mut effects = Vec::new();
        for selector in [0, 1, 2, 3, 4, u32::MAX] {
            for offset in 0..16u16 {
                for width in [B, W, D] {
                    for value in [0, 1, 0xFF, 0x1E, 0xFFFF_FFFF] {
                        hp.write(CpuHotplug::REG_SELECTOR, D, selector, &mut effects);
                        hp.write(offset, width, value, &mut effects);
                        let _ = hp.read(offset, width);
                        hp.write(CpuHotplug::REG_COMMAND, B, 0, &mut effects);
                    }
                }
            }
        }
        assert!(hp.is_present(CpuIndex(0)), "CPU 0 survives anything");
    }
}
