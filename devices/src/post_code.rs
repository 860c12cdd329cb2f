//! The POST code port: firmware's one-byte "where am I" marker.
//!
//! Firmware writes progress codes to port 0x80 throughout boot (and, historically, uses it
//! as a short I/O delay). smmsim keeps the last code and traces every one, so a hang can be
//! placed in the boot flow. QEMU maps a do-nothing device there (`ioport80` in
//! `hw/i386/pc.c`).
//!
//! ```text
//! offset  width  read        write
//! 0x0     8      all ones    byte → last POST code, traced
//! ```
//!
//! 1. A write keeps the low byte as [`PostCode::last`] and pushes [`Effect::PostCode`].
//! 2. A read returns all ones for the width, as QEMU's `ioport80_read` returns
//!    `0xffffffffffffffffULL`.

use crate::access::{AccessContext, AccessWidth};
use crate::bus::PortDevice;
use crate::effect::Effect;

/// The POST code port and the last code written to it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PostCode {
    last: Option<u8>,
}

impl PostCode {
    /// The port the platform maps the device at (PLATFORM.md).
    pub const PORT: u16 = 0x0080;
    /// One port wide, as QEMU's `ioport80` region.
    pub const WINDOW_LEN: u16 = 1;
    /// Offset of the code register, the only register.
    pub const REG_CODE: u16 = 0x0;

    /// A POST code port no code has been written to yet.
    pub fn new() -> PostCode {
        PostCode { last: None }
    }

    /// The last code written, or `None` if the guest has written none since power-on.
    pub fn last(&self) -> Option<u8> {
        self.last
    }
}

impl PortDevice for PostCode {
    fn name(&self) -> &'static str {
        "POST code"
    }

    fn port_read(
        &mut self,
        _ctx: &AccessContext,
        _offset: u16,
        width: AccessWidth,
        _effects: &mut Vec<Effect>,
    ) -> u32 {
        width.all_ones()
    }

    fn port_write(
        &mut self,
        _ctx: &AccessContext,
        _offset: u16,
        _width: AccessWidth,
        value: u32,
        effects: &mut Vec<Effect>,
    ) {
        // The window is one port: of a wider OUT only the low byte lands here, the rest
        // goes to the unassigned ports after it (QEMU clips the access to the region).
        let [code, ..] = value.to_le_bytes();
        self.last = Some(code);
        effects.push(Effect::PostCode(code));
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
    fn keeps_the_last_code_and_traces_each_one() {
        let mut post = PostCode::new();
        let mut effects = Vec::new();
        assert_eq!(post.last(), None);
        post.port_write(
            &ctx(),
            PostCode::REG_CODE,
            AccessWidth::Byte,
            0x12,
            &mut effects,
        );
        post.port_write(
            &ctx(),
            PostCode::REG_CODE,
            AccessWidth::Word,
            0xBEEF,
            &mut effects,
        );
        assert_eq!(post.last(), Some(0xEF));
        assert_eq!(effects, [Effect::PostCode(0x12), Effect::PostCode(0xEF)]);
    }

    #[test]
    fn reads_are_all_ones_for_the_width_and_change_nothing() {
        let mut post = PostCode::new();
        let mut effects = Vec::new();
        post.port_write(
            &ctx(),
            PostCode::REG_CODE,
            AccessWidth::Byte,
            0x42,
            &mut effects,
        );
        effects.clear();
        for width in [AccessWidth::Byte, AccessWidth::Word, AccessWidth::Dword] {
            assert_eq!(
                post.port_read(&ctx(), PostCode::REG_CODE, width, &mut effects),
                width.all_ones()
            );
        }
        assert!(effects.is_empty());
        assert_eq!(post.last(), Some(0x42));
    }
}
