//! The APM control and status ports (0xB2/0xB3): how software asks for an SMI.
//!
//! Firmware (and the ACPI `CSCN` method on CPU hot-add) writes a command byte to 0xB2;
//! with SMIs enabled in the PM block that raises an SMI, and the handler reads the command
//! back from 0xB2 and an argument from 0xB3. QEMU `hw/isa/apm.c` holds the two bytes;
//! `hw/isa/lpc_ich9.c` `ich9_apm_ctrl_changed` decides what a command does.
//!
//! ```text
//! port  off  name      read          write
//! 0xB2  0    APM_CNT   last command  command: see below
//! 0xB3  1    APM_STS   as written    stored (plain scratch byte)
//!
//! command  effect
//! 0x02     ACPI enable: PM1_CNT.SCI_EN <- 1; no SMI, no APM_STS
//! 0x03     ACPI disable: PM1_CNT.SCI_EN <- 0; no SMI, no APM_STS
//! other    if SMI_EN.APMC_EN: APM_STS in SMI_STS (datasheet profile) and, if the profile
//!          lets SMIs through (datasheet: SMI_EN.GBL_SMI_EN too), an SMI — on every CPU if
//!          BROADCAST was negotiated, else on the writing CPU only
//! ```
//!
//! 1. Accesses are split into bytes, each at `offset & 1`, as QEMU's `apm_ops`
//!    (`impl.max_access_size = 1`, `addr &= 1`) do: a word `OUT 0xB2, AX` writes AL as the
//!    command and AH as the status, and a dword write issues two commands.
//! 2. 0x02 and 0x03 are the FADT ACPI_ENABLE/ACPI_DISABLE values QEMU advertises
//!    (`ICH9_APM_ACPI_ENABLE`, `ICH9_APM_ACPI_DISABLE`) and acts on itself, because
//!    SeaBIOS has no SMI handler for them; PLATFORM.md keeps that ("other than 2/3"). Real
//!    ICH9 hardware raises an SMI for every command and leaves ACPI mode to the handler;
//!    the values are not 0xF0/0xF1 (those are other chipsets' conventions).
//! 3. QEMU checks APMC_EN alone (`if (lpc->pm.smi_en & ICH9_PMIO_SMI_EN_APMC_EN)`) and
//!    never sets APM_STS; the ICH9 datasheet also requires GBL_SMI_EN ("no SMI# will be
//!    generated" while clear) and sets APM_STS. [`ChipsetProfile::Datasheet`] (the default,
//!    matching PLATFORM.md) does the latter, [`ChipsetProfile::Qemu`] the former.
//!    Firmware that sets both bits, as OVMF's `SmmControl2Dxe` does, behaves the same
//!    under both.
//! 4. The SMI itself is [`Effect::RaiseSmi`]; when it is taken is the simulator's business
//!    (PLATFORM.md, "When an SMI lands").

use crate::access::{AccessContext, AccessWidth};
use crate::chipset::ChipsetProfile;
use crate::effect::{Effect, SmiTarget};
use crate::pm::PmBlock;
use crate::smi_features::SmiFeatureSet;

/// The APM control and status bytes.
///
/// Exists so the SMI handler can read back the command that raised it, and the command can
/// reach the logic that decides on the SMI ([`apm_command`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Apm {
    control: u8,
    status: u8,
}

impl Apm {
    /// The first port (QEMU `APM_CNT_IOPORT`).
    pub const PORT: u16 = 0x00B2;
    /// Two ports: control and status.
    pub const WINDOW_LEN: u16 = 2;
    /// Offset of APM_CNT, the command.
    pub const REG_CONTROL: u16 = 0;
    /// Offset of APM_STS, the scratch byte.
    pub const REG_STATUS: u16 = 1;
    /// Command: enter ACPI mode (`ICH9_APM_ACPI_ENABLE`).
    pub const ACPI_ENABLE: u8 = 0x02;
    /// Command: leave ACPI mode (`ICH9_APM_ACPI_DISABLE`).
    pub const ACPI_DISABLE: u8 = 0x03;

    /// Both bytes 0.
    pub fn new() -> Apm {
        Apm::default()
    }

    /// Hard reset: both bytes 0.
    pub fn reset(&mut self) {
        *self = Apm::new();
    }

    /// The last command written to 0xB2.
    pub fn control(&self) -> u8 {
        self.control
    }

    /// The byte last written to 0xB3.
    pub fn status(&self) -> u8 {
        self.status
    }

    /// `IN` of `width` at `offset`: the bytes at `offset & 1`, `(offset + 1) & 1`, …
    pub fn read(&self, offset: u16, width: AccessWidth) -> u32 {
        (0..width.bytes() as u16).rev().fold(0, |value, i| {
            let byte = if offset.wrapping_add(i) & 1 == 0 {
                self.control
            } else {
                self.status
            };
            (value << 8) | u32::from(byte)
        })
    }

    /// `OUT` of `value` (masked to `width`) at `offset`, byte by byte; each byte landing
    /// on APM_CNT is handed to `on_command` right after it is stored.
    pub fn write(
        &mut self,
        offset: u16,
        width: AccessWidth,
        value: u32,
        mut on_command: impl FnMut(u8),
    ) {
        for (i, byte) in value.to_le_bytes().into_iter().enumerate() {
            if i >= width.bytes() as usize {
                break;
            }
            if offset.wrapping_add(i as u16) & 1 == 0 {
                self.control = byte;
                on_command(byte);
            } else {
                self.status = byte;
            }
        }
    }
}

/// What an APM command does (module doc, table and step 3), given the PM block, the
/// negotiated SMI features and the profile; `ctx` names the writing CPU.
pub fn apm_command(
    command: u8,
    pm: &mut PmBlock,
    negotiated: SmiFeatureSet,
    profile: ChipsetProfile,
    ctx: &AccessContext,
    effects: &mut Vec<Effect>,
) {
    match command {
        Apm::ACPI_ENABLE => return pm.set_sci_enabled(true),
        Apm::ACPI_DISABLE => return pm.set_sci_enabled(false),
        _ => {}
    }
    let smi_en = pm.smi_en();
    if smi_en & PmBlock::SMI_EN_APMC_EN == 0 {
        return;
    }
    if profile == ChipsetProfile::Datasheet {
        pm.set_smi_status(PmBlock::SMI_STS_APM_STS);
        if smi_en & PmBlock::SMI_EN_GBL_SMI_EN == 0 {
            return;
        }
    }
    let target = if negotiated.contains(SmiFeatureSet::BROADCAST) {
        SmiTarget::AllCpus
    } else {
        SmiTarget::Cpu(ctx.cpu)
    };
    effects.push(Effect::RaiseSmi { target });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{ApicId, CpuIndex};
    use smmsim_traces::Cycle;

    fn cpu3() -> AccessContext {
        AccessContext {
            cpu: CpuIndex(3),
            apic_id: ApicId(3),
            in_smm: false,
            cycle: Cycle::ZERO,
        }
    }

    /// Writes `command` to 0xB2 with SMI_EN = `smi_en` and returns the effects and the PM.
    fn issue(
        command: u8,
        smi_en: u32,
        negotiated: SmiFeatureSet,
        profile: ChipsetProfile,
    ) -> (Vec<Effect>, PmBlock) {
        let mut pm = PmBlock::new(profile, 1);
        pm.write(PmBlock::REG_SMI_EN, AccessWidth::Dword, smi_en);
        let mut apm = Apm::new();
        let mut effects = Vec::new();
        apm.write(Apm::REG_CONTROL, AccessWidth::Byte, command.into(), |c| {
            apm_command(c, &mut pm, negotiated, profile, &cpu3(), &mut effects)
        });
        assert_eq!(apm.control(), command);
        (effects, pm)
    }

    const BOTH: u32 = PmBlock::SMI_EN_GBL_SMI_EN | PmBlock::SMI_EN_APMC_EN;
    const NONE: SmiFeatureSet = SmiFeatureSet::empty();

    #[test]
    fn smi_needs_apmc_en_and_gbl_smi_en_in_the_datasheet_profile() {
        let d = ChipsetProfile::Datasheet;
        let (effects, pm) = issue(0x04, BOTH, NONE, d);
        assert_eq!(
            effects,
            [Effect::RaiseSmi {
                target: SmiTarget::Cpu(CpuIndex(3))
            }]
        );
        assert_eq!(pm.smi_sts(), PmBlock::SMI_STS_APM_STS);
        let (effects, pm) = issue(0x04, PmBlock::SMI_EN_APMC_EN, NONE, d);
        assert!(effects.is_empty());
        assert_eq!(
            pm.smi_sts(),
            PmBlock::SMI_STS_APM_STS,
            "status set regardless"
        );
        let (effects, pm) = issue(0x04, PmBlock::SMI_EN_GBL_SMI_EN, NONE, d);
        assert!(effects.is_empty());
        assert_eq!(pm.smi_sts(), 0);
    }

    #[test]
    fn qemu_profile_checks_apmc_en_alone_and_sets_no_status() {
        let q = ChipsetProfile::Qemu;
        let (effects, pm) = issue(0x04, PmBlock::SMI_EN_APMC_EN, NONE, q);
        assert_eq!(effects.len(), 1);
        assert_eq!(pm.smi_sts(), 0);
        let (effects, _) = issue(0x04, PmBlock::SMI_EN_GBL_SMI_EN, NONE, q);
        assert!(effects.is_empty());
    }

    #[test]
    fn broadcast_goes_to_every_cpu_once_negotiated() {
        let (effects, _) = issue(
            0x04,
            BOTH,
            SmiFeatureSet::BROADCAST,
            ChipsetProfile::Datasheet,
        );
        assert_eq!(
            effects,
            [Effect::RaiseSmi {
                target: SmiTarget::AllCpus
            }]
        );
    }

    #[test]
    fn acpi_enable_and_disable_toggle_sci_en_without_an_smi() {
        let d = ChipsetProfile::Datasheet;
        let (effects, pm) = issue(Apm::ACPI_ENABLE, BOTH, NONE, d);
        assert!(effects.is_empty());
        assert_eq!(pm.pm1_cnt() & PmBlock::PM1_CNT_SCI_EN, 1);
        assert_eq!(pm.smi_sts(), 0);
        let (effects, pm) = issue(Apm::ACPI_DISABLE, BOTH, NONE, d);
        assert!(effects.is_empty());
        assert_eq!(pm.pm1_cnt(), 0);
    }

    #[test]
    fn wide_accesses_split_into_bytes_at_offset_and_one() {
        let mut apm = Apm::new();
        let mut commands = Vec::new();
        apm.write(0, AccessWidth::Word, 0xAB04, |c| commands.push(c));
        assert_eq!((apm.control(), apm.status()), (0x04, 0xAB));
        assert_eq!(apm.read(0, AccessWidth::Word), 0xAB04);
        // A dword covers 0xB2..0xB5, which QEMU folds onto the two bytes: two commands.
        apm.write(0, AccessWidth::Dword, 0x4433_2211, |c| commands.push(c));
        assert_eq!(commands, [0x04, 0x11, 0x33]);
        assert_eq!(apm.read(1, AccessWidth::Byte), 0x44);
        assert_eq!(apm.read(1, AccessWidth::Word), 0x3344);
        // The status port is plain storage.
        apm.write(1, AccessWidth::Byte, 0x5A, |c| commands.push(c));
        assert_eq!(commands.len(), 3);
        assert_eq!(apm.status(), 0x5A);
    }
}
