//! SMI feature negotiation: how firmware and platform agree, over fw_cfg, that an APM
//! write raises the SMI on every CPU and that CPU hot-(un)plug goes through SMM.
//!
//! QEMU's ICH9 LPC publishes three fw_cfg files (`hw/isa/lpc_ich9.c`, `ich9_lpc_pm_init`,
//! `smi_features_ok_callback`); edk2's `OvmfPkg/SmmControl2Dxe/SmiFeatures.c` is the guest
//! side.
//!
//! ```text
//! file                          bytes  guest access   contents
//! etc/smi/supported-features    8      read           LE64 set the platform offers
//! etc/smi/requested-features    8      read, DMA write LE64 set the firmware asks for
//! etc/smi/features-ok           1      read           1 once a request was accepted, else 0
//!
//! feature bits
//!   63 .. 3      2                1              0
//! +----------+----------------+------------+-----------+
//! | reserved | CPU_HOT_UNPLUG | CPU_HOTPLUG | BROADCAST |
//! +----------+----------------+------------+-----------+
//! ```
//!
//! 1. Firmware reads `supported-features`, writes its choice to `requested-features`
//!    (through DMA: fw_cfg takes no data-port writes), then selects `features-ok`.
//! 2. Selecting `features-ok` validates the request (in QEMU's order): every bit must be
//!    supported; CPU_HOTPLUG or CPU_HOT_UNPLUG needs BROADCAST; CPU_HOT_UNPLUG needs
//!    CPU_HOTPLUG. A valid request is locked in and `features-ok` reads 1; an invalid one
//!    leaves it at 0 and may be retried.
//! 3. `Open --valid request selected--> Locked(set) --hard reset--> Open`. While locked,
//!    selecting `features-ok` again changes nothing, and `requested-features` may still be
//!    written (QEMU does not protect it) without effect.
//! 4. A hard reset zeroes `requested-features` and `features-ok` (`ich9_lpc_reset`).
//!
//! The supported set is the machine's choice. QEMU's q35 offers BROADCAST since machine
//! type 2.9 (`x-smi-broadcast`), CPU_HOTPLUG since 5.2 (`pc_compat_5_1` turns it off) and
//! CPU_HOT_UNPLUG since 6.0 (`pc_compat_5_2`); [`SmiFeatureSet::QEMU_DEFAULT`] is all
//! three. An empty set publishes no files, as in QEMU. Offering CPU_HOT_UNPLUG without
//! CPU_HOTPLUG is a setup error (QEMU's `ich9_lpc_realize` refuses it too).

use std::fmt;

use crate::fw_cfg::{FwCfg, FwCfgCallbacks, FwCfgError, FwCfgFiles};

/// A set of SMI features, as the 64-bit little-endian words of the fw_cfg files hold it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SmiFeatureSet(u64);

impl SmiFeatureSet {
    /// Bit 0: an APM-control write raises the SMI on every CPU
    /// (`ICH9_LPC_SMI_F_BROADCAST_BIT`).
    pub const BROADCAST: SmiFeatureSet = SmiFeatureSet(1 << 0);
    /// Bit 1: CPU hot-plug raises an SMI for firmware to relocate the new CPU
    /// (`ICH9_LPC_SMI_F_CPU_HOTPLUG_BIT`).
    pub const CPU_HOTPLUG: SmiFeatureSet = SmiFeatureSet(1 << 1);
    /// Bit 2: CPU hot-unplug goes through firmware (`ICH9_LPC_SMI_F_CPU_HOT_UNPLUG_BIT`).
    pub const CPU_HOT_UNPLUG: SmiFeatureSet = SmiFeatureSet(1 << 2);
    /// Every feature smmsim knows.
    pub const ALL: SmiFeatureSet = SmiFeatureSet(0b111);
    /// What QEMU's q35 machine types 6.0 and later offer: all three.
    pub const QEMU_DEFAULT: SmiFeatureSet = Self::ALL;

    /// The empty set.
    pub const fn empty() -> SmiFeatureSet {
        SmiFeatureSet(0)
    }

    /// The set with exactly these bits, unknown ones included (a guest may ask for them).
    pub const fn from_bits(bits: u64) -> SmiFeatureSet {
        SmiFeatureSet(bits)
    }

    /// The bits, as the fw_cfg files carry them.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether no feature is in the set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every feature of `other` is in the set.
    pub const fn contains(self, other: SmiFeatureSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets together.
    pub const fn union(self, other: SmiFeatureSet) -> SmiFeatureSet {
        SmiFeatureSet(self.0 | other.0)
    }

    /// Whether firmware may be granted `requested` out of this supported set: step 2 of
    /// the module doc, in QEMU's order of checks.
    pub fn check_request(self, requested: SmiFeatureSet) -> Result<(), SmiFeatureError> {
        let unsupported = requested.0 & !self.0;
        if unsupported != 0 {
            return Err(SmiFeatureError::Unsupported {
                requested,
                supported: self,
            });
        }
        requested.check_dependencies()
    }

    /// Whether the set is one a platform may offer: only known bits, and CPU_HOT_UNPLUG
    /// only with CPU_HOTPLUG.
    pub fn check_supported(self) -> Result<(), SmiFeatureError> {
        if !Self::ALL.contains(self) {
            return Err(SmiFeatureError::Unsupported {
                requested: self,
                supported: Self::ALL,
            });
        }
        if self.contains(Self::CPU_HOT_UNPLUG) && !self.contains(Self::CPU_HOTPLUG) {
            return Err(SmiFeatureError::UnplugWithoutPlug);
        }
        Ok(())
    }

    /// The dependencies between features a request must respect.
    fn check_dependencies(self) -> Result<(), SmiFeatureError> {
        let hotplug = SmiFeatureSet(self.0 & (Self::CPU_HOTPLUG.0 | Self::CPU_HOT_UNPLUG.0));
        if !hotplug.is_empty() && !self.contains(Self::BROADCAST) {
            return Err(SmiFeatureError::HotplugWithoutBroadcast);
        }
        if hotplug == Self::CPU_HOT_UNPLUG {
            return Err(SmiFeatureError::UnplugWithoutPlug);
        }
        Ok(())
    }
}

impl fmt::Display for SmiFeatureSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Why a feature set was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmiFeatureError {
    /// The set holds features outside what is supported.
    Unsupported {
        /// The set asked for (or offered).
        requested: SmiFeatureSet,
        /// What may be asked for.
        supported: SmiFeatureSet,
    },
    /// CPU hot-plug or hot-unplug with SMI was asked for without SMI broadcast.
    HotplugWithoutBroadcast,
    /// CPU hot-unplug was asked for (or offered) without CPU hot-plug.
    UnplugWithoutPlug,
}

impl fmt::Display for SmiFeatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmiFeatureError::Unsupported {
                requested,
                supported,
            } => write!(
                f,
                "SMI features {requested} are not a subset of the supported {supported}"
            ),
            SmiFeatureError::HotplugWithoutBroadcast => {
                write!(f, "CPU hot-(un)plug with SMI needs SMI broadcast")
            }
            SmiFeatureError::UnplugWithoutPlug => {
                write!(f, "CPU hot-unplug with SMI needs CPU hot-plug with SMI")
            }
        }
    }
}

impl std::error::Error for SmiFeatureError {}

/// Where negotiation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Negotiation {
    /// No request accepted since reset.
    Open,
    /// A request was accepted; it holds until hard reset.
    Locked(SmiFeatureSet),
}

/// The selectors of the three files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Selectors {
    requested: u16,
    features_ok: u16,
}

/// The platform side of SMI feature negotiation: the supported set, the state, and the
/// selectors of the fw_cfg files it owns.
///
/// Exists so the APM device knows whether to broadcast, and the hot-plug path whether
/// firmware agreed to SMI-driven hot-plug, with QEMU's protocol in front of both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmiNegotiation {
    supported: SmiFeatureSet,
    state: Negotiation,
    /// `None` when nothing is supported and no files were published.
    selectors: Option<Selectors>,
    last_rejection: Option<SmiFeatureError>,
}

impl SmiNegotiation {
    /// The file with the supported set.
    pub const SUPPORTED_FILE: &'static str = "etc/smi/supported-features";
    /// The file firmware writes its request to.
    pub const REQUESTED_FILE: &'static str = "etc/smi/requested-features";
    /// The file whose selection validates the request.
    pub const FEATURES_OK_FILE: &'static str = "etc/smi/features-ok";

    /// Publishes the three files for `supported` on `fw_cfg` (none if `supported` is
    /// empty) and returns the negotiation, open. The caller has checked `supported` with
    /// [`SmiFeatureSet::check_supported`]. Fails if fw_cfg refuses a file (a name taken).
    pub fn install(supported: SmiFeatureSet, fw_cfg: &mut FwCfg) -> Result<Self, FwCfgError> {
        let selectors = if supported.is_empty() {
            None
        } else {
            fw_cfg.add_file(
                Self::SUPPORTED_FILE,
                supported.bits().to_le_bytes().to_vec(),
            )?;
            let requested = fw_cfg.add_writable_file(Self::REQUESTED_FILE, vec![0; 8])?;
            let features_ok = fw_cfg.add_file(Self::FEATURES_OK_FILE, vec![0])?;
            Some(Selectors {
                requested,
                features_ok,
            })
        };
        Ok(SmiNegotiation {
            supported,
            state: Negotiation::Open,
            selectors,
            last_rejection: None,
        })
    }

    /// The set the platform offers.
    pub fn supported(&self) -> SmiFeatureSet {
        self.supported
    }

    /// The set firmware negotiated; empty until a request was accepted.
    pub fn negotiated(&self) -> SmiFeatureSet {
        match self.state {
            Negotiation::Open => SmiFeatureSet::empty(),
            Negotiation::Locked(set) => set,
        }
    }

    /// Whether a request was accepted (and `features-ok` reads 1).
    pub fn is_locked(&self) -> bool {
        matches!(self.state, Negotiation::Locked(_))
    }

    /// Why the last refused request was refused, if one was since reset.
    pub fn last_rejection(&self) -> Option<SmiFeatureError> {
        self.last_rejection
    }

    /// Hard reset: unlocked, `requested-features` and `features-ok` back to 0.
    pub fn reset(&mut self, files: &mut FwCfgFiles) {
        self.state = Negotiation::Open;
        self.last_rejection = None;
        if let Some(selectors) = self.selectors {
            for selector in [selectors.requested, selectors.features_ok] {
                if let Some(bytes) = files.contents_mut(selector) {
                    bytes.fill(0);
                }
            }
        }
    }

    /// `features-ok` was selected: validate and maybe lock (QEMU
    /// `smi_features_ok_callback`).
    fn features_ok_selected(&mut self, selectors: Selectors, files: &mut FwCfgFiles) {
        if self.is_locked() {
            return;
        }
        let requested = files
            .contents(selectors.requested)
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            .map_or(SmiFeatureSet::empty(), |le| {
                SmiFeatureSet::from_bits(u64::from_le_bytes(le))
            });
        match self.supported.check_request(requested) {
            Ok(()) => {
                self.state = Negotiation::Locked(requested);
                if let Some(ok) = files.contents_mut(selectors.features_ok) {
                    ok.fill(1);
                }
            }
            Err(reason) => self.last_rejection = Some(reason),
        }
    }
}

impl FwCfgCallbacks for SmiNegotiation {
    fn selected(&mut self, key: u16, files: &mut FwCfgFiles) {
        if let Some(selectors) = self.selectors {
            if key == selectors.features_ok {
                self.features_ok_selected(selectors, files);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::AccessWidth;

    const B: u64 = SmiFeatureSet::BROADCAST.bits();
    const P: u64 = SmiFeatureSet::CPU_HOTPLUG.bits();
    const U: u64 = SmiFeatureSet::CPU_HOT_UNPLUG.bits();

    #[test]
    fn request_matrix_against_the_qemu_default() {
        let supported = SmiFeatureSet::QEMU_DEFAULT;
        let cases = [
            (0, Ok(())),
            (B, Ok(())),
            (B | P, Ok(())),
            (B | P | U, Ok(())),
            (P, Err(SmiFeatureError::HotplugWithoutBroadcast)),
            (U, Err(SmiFeatureError::HotplugWithoutBroadcast)),
            (P | U, Err(SmiFeatureError::HotplugWithoutBroadcast)),
            (B | U, Err(SmiFeatureError::UnplugWithoutPlug)),
            (
                B | 8,
                Err(SmiFeatureError::Unsupported {
                    requested: SmiFeatureSet::from_bits(B | 8),
                    supported,
                }),
            ),
        ];
        for (bits, expected) in cases {
            assert_eq!(
                supported.check_request(SmiFeatureSet::from_bits(bits)),
                expected,
                "request {bits:#x}"
            );
        }
        // Against broadcast-only, hot-plug is unsupported before anything else.
        assert!(matches!(
            SmiFeatureSet::BROADCAST.check_request(SmiFeatureSet::from_bits(B | P)),
            Err(SmiFeatureError::Unsupported { .. })
        ));
    }

    #[test]
    fn supported_sets_a_platform_may_offer() {
        assert_eq!(SmiFeatureSet::QEMU_DEFAULT.check_supported(), Ok(()));
        assert_eq!(SmiFeatureSet::empty().check_supported(), Ok(()));
        assert_eq!(
            SmiFeatureSet::from_bits(B | U).check_supported(),
            Err(SmiFeatureError::UnplugWithoutPlug)
        );
        assert!(SmiFeatureSet::from_bits(16).check_supported().is_err());
        assert_eq!(
            SmiFeatureError::UnplugWithoutPlug.to_string(),
            "CPU hot-unplug with SMI needs CPU hot-plug with SMI"
        );
    }

    /// Drives the negotiation through fw_cfg's ports: request bytes go straight into the
    /// file (as a DMA write would put them), selection goes through the selector port.
    fn negotiate(
        fw_cfg: &mut FwCfg,
        smi: &mut SmiNegotiation,
        request: u64,
    ) -> (u8, SmiFeatureSet) {
        let requested = fw_cfg
            .file_selector(SmiNegotiation::REQUESTED_FILE)
            .unwrap();
        let ok = fw_cfg
            .file_selector(SmiNegotiation::FEATURES_OK_FILE)
            .unwrap();
        fw_cfg
            .files_mut()
            .contents_mut(requested)
            .unwrap()
            .copy_from_slice(&request.to_le_bytes());
        fw_cfg.io_write(0, AccessWidth::Word, ok.into(), smi);
        let byte = fw_cfg.io_read(1, AccessWidth::Byte) as u8;
        (byte, smi.negotiated())
    }

    #[test]
    fn negotiation_accepts_locks_and_resets() {
        let mut fw_cfg = FwCfg::new(1, 1);
        let mut smi = SmiNegotiation::install(SmiFeatureSet::QEMU_DEFAULT, &mut fw_cfg).unwrap();
        let supported = fw_cfg
            .file_selector(SmiNegotiation::SUPPORTED_FILE)
            .unwrap();
        assert_eq!(
            fw_cfg.files().contents(supported),
            Some(&7u64.to_le_bytes()[..])
        );
        assert_eq!(
            negotiate(&mut fw_cfg, &mut smi, P),
            (0, SmiFeatureSet::empty())
        );
        assert_eq!(
            smi.last_rejection(),
            Some(SmiFeatureError::HotplugWithoutBroadcast)
        );
        assert_eq!(
            negotiate(&mut fw_cfg, &mut smi, B | P),
            (1, SmiFeatureSet::from_bits(B | P))
        );
        // Locked: a new request changes nothing.
        assert_eq!(
            negotiate(&mut fw_cfg, &mut smi, B),
            (1, SmiFeatureSet::from_bits(B | P))
        );
        smi.reset(fw_cfg.files_mut());
        assert!(!smi.is_locked());
        let requested = fw_cfg
            .file_selector(SmiNegotiation::REQUESTED_FILE)
            .unwrap();
        assert_eq!(fw_cfg.files().contents(requested), Some(&[0; 8][..]));
        let ok = fw_cfg
            .file_selector(SmiNegotiation::FEATURES_OK_FILE)
            .unwrap();
        assert_eq!(fw_cfg.files().contents(ok), Some(&[0][..]));
    }

    #[test]
    fn nothing_supported_publishes_no_files() {
        let mut fw_cfg = FwCfg::new(1, 1);
        let smi = SmiNegotiation::install(SmiFeatureSet::empty(), &mut fw_cfg).unwrap();
        assert_eq!(fw_cfg.file_selector(SmiNegotiation::SUPPORTED_FILE), None);
        assert_eq!(smi.negotiated(), SmiFeatureSet::empty());
    }
}
