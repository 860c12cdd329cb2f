//! The I/O port bus: routes each `IN`/`OUT` to the device that claims the port.
//!
//! 1. At machine build time each device is added with a window (`base`, `len`); windows
//!    must be non-empty, end at or below port 0xFFFF and not overlap.
//! 2. On every access the bus looks the port up in a 65536-entry table of device indices
//!    (O(1), no search on the `IN`/`OUT` path) and calls the device with the offset into
//!    its window and the value masked to the access width.
//! 3. A port no device claims reads all ones for the width and drops writes, as on a real
//!    PC (and QEMU's `unassigned_io_ops`); such accesses are counted.
//!
//! An access whose bytes run past the end of a window (say a dword `IN` at the last port of
//! a one-port device) goes whole to the device that owns its first port, which sees the
//! full width and decides. The bus never splits accesses.

use std::fmt;

use crate::access::{AccessContext, AccessWidth};
use crate::debug_exit::DebugExit;
use crate::debugcon::DebugConsole;
use crate::effect::Effect;
use crate::post_code::PostCode;

/// A device on the I/O port bus.
///
/// The one seam between the bus and the devices: real devices and test doubles implement
/// it. A device sees only the offset into its own window, never absolute port numbers, so
/// it can be mapped anywhere.
pub trait PortDevice: Send {
    /// A short human-readable name, used in bus errors and traces.
    fn name(&self) -> &'static str;

    /// Reads `width` bytes at `offset` into the window. The bus masks the result to the
    /// width; the device may push effects.
    fn port_read(
        &mut self,
        ctx: &AccessContext,
        offset: u16,
        width: AccessWidth,
        effects: &mut Vec<Effect>,
    ) -> u32;

    /// Writes `value` (already masked to `width`) at `offset` into the window.
    fn port_write(
        &mut self,
        ctx: &AccessContext,
        offset: u16,
        width: AccessWidth,
        value: u32,
        effects: &mut Vec<Effect>,
    );
}

/// Why a device could not be added to a [`PortBus`]: a mistake in the machine's setup,
/// not anything the guest did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusError {
    /// The window has no ports.
    ZeroLength {
        /// The device being added.
        device: &'static str,
        /// Its first port.
        base: u16,
    },
    /// The window ends beyond port 0xFFFF.
    PastEndOfPortSpace {
        /// The device being added.
        device: &'static str,
        /// Its first port.
        base: u16,
        /// Its length in ports.
        len: u16,
    },
    /// The window shares a port with a device already on the bus.
    Overlap {
        /// The device being added.
        device: &'static str,
        /// Its first port.
        base: u16,
        /// Its length in ports.
        len: u16,
        /// The device already on the bus.
        existing: &'static str,
        /// That device's first port.
        existing_base: u16,
        /// That device's length in ports.
        existing_len: u16,
    },
    /// The bus already holds as many devices as its index table can name.
    TooManyDevices {
        /// The device being added.
        device: &'static str,
    },
}

/// Port `base + len - 1` as a u32, so a window reaching 0xFFFF prints without overflow.
fn last_port(base: u16, len: u16) -> u32 {
    (u32::from(base) + u32::from(len)).saturating_sub(1)
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BusError::ZeroLength { device, base } => {
                write!(
                    f,
                    "device `{device}` at port {base:#06x} has a zero-length window"
                )
            }
            BusError::PastEndOfPortSpace { device, base, len } => write!(
                f,
                "device `{device}` window {base:#06x}..={:#x} runs past port 0xffff",
                last_port(base, len)
            ),
            BusError::Overlap {
                device,
                base,
                len,
                existing,
                existing_base,
                existing_len,
            } => {
                write!(
                    f,
                    "device `{device}` window {base:#06x}..={:#06x} overlaps device \
                     `{existing}` at {existing_base:#06x}..={:#06x}",
                    last_port(base, len),
                    last_port(existing_base, existing_len)
                )
            }
            BusError::TooManyDevices { device } => {
                write!(f, "cannot add device `{device}`: the port bus is full")
            }
        }
    }
}

impl std::error::Error for BusError {}

/// How many guest accesses hit ports no device claims.
///
/// Exists so a run can report firmware probing (or bugs) at absent ports, which on real
/// hardware silently read all ones.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UnmappedAccesses {
    /// Reads that returned all ones because no device claims the port.
    pub reads: u64,
    /// Writes that were dropped because no device claims the port.
    pub writes: u64,
}

/// Number of ports in the x86 I/O space.
const PORT_COUNT: usize = 0x1_0000;
/// Table entry for a port no device claims.
const NO_DEVICE: u16 = u16::MAX;

/// A device and the window it claims.
struct Mapping {
    base: u16,
    len: u16,
    device: Box<dyn PortDevice>,
}

/// The machine's I/O port space: which device answers each port.
pub struct PortBus {
    /// For each port, the index into `devices` of its owner, or [`NO_DEVICE`].
    owners: Box<[u16]>,
    devices: Vec<Mapping>,
    unmapped: UnmappedAccesses,
}

impl PortBus {
    /// An empty bus: every port reads all ones.
    pub fn new() -> PortBus {
        PortBus {
            owners: vec![NO_DEVICE; PORT_COUNT].into_boxed_slice(),
            devices: Vec::new(),
            unmapped: UnmappedAccesses::default(),
        }
    }

    /// A bus with the stage-1 debug devices at their PLATFORM.md ports: debug console
    /// (0x402), debug exit (0xF4, four ports) and POST code (0x80).
    pub fn with_debug_devices() -> PortBus {
        let mut bus = PortBus::new();
        let devices: [(u16, u16, Box<dyn PortDevice>); 3] = [
            (
                DebugConsole::PORT,
                DebugConsole::WINDOW_LEN,
                Box::new(DebugConsole::new()),
            ),
            (
                DebugExit::PORT,
                DebugExit::WINDOW_LEN,
                Box::new(DebugExit::new()),
            ),
            (
                PostCode::PORT,
                PostCode::WINDOW_LEN,
                Box::new(PostCode::new()),
            ),
        ];
        for (base, len, device) in devices {
            bus.add(base, len, device)
                .expect("the debug devices' fixed windows are non-empty, in range and disjoint");
        }
        bus
    }

    /// Claims ports `base .. base + len` for `device`.
    ///
    /// Fails, leaving the bus unchanged, if the window is empty, runs past port 0xFFFF or
    /// overlaps a device already on the bus.
    pub fn add(
        &mut self,
        base: u16,
        len: u16,
        device: Box<dyn PortDevice>,
    ) -> Result<(), BusError> {
        let name = device.name();
        if len == 0 {
            return Err(BusError::ZeroLength { device: name, base });
        }
        let start = usize::from(base);
        let end = start + usize::from(len);
        let Some(window) = self.owners.get(start..end) else {
            return Err(BusError::PastEndOfPortSpace {
                device: name,
                base,
                len,
            });
        };
        if let Some(existing) = window
            .iter()
            .find(|&&owner| owner != NO_DEVICE)
            .and_then(|&owner| self.devices.get(usize::from(owner)))
        {
            return Err(BusError::Overlap {
                device: name,
                base,
                len,
                existing: existing.device.name(),
                existing_base: existing.base,
                existing_len: existing.len,
            });
        }
        let index = match u16::try_from(self.devices.len()) {
            Ok(index) if index != NO_DEVICE => index,
            _ => return Err(BusError::TooManyDevices { device: name }),
        };
        if let Some(window) = self.owners.get_mut(start..end) {
            window.fill(index);
        }
        self.devices.push(Mapping { base, len, device });
        Ok(())
    }

    /// The device owning `port`, if any.
    fn owner(&mut self, port: u16) -> Option<&mut Mapping> {
        let index = *self.owners.get(usize::from(port))?;
        self.devices.get_mut(usize::from(index))
    }

    /// Carries out an `IN` of `width` at `port` and returns the value, masked to the width.
    /// An unclaimed port reads all ones and is counted.
    pub fn read(
        &mut self,
        ctx: &AccessContext,
        port: u16,
        width: AccessWidth,
        effects: &mut Vec<Effect>,
    ) -> u32 {
        match self.owner(port) {
            Some(m) => {
                let offset = port.wrapping_sub(m.base);
                m.device.port_read(ctx, offset, width, effects) & width.all_ones()
            }
            None => {
                self.unmapped.reads = self.unmapped.reads.saturating_add(1);
                width.all_ones()
            }
        }
    }

    /// Carries out an `OUT` of `value` (masked to `width`) at `port`. A write to an
    /// unclaimed port is dropped and counted.
    pub fn write(
        &mut self,
        ctx: &AccessContext,
        port: u16,
        width: AccessWidth,
        value: u32,
        effects: &mut Vec<Effect>,
    ) {
        match self.owner(port) {
            Some(m) => {
                let offset = port.wrapping_sub(m.base);
                m.device
                    .port_write(ctx, offset, width, value & width.all_ones(), effects);
            }
            None => self.unmapped.writes = self.unmapped.writes.saturating_add(1),
        }
    }

    /// How many accesses so far hit ports no device claims.
    pub fn unmapped_accesses(&self) -> UnmappedAccesses {
        self.unmapped
    }
}

impl Default for PortBus {
    fn default() -> PortBus {
        PortBus::new()
    }
}

impl fmt::Debug for PortBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Window<'a>(&'a Mapping);
        impl fmt::Debug for Window<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let m = self.0;
                write!(
                    f,
                    "{:#06x}..={:#06x} {}",
                    m.base,
                    last_port(m.base, m.len),
                    m.device.name()
                )
            }
        }
        f.debug_struct("PortBus")
            .field(
                "devices",
                &self.devices.iter().map(Window).collect::<Vec<_>>(),
            )
            .field("unmapped", &self.unmapped)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smmsim_traces::Cycle;

    /// One access as a device saw it: offset, width, and the value if it was a write.
    type Seen = (u16, AccessWidth, Option<u32>);
    type Log = std::sync::Arc<std::sync::Mutex<Vec<Seen>>>;

    /// A test double that records the offsets it sees and reads back a fixed value.
    struct Probe {
        name: &'static str,
        read_value: u32,
        seen: Log,
    }

    impl Probe {
        fn boxed(name: &'static str) -> Box<Probe> {
            Box::new(Probe {
                name,
                read_value: 0xFFFF_FFFF,
                seen: Default::default(),
            })
        }
    }

    impl PortDevice for Probe {
        fn name(&self) -> &'static str {
            self.name
        }
        fn port_read(
            &mut self,
            _: &AccessContext,
            offset: u16,
            width: AccessWidth,
            _: &mut Vec<Effect>,
        ) -> u32 {
            self.seen
                .lock()
                .expect("test mutex is never poisoned")
                .push((offset, width, None));
            self.read_value
        }
        fn port_write(
            &mut self,
            _: &AccessContext,
            offset: u16,
            width: AccessWidth,
            value: u32,
            _: &mut Vec<Effect>,
        ) {
            self.seen
                .lock()
                .expect("test mutex is never poisoned")
                .push((offset, width, Some(value)));
        }
    }

    fn ctx() -> AccessContext {
        AccessContext::at_cycle(Cycle::ZERO)
    }

    #[test]
    fn device_sees_offsets_into_its_window_and_values_masked_to_width() {
        let probe = Probe::boxed("probe");
        let seen = probe.seen.clone();
        let mut bus = PortBus::new();
        bus.add(0x1000, 8, probe).unwrap();
        let mut effects = Vec::new();
        assert_eq!(
            bus.read(&ctx(), 0x1003, AccessWidth::Word, &mut effects),
            0xFFFF
        );
        bus.write(&ctx(), 0x1007, AccessWidth::Byte, 0x1234, &mut effects);
        assert_eq!(
            *seen.lock().unwrap(),
            [
                (3, AccessWidth::Word, None),
                (7, AccessWidth::Byte, Some(0x34))
            ]
        );
        assert_eq!(bus.unmapped_accesses(), UnmappedAccesses::default());
    }

    #[test]
    fn straddling_access_goes_whole_to_the_first_ports_owner() {
        let probe = Probe::boxed("probe");
        let seen = probe.seen.clone();
        let mut bus = PortBus::new();
        bus.add(0x10, 2, probe).unwrap();
        bus.write(
            &ctx(),
            0x11,
            AccessWidth::Dword,
            0xAABB_CCDD,
            &mut Vec::new(),
        );
        assert_eq!(
            *seen.lock().unwrap(),
            [(1, AccessWidth::Dword, Some(0xAABB_CCDD))]
        );
    }

    #[test]
    fn window_may_end_exactly_at_port_ffff() {
        let mut bus = PortBus::new();
        bus.add(0xFFF0, 0x10, Probe::boxed("top")).unwrap();
        assert_eq!(
            bus.read(&ctx(), 0xFFFF, AccessWidth::Byte, &mut Vec::new()),
            0xFF
        );
        assert_eq!(bus.unmapped_accesses().reads, 0);
    }

    #[test]
    fn bad_windows_are_rejected_and_leave_the_bus_unchanged() {
        let mut bus = PortBus::new();
        bus.add(0x60, 4, Probe::boxed("kbd")).unwrap();
        assert_eq!(
            bus.add(0x70, 0, Probe::boxed("empty")),
            Err(BusError::ZeroLength {
                device: "empty",
                base: 0x70
            })
        );
        let past = bus.add(0xFFFF, 2, Probe::boxed("wide")).unwrap_err();
        assert_eq!(
            past,
            BusError::PastEndOfPortSpace {
                device: "wide",
                base: 0xFFFF,
                len: 2
            }
        );
        assert_eq!(
            past.to_string(),
            "device `wide` window 0xffff..=0x10000 runs past port 0xffff"
        );
        let overlap = bus.add(0x5E, 3, Probe::boxed("rtc")).unwrap_err();
        assert_eq!(
            overlap.to_string(),
            "device `rtc` window 0x005e..=0x0060 overlaps device `kbd` at 0x0060..=0x0063"
        );
        // Nothing was claimed by the failed adds.
        bus.read(&ctx(), 0x5E, AccessWidth::Byte, &mut Vec::new());
        bus.read(&ctx(), 0xFFFF, AccessWidth::Byte, &mut Vec::new());
        assert_eq!(bus.unmapped_accesses().reads, 2);
    }
}
