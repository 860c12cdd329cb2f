//! The debug-exit device: how a test image ends the run and reports its result.
//!
//! Mirrors QEMU's `isa-debug-exit,iobase=0xf4,iosize=4` (QEMU `hw/misc/debugexit.c`), so
//! the same image reports the same status under both.
//!
//! ```text
//! offset  width    read   write
//! 0x0-0x3 8/16/32  0      v → end the run with status (v << 1) | 1
//! ```
//!
//! 1. A write of `v` (the whole access, any offset in the window — QEMU ignores `addr`)
//!    pushes [`Effect::Exit`] with status `(v << 1) | 1`.
//! 2. A read returns 0.

use crate::access::{AccessContext, AccessWidth};
use crate::bus::PortDevice;
use crate::effect::Effect;

/// The debug-exit device; stateless, since ending the run is the simulator's job.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DebugExit;

impl DebugExit {
    /// The port the platform maps the device at (PLATFORM.md, `iobase=0xf4`).
    pub const PORT: u16 = 0x00F4;
    /// Four ports wide (`iosize=4`), so a 32-bit `OUT` reaches the device whole.
    pub const WINDOW_LEN: u16 = 4;
    /// Offset of the exit register; every offset in the window behaves the same.
    pub const REG_EXIT: u16 = 0x0;
    /// What a read returns.
    ///
    /// Current QEMU has `debug_exit_read` returning 0; versions before it had no read
    /// handler at all. smmsim follows current QEMU.
    pub const READ_VALUE: u32 = 0;

    /// A new debug-exit device.
    pub fn new() -> DebugExit {
        DebugExit
    }

    /// The run's exit status for a written value `v`: `(v << 1) | 1`, as QEMU computes it.
    ///
    /// The top bit of a 32-bit `v` is shifted out. QEMU hands the value to the host's exit
    /// status, which keeps only its low 8 bits; smmsim keeps all 32 so tests see the full
    /// value, and the simulator truncates when it becomes a process exit code.
    pub fn status_for(v: u32) -> u32 {
        (v << 1) | 1
    }
}

impl PortDevice for DebugExit {
    fn name(&self) -> &'static str {
        "debug exit"
    }

    fn port_read(
        &mut self,
        _ctx: &AccessContext,
        _offset: u16,
        _width: AccessWidth,
        _effects: &mut Vec<Effect>,
    ) -> u32 {
        Self::READ_VALUE
    }

    fn port_write(
        &mut self,
        _ctx: &AccessContext,
        _offset: u16,
        width: AccessWidth,
        value: u32,
        effects: &mut Vec<Effect>,
    ) {
        let v = value & width.all_ones();
        effects.push(Effect::Exit {
            status: Self::status_for(v),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smmsim_traces::Cycle;

    fn write(width: AccessWidth, offset: u16, value: u32) -> Vec<Effect> {
        let mut effects = Vec::new();
        let ctx = AccessContext::at_cycle(Cycle::ZERO);
        DebugExit::new().port_write(&ctx, offset, width, value, &mut effects);
        effects
    }

    #[test]
    fn write_ends_the_run_with_shifted_status() {
        assert_eq!(
            write(AccessWidth::Byte, DebugExit::REG_EXIT, 0),
            [Effect::Exit { status: 1 }]
        );
        assert_eq!(
            write(AccessWidth::Byte, DebugExit::REG_EXIT, 0x10),
            [Effect::Exit { status: 0x21 }]
        );
        assert_eq!(
            write(AccessWidth::Dword, DebugExit::REG_EXIT, 0x1234_5678),
            [Effect::Exit {
                status: 0x2468_ACF1
            }]
        );
    }

    #[test]
    fn value_is_taken_at_the_access_width_and_offset_does_not_matter() {
        assert_eq!(
            write(AccessWidth::Word, 2, 0xABCD_0003),
            [Effect::Exit { status: 7 }]
        );
    }

    #[test]
    fn top_bit_of_a_dword_is_shifted_out_without_panicking() {
        assert_eq!(
            write(AccessWidth::Dword, 0, 0xFFFF_FFFF),
            [Effect::Exit {
                status: 0xFFFF_FFFF
            }]
        );
    }

    #[test]
    fn reads_return_zero_and_have_no_effect() {
        let mut effects = Vec::new();
        let ctx = AccessContext::at_cycle(Cycle::ZERO);
        for width in [AccessWidth::Byte, AccessWidth::Word, AccessWidth::Dword] {
            assert_eq!(DebugExit::new().port_read(&ctx, 0, width, &mut effects), 0);
        }
        assert!(effects.is_empty());
    }
}
