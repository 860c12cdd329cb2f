//! The q35 chipset as one device: the MCH, the ICH9 LPC bridge with its PM block, APM
//! ports and reset control, fw_cfg, the SMI feature negotiation, the ACPI CPU hot-plug
//! block and smmsim's SMBASE controller — the one thing the simulator routes chipset ports
//! to.
//!
//! Its ports are spread over the I/O space, and one window (the PM block) moves when
//! firmware programs PMBASE, so the chipset is not a [`crate::PortDevice`] on the
//! [`crate::PortBus`]: the simulator offers every port access to
//! [`Q35Chipset::port_read`] / [`Q35Chipset::port_write`] first, with the absolute port,
//! and hands it to the bus only when the chipset answers `None` / `false`.
//!
//! ```text
//! ports          device                                        see
//! 0x00B2-0x00B3  APM control / status                          apm.rs
//! 0x0510-0x0511  fw_cfg selector / data                        fw_cfg.rs
//! 0x0514-0x051B  fw_cfg DMA address                            fw_cfg.rs
//! 0x0CD8-0x0CE3  ACPI CPU hot-plug block (modern interface)    cpu_hotplug.rs
//! 0x0CF8         PCI CONFIG_ADDRESS (also 0xCFA-0xCFB)         pci.rs
//! 0x0CF9         reset control (first port of the access)      reset_control.rs
//! 0x0CFC-0x0CFF  PCI CONFIG_DATA -> MCH 0:0.0, LPC 0:1f.0      pci.rs, mch.rs, lpc.rs
//! 0x0EE0-0x0EF3  smmsim SMBASE controller (extension)          smbase_controller.rs
//! PMBASE+0..0x7F ACPI PM block, while LPC ACPI_EN is set       pm.rs
//! ```
//!
//! The flow of one access:
//! 1. the simulator calls `port_read`/`port_write` with the absolute port; the chipset
//!    picks the device by the access's first port (fixed windows first, then the PM
//!    window), exactly as QEMU's memory core dispatches an I/O access whole to the region
//!    at its start address;
//! 2. the device updates its state and pushes effects: [`Effect::RaiseSmi`] (APM),
//!    [`Effect::Reset`] (0xCF9), [`Effect::SmramChanged`] (MCH writes),
//!    [`Effect::EjectCpu`] (hot-plug block), [`Effect::SmbaseControllerBlocked`] (a write
//!    the SMBASE controller refused);
//! 3. a fw_cfg DMA transfer reads and writes guest memory through the [`DmaMemory`] the
//!    simulator passes to `port_write` — synchronously, so the transfer is complete when
//!    the `OUT` retires, as in QEMU;
//! 4. after an LPC write the chipset re-reads PMBASE/ACPI_EN (the PM window may have moved
//!    or vanished) and SMI_LOCK (which freezes GBL_SMI_EN in the PM block).
//!
//! Resets: [`Q35Chipset::reset`]`(true)` is the platform reset every register of every part
//! returns from (SMRAM unlocked, nothing SMRAM, PM block undecoded, SMI negotiation open,
//! fw_cfg back to the signature, files kept, SMBASE controller empty and unlocked,
//! hot-plug events cleared but hot-added CPUs still plugged). QEMU resets most of this
//! too; where its device reset keeps a register (LPC GEN_PMCON_1, PAM, the APM bytes, the
//! hot-plug block's events and selector) smmsim clears it, following the ICH9/MCH
//! datasheets or, for the hot-plug block, the reasons in cpu_hotplug.rs. `reset(false)` is
//! INIT: CPUs only, the chipset keeps its state.
//!
//! CPU hot-plug, platform side: [`Q35Chipset::hot_add_cpu`] and
//! [`Q35Chipset::request_cpu_unplug`] mark the CPU in the hot-plug block and set GPE0_STS
//! bit 2, as QEMU's `acpi_cpu_plug_cb` / `acpi_cpu_unplug_request_cb` do through
//! `acpi_send_event`. The CPU index k has APIC ID k ([`Q35Config::max_cpus`]).
//!
//! [`ChipsetProfile`] picks between the ICH9 datasheet (PLATFORM.md's contract, the
//! default) and QEMU where they disagree: whether an APM SMI also needs GBL_SMI_EN and sets
//! APM_STS (apm.rs), whether SMI_STS can be cleared (pm.rs), and whether 0xCF9 ← 0x04 is
//! INIT or a full reset (reset_control.rs).

use std::fmt;

use crate::access::{AccessContext, AccessWidth, ApicId, CpuIndex};
use crate::apm::{apm_command, Apm};
use crate::cpu_hotplug::{CpuHotplug, HotplugConfigError, HotplugError};
use crate::effect::Effect;
use crate::fw_cfg::{DmaMemory, FwCfg, FwCfgError};
use crate::lpc::Lpc;
use crate::mch::{Mch, SmramLayout};
use crate::pci::{
    ConfigMechanism, DataTarget, CONFIG_ADDRESS_PORT, CONFIG_DATA_PORT, CONFIG_DATA_PORTS,
};
use crate::pm::PmBlock;
use crate::reset_control::ResetControl;
use crate::smbase_controller::{SmbaseController, SmbaseControllerError};
use crate::smi_features::{SmiFeatureError, SmiFeatureSet, SmiNegotiation};

/// One MiB.
const MIB: u64 = 1 << 20;
/// 4 GiB: low RAM ends below it.
const FOUR_GIB: u64 = 1 << 32;

/// Whose behaviour the chipset follows where the ICH9 datasheet and QEMU disagree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ChipsetProfile {
    /// The ICH9 datasheet, as PLATFORM.md specifies: an APM SMI needs GBL_SMI_EN and
    /// APMC_EN and sets APM_STS; SMI_STS is write-1-to-clear; 0xCF9 ← 0x04 is INIT.
    #[default]
    Datasheet,
    /// QEMU's q35: APMC_EN alone raises the SMI and SMI_STS stays 0; any RST_CPU write to
    /// 0xCF9 resets the whole machine. For differential runs against QEMU.
    Qemu,
}

/// What a q35 chipset is built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Q35Config {
    /// Where RAM below 4 GiB ends (QEMU `below-4g-mem-size`): TSEG ends here.
    pub low_ram_bytes: u64,
    /// Extended TSEG size in MiB, what TSEG_SZ = 3 selects and MCH reg 0x50 reports
    /// (QEMU `extended-tseg-mbytes`, default 16; 0 = none; at most 0xFFF).
    pub ext_tseg_mbytes: u16,
    /// Whether MCH reg 0x9C offers SMRAM at the default SMBASE (QEMU `smbase-smram`,
    /// default on).
    pub smbase_smram: bool,
    /// The SMI features offered through fw_cfg (QEMU `x-smi-broadcast`,
    /// `x-smi-cpu-hotplug`, `x-smi-cpu-hotunplug`).
    pub smi_features: SmiFeatureSet,
    /// Datasheet or QEMU behaviour where they differ.
    pub profile: ChipsetProfile,
    /// The core clock, which drives the PM timer.
    pub clock_hz: u64,
    /// CPUs plugged at power-on (QEMU `-smp N`): CPU indices `0 .. boot_cpus`.
    pub boot_cpus: u32,
    /// CPUs possible (QEMU `-smp …,maxcpus=M`), at most [`Q35Config::MAX_CPUS`]. CPU index
    /// k has APIC ID k, so this is also the APIC-ID limit the SMBASE controller's table
    /// covers.
    pub max_cpus: u32,
}

impl Q35Config {
    /// The most possible CPUs a chipset supports: the SMBASE controller's table size.
    pub const MAX_CPUS: u32 = SmbaseController::MAX_APIC_IDS;

    /// QEMU's defaults for a machine with `ram_bytes` of RAM (low RAM split as
    /// [`Q35Config::below_4g_ram_bytes`]), at the default 2 GHz clock (DESIGN.md §2).
    pub fn new(ram_bytes: u64) -> Q35Config {
        Q35Config {
            low_ram_bytes: Self::below_4g_ram_bytes(ram_bytes),
            ext_tseg_mbytes: Mch::EXT_TSEG_MBYTES_DEFAULT,
            smbase_smram: true,
            smi_features: SmiFeatureSet::QEMU_DEFAULT,
            profile: ChipsetProfile::Datasheet,
            clock_hz: 2_000_000_000,
            boot_cpus: 1,
            max_cpus: 1,
        }
    }

    /// How much of `ram_bytes` QEMU's q35 puts below 4 GiB (`pc_q35_init`): all of it up
    /// to 0xB0000000 (2.75 GiB); from there on the low part is 2 GiB and the rest goes
    /// above 4 GiB.
    pub fn below_4g_ram_bytes(ram_bytes: u64) -> u64 {
        let lowmem = if ram_bytes >= 0xB000_0000 {
            0x8000_0000
        } else {
            0xB000_0000
        };
        ram_bytes.min(lowmem)
    }

    /// Checks the configuration (the errors of [`Q35Chipset::new`] that do not involve
    /// fw_cfg).
    pub fn validate(&self) -> Result<(), ChipsetError> {
        if self.low_ram_bytes == 0 || self.low_ram_bytes > FOUR_GIB {
            return Err(ChipsetError::LowRam {
                low_ram_bytes: self.low_ram_bytes,
            });
        }
        if self.ext_tseg_mbytes > Mch::EXT_TSEG_MBYTES_MAX {
            return Err(ChipsetError::ExtTsegTooLarge {
                mbytes: self.ext_tseg_mbytes,
            });
        }
        // The largest TSEG the guest can pick must fit in low RAM.
        let largest_tseg_bytes = (8 * MIB).max(u64::from(self.ext_tseg_mbytes) * MIB);
        if largest_tseg_bytes > self.low_ram_bytes {
            return Err(ChipsetError::TsegLargerThanLowRam {
                tseg_bytes: largest_tseg_bytes,
                low_ram_bytes: self.low_ram_bytes,
            });
        }
        if self.clock_hz == 0 {
            return Err(ChipsetError::ZeroClock);
        }
        if self.boot_cpus == 0 || self.boot_cpus > self.max_cpus || self.max_cpus > Self::MAX_CPUS {
            return Err(ChipsetError::CpuCount {
                boot_cpus: self.boot_cpus,
                max_cpus: self.max_cpus,
            });
        }
        self.smi_features
            .check_supported()
            .map_err(ChipsetError::SmiFeatures)
    }
}

/// Why a chipset could not be built: a mistake in the machine's setup, not a guest action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChipsetError {
    /// Low RAM is empty or extends past 4 GiB.
    LowRam {
        /// The size given.
        low_ram_bytes: u64,
    },
    /// The extended TSEG is larger than QEMU allows (0xFFF MiB).
    ExtTsegTooLarge {
        /// The size given, in MiB.
        mbytes: u16,
    },
    /// A TSEG the guest may select would not fit below the top of low RAM.
    TsegLargerThanLowRam {
        /// The largest selectable TSEG.
        tseg_bytes: u64,
        /// Low RAM.
        low_ram_bytes: u64,
    },
    /// The clock is 0 Hz, so the PM timer could not run.
    ZeroClock,
    /// The supported SMI feature set is not one a platform may offer.
    SmiFeatures(SmiFeatureError),
    /// fw_cfg refused one of the SMI feature files.
    FwCfg(FwCfgError),
    /// The CPU counts are not `1 <= boot_cpus <= max_cpus <= Q35Config::MAX_CPUS`.
    CpuCount {
        /// CPUs plugged at power-on.
        boot_cpus: u32,
        /// CPUs possible.
        max_cpus: u32,
    },
    /// The CPU hot-plug block refused the CPU list.
    CpuHotplug(HotplugConfigError),
    /// The SMBASE controller refused the APIC-ID count.
    SmbaseController(SmbaseControllerError),
}

impl fmt::Display for ChipsetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChipsetError::LowRam { low_ram_bytes } => write!(
                f,
                "low RAM of {low_ram_bytes:#x} bytes is not between 1 byte and 4 GiB"
            ),
            ChipsetError::ExtTsegTooLarge { mbytes } => write!(
                f,
                "extended TSEG of {mbytes} MiB exceeds the limit of {} MiB",
                Mch::EXT_TSEG_MBYTES_MAX
            ),
            ChipsetError::TsegLargerThanLowRam {
                tseg_bytes,
                low_ram_bytes,
            } => write!(
                f,
                "a TSEG of {tseg_bytes:#x} bytes does not fit in low RAM of {low_ram_bytes:#x} bytes"
            ),
            ChipsetError::ZeroClock => write!(f, "the core clock is 0 Hz"),
            ChipsetError::SmiFeatures(_) => write!(f, "invalid supported SMI feature set"),
            ChipsetError::FwCfg(_) => write!(f, "cannot publish the SMI feature files"),
            ChipsetError::CpuCount {
                boot_cpus,
                max_cpus,
            } => write!(
                f,
                "{boot_cpus} boot CPUs of {max_cpus} possible is not \
                 1 <= boot <= possible <= {}",
                Q35Config::MAX_CPUS
            ),
            ChipsetError::CpuHotplug(_) => write!(f, "cannot build the CPU hot-plug block"),
            ChipsetError::SmbaseController(_) => {
                write!(f, "cannot build the SMBASE controller")
            }
        }
    }
}

impl std::error::Error for ChipsetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChipsetError::SmiFeatures(e) => Some(e),
            ChipsetError::FwCfg(e) => Some(e),
            ChipsetError::CpuHotplug(e) => Some(e),
            ChipsetError::SmbaseController(e) => Some(e),
            _ => None,
        }
    }
}

/// Which part of the chipset a port belongs to, with the offset into its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Apm(u16),
    FwCfg(u16),
    FwCfgDma(u16),
    PciAddress(u16),
    ResetControl,
    PciData(u16),
    Pm(u16),
    CpuHotplug(u16),
    SmbaseController(u16),
}

/// The q35 chipset: MCH, LPC with PM block, APM, reset control, fw_cfg, SMI feature
/// negotiation, CPU hot-plug block and SMBASE controller behind one port interface.
///
/// Exists so the simulator registers one thing for every chipset port, gets effects back,
/// and can ask what SMRAM is, what SMI features firmware negotiated, which CPUs are
/// plugged and what SMBASE a hot-added CPU gets.
#[derive(Debug)]
pub struct Q35Chipset {
    config: Q35Config,
    pci: ConfigMechanism,
    mch: Mch,
    lpc: Lpc,
    pm: PmBlock,
    /// Where the PM block is decoded, as of the last LPC write.
    pm_base: Option<u16>,
    apm: Apm,
    reset_control: ResetControl,
    fw_cfg: FwCfg,
    smi: SmiNegotiation,
    cpu_hotplug: CpuHotplug,
    smbase_controller: SmbaseController,
}

impl Q35Chipset {
    /// A chipset in its reset state built from `config`, taking over `fw_cfg`: it turns on
    /// the DMA interface and adds the SMI feature files to the ones already there.
    pub fn new(config: Q35Config, mut fw_cfg: FwCfg) -> Result<Q35Chipset, ChipsetError> {
        config.validate()?;
        fw_cfg.set_dma_enabled(true);
        let smi = SmiNegotiation::install(config.smi_features, &mut fw_cfg)
            .map_err(ChipsetError::FwCfg)?;
        let apic_ids: Vec<ApicId> = (0..config.max_cpus).map(ApicId).collect();
        let cpu_hotplug =
            CpuHotplug::new(&apic_ids, config.boot_cpus).map_err(ChipsetError::CpuHotplug)?;
        let smbase_controller =
            SmbaseController::new(config.max_cpus).map_err(ChipsetError::SmbaseController)?;
        Ok(Q35Chipset {
            config,
            pci: ConfigMechanism::new(),
            mch: Mch::new(
                config.low_ram_bytes,
                config.ext_tseg_mbytes,
                config.smbase_smram,
            ),
            lpc: Lpc::new(),
            pm: PmBlock::new(config.profile, config.clock_hz),
            pm_base: None,
            apm: Apm::new(),
            reset_control: ResetControl::new(),
            fw_cfg,
            smi,
            cpu_hotplug,
            smbase_controller,
        })
    }

    /// The configuration the chipset was built from.
    pub fn config(&self) -> &Q35Config {
        &self.config
    }

    /// Whether the chipset answers `port` right now (the PM window moves with PMBASE).
    pub fn claims_port(&self, port: u16) -> bool {
        self.route(port).is_some()
    }

    /// Carries out an `IN` of `width` at absolute `port`: `Some(value)` masked to the
    /// width, or `None` when the port is not the chipset's (the simulator then asks its
    /// [`crate::PortBus`]). No chipset read has side effects beyond the device's own state
    /// today; `effects` is there so one may, as on [`crate::PortDevice::port_read`].
    pub fn port_read(
        &mut self,
        ctx: &AccessContext,
        port: u16,
        width: AccessWidth,
        _effects: &mut Vec<Effect>,
    ) -> Option<u32> {
        let value = match self.route(port)? {
            Route::Apm(offset) => self.apm.read(offset, width),
            Route::FwCfg(offset) => self.fw_cfg.io_read(offset, width),
            Route::FwCfgDma(offset) => self.fw_cfg.dma_read(offset, width),
            Route::PciAddress(offset) => self.pci.address_read(offset, width),
            Route::ResetControl => self.reset_control.read(),
            Route::PciData(offset) => self.config_read(offset, width),
            Route::Pm(offset) => self.pm.read(offset, width, ctx.cycle),
            Route::CpuHotplug(offset) => self.cpu_hotplug.read(offset, width),
            Route::SmbaseController(offset) => self.smbase_controller.read(offset, width),
        };
        Some(value & width.all_ones())
    }

    /// Carries out an `OUT` of `value` (masked to `width`) at absolute `port`; `memory` is
    /// what a fw_cfg DMA transfer reads and writes. Returns false when the port is not the
    /// chipset's (the simulator then asks its [`crate::PortBus`]).
    pub fn port_write(
        &mut self,
        ctx: &AccessContext,
        port: u16,
        width: AccessWidth,
        value: u32,
        memory: &mut dyn DmaMemory,
        effects: &mut Vec<Effect>,
    ) -> bool {
        let Some(route) = self.route(port) else {
            return false;
        };
        let value = value & width.all_ones();
        match route {
            Route::Apm(offset) => {
                let negotiated = self.smi.negotiated();
                let profile = self.config.profile;
                let pm = &mut self.pm;
                self.apm.write(offset, width, value, |command| {
                    apm_command(command, pm, negotiated, profile, ctx, effects);
                });
            }
            Route::FwCfg(offset) => self.fw_cfg.io_write(offset, width, value, &mut self.smi),
            Route::FwCfgDma(offset) => {
                self.fw_cfg
                    .dma_write(offset, width, value, memory, &mut self.smi);
            }
            Route::PciAddress(offset) => self.pci.address_write(offset, width, value),
            Route::ResetControl => self
                .reset_control
                .write(value, self.config.profile, effects),
            Route::PciData(offset) => self.config_write(offset, width, value, effects),
            Route::Pm(offset) => self.pm.write(offset, width, value),
            Route::CpuHotplug(offset) => self.cpu_hotplug.write(offset, width, value, effects),
            Route::SmbaseController(offset) => {
                self.smbase_controller
                    .write(ctx, offset, width, value, effects);
            }
        }
        true
    }

    /// What is SMRAM now. The simulator builds its memory views from it at start-up and
    /// after a hard reset, and on every [`Effect::SmramChanged`] in between.
    pub fn smram_layout(&self) -> SmramLayout {
        self.mch.smram_layout()
    }

    /// The SMI features firmware negotiated (empty until it did).
    pub fn negotiated_smi_features(&self) -> SmiFeatureSet {
        self.smi.negotiated()
    }

    /// The negotiation itself: supported set, lock state, last rejection.
    pub fn smi_negotiation(&self) -> &SmiNegotiation {
        &self.smi
    }

    /// Where the PM block is decoded, if it is.
    pub fn pm_base(&self) -> Option<u16> {
        self.pm_base
    }

    /// The PM block's registers.
    pub fn pm(&self) -> &PmBlock {
        &self.pm
    }

    /// The MCH's state.
    pub fn mch(&self) -> &Mch {
        &self.mch
    }

    /// The LPC bridge's configuration space.
    pub fn lpc(&self) -> &Lpc {
        &self.lpc
    }

    /// The APM bytes.
    pub fn apm(&self) -> &Apm {
        &self.apm
    }

    /// The fw_cfg device.
    pub fn fw_cfg(&self) -> &FwCfg {
        &self.fw_cfg
    }

    /// The fw_cfg device, to add the scenario's files.
    pub fn fw_cfg_mut(&mut self) -> &mut FwCfg {
        &mut self.fw_cfg
    }

    /// The ACPI CPU hot-plug block: which CPUs are plugged, their pending events.
    pub fn cpu_hotplug(&self) -> &CpuHotplug {
        &self.cpu_hotplug
    }

    /// The ACPI CPU hot-plug block, for platform-side changes that should not raise the
    /// GPE (the usual path is [`Q35Chipset::hot_add_cpu`]).
    pub fn cpu_hotplug_mut(&mut self) -> &mut CpuHotplug {
        &mut self.cpu_hotplug
    }

    /// The SMBASE controller: what SMBASE a hot-added CPU gets
    /// ([`SmbaseController::smbase_for`]).
    pub fn smbase_controller(&self) -> &SmbaseController {
        &self.smbase_controller
    }

    /// Hot-adds `cpu` (QEMU `device_add` of a CPU): the hot-plug block marks it enabled
    /// with an insert event and GPE0_STS bit 2 is set. The simulator then brings up the
    /// core in its RESET state, with its SMBASE from [`Q35Chipset::smbase_controller`] when
    /// the scenario's strategy uses it. Nothing changes on error.
    pub fn hot_add_cpu(&mut self, cpu: CpuIndex) -> Result<(), HotplugError> {
        self.cpu_hotplug.insert(cpu)?;
        self.signal_cpu_hotplug();
        Ok(())
    }

    /// Asks the guest to unplug `cpu` (QEMU `device_del` of a CPU): a remove event in the
    /// hot-plug block and GPE0_STS bit 2. The CPU leaves when the guest ejects it
    /// ([`Effect::EjectCpu`]). Nothing changes on error.
    pub fn request_cpu_unplug(&mut self, cpu: CpuIndex) -> Result<(), HotplugError> {
        self.cpu_hotplug.request_unplug(cpu)?;
        self.signal_cpu_hotplug();
        Ok(())
    }

    /// A CPU was hot-added or is to be removed: GPE0_STS bit 2, which the ACPI `_E02`
    /// handler reacts to (QEMU `acpi_send_gpe_event(..., ACPI_CPU_HOTPLUG_STATUS)`). SCI
    /// delivery is not modelled; the guest polls.
    pub fn signal_cpu_hotplug(&mut self) {
        self.pm.set_gpe0_status(PmBlock::GPE0_CPU_HOTPLUG);
    }

    /// Sets GPE0_STS bits for any other general-purpose event.
    pub fn set_gpe0_status(&mut self, bits: u64) {
        self.pm.set_gpe0_status(bits);
    }

    /// How many guest accesses the chipset's parts rejected or dropped.
    pub fn ignored_accesses(&self) -> u64 {
        self.pci
            .ignored_accesses()
            .saturating_add(self.pm.ignored_accesses())
            .saturating_add(self.fw_cfg.ignored_accesses())
            .saturating_add(self.cpu_hotplug.ignored_accesses())
            .saturating_add(self.smbase_controller.ignored_accesses())
    }

    /// Platform reset: `hard` puts every part in its power-on state (see the module doc);
    /// a soft reset (INIT) leaves the chipset alone. Pushes no effect: afterwards the
    /// simulator rebuilds its memory views from [`Q35Chipset::smram_layout`].
    pub fn reset(&mut self, hard: bool) {
        if !hard {
            return;
        }
        self.pci.reset();
        self.mch.reset();
        self.lpc.reset();
        self.pm.reset();
        self.pm_base = None;
        self.apm.reset();
        self.reset_control.reset();
        self.fw_cfg.reset();
        self.smi.reset(self.fw_cfg.files_mut());
        self.cpu_hotplug.reset(true);
        self.smbase_controller.reset(true);
    }

    /// The part of the chipset `port` belongs to (module doc, step 1).
    fn route(&self, port: u16) -> Option<Route> {
        const APM_LAST: u16 = Apm::PORT + Apm::WINDOW_LEN - 1;
        const FW_CFG_LAST: u16 = FwCfg::PORT + FwCfg::WINDOW_LEN - 1;
        const DMA_LAST: u16 = FwCfg::DMA_PORT + FwCfg::DMA_WINDOW_LEN - 1;
        const DATA_LAST: u16 = CONFIG_DATA_PORT + CONFIG_DATA_PORTS - 1;
        const HOTPLUG_LAST: u16 = CpuHotplug::PORT + CpuHotplug::WINDOW_LEN - 1;
        const SMBASE_LAST: u16 = SmbaseController::PORT + SmbaseController::WINDOW_LEN - 1;
        let fixed = match port {
            Apm::PORT..=APM_LAST => Some(Route::Apm(port - Apm::PORT)),
            FwCfg::PORT..=FW_CFG_LAST => Some(Route::FwCfg(port - FwCfg::PORT)),
            FwCfg::DMA_PORT..=DMA_LAST if self.fw_cfg.dma_enabled() => {
                Some(Route::FwCfgDma(port - FwCfg::DMA_PORT))
            }
            ResetControl::PORT => Some(Route::ResetControl),
            CONFIG_ADDRESS_PORT..=0x0CFB => Some(Route::PciAddress(port - CONFIG_ADDRESS_PORT)),
            CONFIG_DATA_PORT..=DATA_LAST => Some(Route::PciData(port - CONFIG_DATA_PORT)),
            CpuHotplug::PORT..=HOTPLUG_LAST => Some(Route::CpuHotplug(port - CpuHotplug::PORT)),
            SmbaseController::PORT..=SMBASE_LAST => {
                Some(Route::SmbaseController(port - SmbaseController::PORT))
            }
            _ => None,
        };
        fixed.or_else(|| {
            let base = self.pm_base?;
            let offset = port.checked_sub(base)?;
            (offset < PmBlock::WINDOW_LEN).then_some(Route::Pm(offset))
        })
    }

    /// A CONFIG_DATA read: the addressed function's register, all ones for none.
    fn config_read(&mut self, offset: u16, width: AccessWidth) -> u32 {
        match self.pci.data_target(offset, width) {
            DataTarget::Disabled => width.all_ones(),
            DataTarget::Misaligned => 0,
            DataTarget::Register { function, register } if function == Mch::ADDRESS => {
                self.mch.config_read(register, width)
            }
            DataTarget::Register { function, register } if function == Lpc::ADDRESS => {
                self.lpc.config_read(register, width)
            }
            DataTarget::Register { .. } => width.all_ones(),
        }
    }

    /// A CONFIG_DATA write: to the addressed function, then the LPC side effects (module
    /// doc, step 4). Writes to absent functions vanish.
    fn config_write(
        &mut self,
        offset: u16,
        width: AccessWidth,
        value: u32,
        effects: &mut Vec<Effect>,
    ) {
        match self.pci.data_target(offset, width) {
            DataTarget::Register { function, register } if function == Mch::ADDRESS => {
                self.mch.config_write(register, width, value, effects);
            }
            DataTarget::Register { function, register } if function == Lpc::ADDRESS => {
                self.lpc.config_write(register, width, value);
                self.pm_base = self.lpc.pm_base();
                if self.lpc.smi_lock() {
                    self.pm.lock_gbl_smi_en();
                }
            }
            DataTarget::Disabled | DataTarget::Misaligned | DataTarget::Register { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fw_cfg::DmaError;
    use smmsim_traces::Cycle;

    struct NoMemory;

    impl DmaMemory for NoMemory {
        fn read(&mut self, address: u64, buf: &mut [u8]) -> Result<(), DmaError> {
            Err(DmaError {
                address,
                len_bytes: buf.len(),
            })
        }
        fn write(&mut self, address: u64, bytes: &[u8]) -> Result<(), DmaError> {
            Err(DmaError {
                address,
                len_bytes: bytes.len(),
            })
        }
    }

    fn chipset() -> Q35Chipset {
        Q35Chipset::new(Q35Config::new(512 * MIB), FwCfg::new(1, 4)).unwrap()
    }

    fn ctx() -> AccessContext {
        AccessContext::at_cycle(Cycle::ZERO)
    }

    fn out(chipset: &mut Q35Chipset, port: u16, width: AccessWidth, value: u32) -> Vec<Effect> {
        let mut effects = Vec::new();
        assert!(chipset.port_write(&ctx(), port, width, value, &mut NoMemory, &mut effects));
        effects
    }

    fn inp(chipset: &mut Q35Chipset, port: u16, width: AccessWidth) -> u32 {
        chipset
            .port_read(&ctx(), port, width, &mut Vec::new())
            .expect("a chipset port")
    }

    fn config_address(device: u32, register: u32) -> u32 {
        0x8000_0000 | (device << 11) | register
    }

    #[test]
    fn below_4g_split_follows_qemu() {
        assert_eq!(Q35Config::below_4g_ram_bytes(512 * MIB), 512 * MIB);
        assert_eq!(Q35Config::below_4g_ram_bytes(0xAFFF_FFFF), 0xAFFF_FFFF);
        assert_eq!(Q35Config::below_4g_ram_bytes(0xB000_0000), 0x8000_0000);
        assert_eq!(Q35Config::below_4g_ram_bytes(8 << 30), 0x8000_0000);
    }

    #[test]
    fn bad_configurations_are_refused_with_the_value() {
        let mut config = Q35Config::new(512 * MIB);
        config.ext_tseg_mbytes = 0x1000;
        let err = Q35Chipset::new(config, FwCfg::new(1, 1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "extended TSEG of 4096 MiB exceeds the limit of 4095 MiB"
        );
        let mut config = Q35Config::new(4 * MIB);
        config.ext_tseg_mbytes = 0;
        assert!(matches!(
            config.validate(),
            Err(ChipsetError::TsegLargerThanLowRam { .. })
        ));
        let mut config = Q35Config::new(512 * MIB);
        config.smi_features = SmiFeatureSet::from_bits(0b101);
        let err = Q35Chipset::new(config, FwCfg::new(1, 1)).unwrap_err();
        assert_eq!(
            err,
            ChipsetError::SmiFeatures(SmiFeatureError::UnplugWithoutPlug)
        );
        assert!(std::error::Error::source(&err).is_some());
        let mut fw_cfg = FwCfg::new(1, 1);
        fw_cfg
            .add_file(SmiNegotiation::SUPPORTED_FILE, vec![])
            .unwrap();
        assert!(matches!(
            Q35Chipset::new(Q35Config::new(512 * MIB), fw_cfg),
            Err(ChipsetError::FwCfg(FwCfgError::DuplicateName { .. }))
        ));
    }

    #[test]
    fn routes_fixed_ports_and_leaves_the_rest() {
        let chipset = chipset();
        for port in [
            0xB2, 0xB3, 0x510, 0x511, 0x514, 0x51B, 0xCD8, 0xCE3, 0xCF8, 0xCF9, 0xCFB, 0xCFF,
            0xEE0, 0xEEF, 0xEF3,
        ] {
            assert!(chipset.claims_port(port), "port {port:#x}");
        }
        for port in [
            0x80, 0xB1, 0xB4, 0x402, 0x512, 0x513, 0x51C, 0xCD7, 0xCE4, 0xCF7, 0xD00, 0x600, 0xEDF,
            0xEF4,
        ] {
            assert!(!chipset.claims_port(port), "port {port:#x}");
        }
        let mut chipset = chipset;
        let mut effects = Vec::new();
        assert_eq!(
            chipset.port_read(&ctx(), 0x80, AccessWidth::Byte, &mut effects),
            None
        );
        assert!(!chipset.port_write(
            &ctx(),
            0x80,
            AccessWidth::Byte,
            1,
            &mut NoMemory,
            &mut effects
        ));
    }

    #[test]
    fn pci_reads_reach_mch_and_lpc_and_absent_functions_read_all_ones() {
        let mut chipset = chipset();
        // Disabled: all ones.
        assert_eq!(inp(&mut chipset, 0xCFC, AccessWidth::Dword), 0xFFFF_FFFF);
        out(
            &mut chipset,
            0xCF8,
            AccessWidth::Dword,
            config_address(0, 0),
        );
        assert_eq!(inp(&mut chipset, 0xCF8, AccessWidth::Dword), 0x8000_0000);
        assert_eq!(inp(&mut chipset, 0xCFC, AccessWidth::Dword), 0x29C0_8086);
        assert_eq!(inp(&mut chipset, 0xCFE, AccessWidth::Word), 0x29C0);
        out(
            &mut chipset,
            0xCF8,
            AccessWidth::Dword,
            config_address(0x1F, 0),
        );
        assert_eq!(inp(&mut chipset, 0xCFC, AccessWidth::Dword), 0x2918_8086);
        out(
            &mut chipset,
            0xCF8,
            AccessWidth::Dword,
            config_address(2, 0),
        );
        assert_eq!(inp(&mut chipset, 0xCFC, AccessWidth::Dword), 0xFFFF_FFFF);
        out(
            &mut chipset,
            0xCF8,
            AccessWidth::Dword,
            config_address(0, 0) | (1 << 16),
        );
        assert_eq!(
            inp(&mut chipset, 0xCFD, AccessWidth::Byte),
            0xFF,
            "bus 1 is empty"
        );
        assert_eq!(inp(&mut chipset, 0xCFD, AccessWidth::Word), 0, "misaligned");
    }

    #[test]
    fn pm_window_follows_pmbase_and_acpi_en() {
        let mut chipset = chipset();
        out(
            &mut chipset,
            0xCF8,
            AccessWidth::Dword,
            config_address(0x1F, 0x40),
        );
        out(&mut chipset, 0xCFC, AccessWidth::Dword, 0x601);
        assert!(!chipset.claims_port(0x630));
        out(
            &mut chipset,
            0xCF8,
            AccessWidth::Dword,
            config_address(0x1F, 0x44),
        );
        out(&mut chipset, 0xCFC, AccessWidth::Byte, 0x80);
        assert_eq!(chipset.pm_base(), Some(0x600));
        assert!(chipset.claims_port(0x600) && chipset.claims_port(0x67F));
        assert!(!chipset.claims_port(0x680) && !chipset.claims_port(0x5FF));
        out(&mut chipset, 0x630, AccessWidth::Dword, 0x21);
        assert_eq!(chipset.pm().smi_en(), 0x21);
        // Move it.
        out(
            &mut chipset,
            0xCF8,
            AccessWidth::Dword,
            config_address(0x1F, 0x40),
        );
        out(&mut chipset, 0xCFC, AccessWidth::Word, 0xB000);
        assert!(!chipset.claims_port(0x630));
        assert_eq!(inp(&mut chipset, 0xB030, AccessWidth::Dword), 0x21);
        chipset.reset(true);
        assert_eq!(chipset.pm_base(), None);
        assert_eq!(chipset.pm().smi_en(), 0);
    }

    #[test]
    fn reset_control_shares_0xcf8_as_qemu_overlaps_it() {
        let mut chipset = chipset();
        out(
            &mut chipset,
            0xCF8,
            AccessWidth::Dword,
            config_address(0, 0x9C),
        );
        assert_eq!(out(&mut chipset, 0xCF9, AccessWidth::Byte, 0x02), []);
        assert_eq!(inp(&mut chipset, 0xCF9, AccessWidth::Byte), 0x02);
        assert_eq!(chipset.pci.address(), config_address(0, 0x9C));
        assert_eq!(
            out(&mut chipset, 0xCF9, AccessWidth::Byte, 0x06),
            [Effect::Reset { hard: true }]
        );
        assert_eq!(
            out(&mut chipset, 0xCF9, AccessWidth::Byte, 0x04),
            [Effect::Reset { hard: false }]
        );
    }

    #[test]
    fn soft_reset_keeps_the_chipset_and_hard_reset_restores_it() {
        let mut chipset = chipset();
        out(
            &mut chipset,
            0xCF8,
            AccessWidth::Dword,
            config_address(0, 0x9C),
        );
        out(&mut chipset, 0xCFE, AccessWidth::Byte, 0x01);
        let effects = out(&mut chipset, 0xCFD, AccessWidth::Byte, 0x18);
        let layout = chipset.smram_layout();
        assert!(layout.locked);
        assert_eq!(layout.tseg.map(|t| t.size_bytes), Some(MIB));
        assert_eq!(effects, [Effect::SmramChanged(layout)]);
        chipset.reset(false);
        assert!(chipset.smram_layout().locked);
        chipset.reset(true);
        assert!(!chipset.smram_layout().locked);
        assert_eq!(chipset.smram_layout().tseg, None);
        assert_eq!(chipset.pci.address(), 0);
    }

    #[test]
    fn cpu_counts_are_checked() {
        let mut config = Q35Config::new(512 * MIB);
        assert_eq!((config.boot_cpus, config.max_cpus), (1, 1));
        config.boot_cpus = 3;
        config.max_cpus = 2;
        let err = Q35Chipset::new(config, FwCfg::new(3, 2)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "3 boot CPUs of 2 possible is not 1 <= boot <= possible <= 4096"
        );
        config.boot_cpus = 1;
        config.max_cpus = Q35Config::MAX_CPUS + 1;
        assert!(matches!(
            config.validate(),
            Err(ChipsetError::CpuCount { .. })
        ));
        config.max_cpus = Q35Config::MAX_CPUS;
        let chipset = Q35Chipset::new(config, FwCfg::new(1, 0xFFFF)).unwrap();
        assert_eq!(chipset.cpu_hotplug().max_cpus(), 4096);
        assert_eq!(chipset.smbase_controller().apic_id_count(), 4096);
    }

    #[test]
    fn hot_add_and_unplug_request_raise_gpe0_bit_2_only_on_success() {
        let mut config = Q35Config::new(512 * MIB);
        config.max_cpus = 4;
        let mut chipset = Q35Chipset::new(config, FwCfg::new(1, 4)).unwrap();
        assert_eq!(
            chipset.request_cpu_unplug(CpuIndex(1)),
            Err(HotplugError::NotPresent { cpu: CpuIndex(1) })
        );
        assert_eq!(chipset.pm().gpe0_sts(), 0);
        chipset.hot_add_cpu(CpuIndex(1)).unwrap();
        assert_eq!(chipset.pm().gpe0_sts(), PmBlock::GPE0_CPU_HOTPLUG);
        assert!(chipset.cpu_hotplug().is_present(CpuIndex(1)));
        chipset.reset(true);
        assert_eq!(chipset.pm().gpe0_sts(), 0);
        chipset.request_cpu_unplug(CpuIndex(1)).unwrap();
        assert_eq!(chipset.pm().gpe0_sts(), PmBlock::GPE0_CPU_HOTPLUG);
        assert_eq!(chipset.cpu_hotplug().status(CpuIndex(1)), Some(0b101));
    }
}
