//! The debug console: a one-port byte sink for firmware log output.
//!
//! Firmware (edk2's `PlatformDebugLibIoPort`, SeaBIOS) writes its log one byte at a time to
//! this port and detects the device by reading it back. smmsim mirrors QEMU's
//! `isa-debugcon` as configured by `-debugcon … -global isa-debugcon.iobase=0x402`
//! (QEMU `hw/char/debugcon.c`).
//!
//! ```text
//! offset  width  read                      write
//! 0x0     8      0xE9 (readback magic)     byte → console log
//! ```
//!
//! 1. A write pushes [`Effect::ConsoleByte`] with the low byte of the value.
//! 2. A read returns [`DebugConsole::READBACK`] in the low byte.

use crate::access::{AccessContext, AccessWidth};
use crate::bus::PortDevice;
use crate::effect::Effect;

/// The debug console device; stateless, since the log itself lives in the simulator.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DebugConsole;

impl DebugConsole {
    /// The port the platform maps the console at (PLATFORM.md, `isa-debugcon.iobase=0x402`).
    pub const PORT: u16 = 0x0402;
    /// The window is one port wide, as QEMU's `memory_region_init_io(…, 1)`.
    pub const WINDOW_LEN: u16 = 1;
    /// Offset of the data register, the only register.
    pub const REG_DATA: u16 = 0x0;
    /// What a read returns, so firmware can detect the console before logging to it.
    ///
    /// QEMU `hw/char/debugcon.c`: `DEFINE_PROP_UINT32("readback", …, 0xe9)` and
    /// `debugcon_ioport_read` returns `s->readback`; edk2 checks for the same value as
    /// `BOCHS_DEBUG_PORT_MAGIC`.
    pub const READBACK: u8 = 0xE9;

    /// A new console.
    pub fn new() -> DebugConsole {
        DebugConsole
    }
}

/// Bits above the low byte of a wider read: all ones.
///
/// QEMU declares `valid.max_access_size = 1`, so a word or dword `IN` is split into byte
/// accesses; only the first lands on the console and the following ports are unassigned,
/// which read as all ones (QEMU `system/ioport.c`, `unassigned_io_read` returns `-1ULL`).
fn wide_read_fill(width: AccessWidth) -> u32 {
    width.all_ones() & !0xFF
}

impl PortDevice for DebugConsole {
    fn name(&self) -> &'static str {
        "debug console"
    }

    fn port_read(
        &mut self,
        _ctx: &AccessContext,
        _offset: u16,
        width: AccessWidth,
        _effects: &mut Vec<Effect>,
    ) -> u32 {
        u32::from(Self::READBACK) | wide_read_fill(width)
    }

    fn port_write(
        &mut self,
        _ctx: &AccessContext,
        _offset: u16,
        _width: AccessWidth,
        value: u32,
        effects: &mut Vec<Effect>,
    ) {
        // QEMU writes exactly one byte per access (`unsigned char ch = val;`); the other
        // bytes of a wider OUT go to the unassigned ports after the window and are lost.
        let [low, ..] = value.to_le_bytes();
        effects.push(Effect::ConsoleByte(low));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smmsim_traces::Cycle;

    fn ctx() -> AccessContext {
        AccessContext::at_cycle(Cycle::ZERO)
    }

    #[test]
    fn byte_writes_become_console_bytes_in_order() {
        let mut console = DebugConsole::new();
        let mut effects = Vec::new();
        for &b in b"ok\n" {
            console.port_write(
                &ctx(),
                DebugConsole::REG_DATA,
                AccessWidth::Byte,
                b.into(),
                &mut effects,
            );
        }
        assert_eq!(
            effects,
            [
                Effect::ConsoleByte(b'o'),
                Effect::ConsoleByte(b'k'),
                Effect::ConsoleByte(b'\n')
            ]
        );
    }

    #[test]
    fn wide_write_logs_only_the_low_byte() {
        let mut console = DebugConsole::new();
        let mut effects = Vec::new();
        console.port_write(
            &ctx(),
            DebugConsole::REG_DATA,
            AccessWidth::Dword,
            0x4443_4241,
            &mut effects,
        );
        assert_eq!(effects, [Effect::ConsoleByte(0x41)]);
    }

    #[test]
    fn reads_return_the_readback_magic_and_have_no_effect() {
        let mut console = DebugConsole::new();
        let mut effects = Vec::new();
        let mut read =
            |width| console.port_read(&ctx(), DebugConsole::REG_DATA, width, &mut effects);
        assert_eq!(read(AccessWidth::Byte), 0xE9);
        assert_eq!(read(AccessWidth::Word), 0xFFE9);
        assert_eq!(read(AccessWidth::Dword), 0xFFFF_FFE9);
        assert!(effects.is_empty());
    }
}
