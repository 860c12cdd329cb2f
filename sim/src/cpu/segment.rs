//! Segment register loads and their descriptor caches.
//!
//! In real mode a load sets only the selector and base (selector × 16) and keeps the cached
//! limit and attributes — the behaviour "unreal mode" relies on, and QEMU TCG's too. In
//! protected mode the selector picks an 8-byte descriptor from the GDT or LDT, which is
//! checked as SDM Vol. 2B "MOV—Move to/from Segment Registers" and Vol. 3A §5.4–§5.8 say,
//! then copied into the cache and marked accessed in memory.
//!
//! smmsim runs firmware at CPL 0 only: a transfer that would change privilege (a far return
//! to an outer ring, a call gate, a task gate) is not covered and raises #GP.

use super::state::{attr, SegReg, Segment};
use super::{Cpu, Fault};

/// The accessed bit inside the descriptor's type byte (byte 5).
const DESCRIPTOR_ACCESSED_BYTE: u64 = 5;

/// Splits a raw descriptor into a segment cache (base, byte-granular limit, attributes).
pub fn descriptor_to_segment(selector: u16, raw: u64) -> Segment {
    let base = ((raw >> 16) & 0xFF_FFFF) | (((raw >> 56) & 0xFF) << 24);
    let mut limit = ((raw & 0xFFFF) | ((raw >> 32) & 0xF_0000)) as u32;
    let attrs = ((raw >> 40) & 0xF0FF) as u16;
    if attrs & attr::G != 0 {
        limit = (limit << 12) | 0xFFF;
    }
    Segment {
        selector,
        base,
        limit,
        attrs,
    }
}

impl Cpu {
    /// The current privilege level: CS's RPL in protected mode, 0 in real mode.
    pub(super) fn cpl(&self) -> u16 {
        if self.state.protected_mode() {
            self.state.seg(SegReg::Cs).selector & 3
        } else {
            0
        }
    }

    /// Reads the descriptor `selector` names, or #GP(selector) if it lies past the table.
    fn read_descriptor(&mut self, selector: u16) -> Result<(u64, u64), Fault> {
        let (base, limit) = if selector & 4 != 0 {
            if self.state.ldtr.attrs & attr::P == 0 {
                return Err(Fault::GeneralProtection(selector & 0xFFFC));
            }
            (self.state.ldtr.base, u64::from(self.state.ldtr.limit))
        } else {
            (self.state.gdtr.base, u64::from(self.state.gdtr.limit))
        };
        let offset = u64::from(selector & 0xFFF8);
        if offset + 7 > limit {
            return Err(Fault::GeneralProtection(selector & 0xFFFC));
        }
        let address = base.wrapping_add(offset) & 0xFFFF_FFFF;
        Ok((self.read_linear(address, 8)?, address))
    }

    /// Sets the accessed bit of a descriptor in memory, as the processor does on a load.
    fn mark_accessed(&mut self, address: u64, raw: u64) -> Result<(), Fault> {
        let type_byte = (raw >> 40) & 0xFF;
        if type_byte & u64::from(attr::ACCESSED) == 0 {
            self.write_linear(address + DESCRIPTOR_ACCESSED_BYTE, 1, type_byte | 1)?;
        }
        Ok(())
    }

    /// Loads a data or stack segment register (MOV Sreg, POP Sreg, LDS …).
    pub(super) fn load_segment(&mut self, seg: SegReg, selector: u16) -> Result<(), Fault> {
        debug_assert!(seg != SegReg::Cs, "CS is loaded by far transfers only");
        if !self.state.protected_mode() {
            let cache = &mut self.state.segs[seg as usize];
            cache.selector = selector;
            cache.base = u64::from(selector) << 4;
            return Ok(());
        }
        let cpl = self.cpl();
        let error = selector & 0xFFFC;
        if selector & 0xFFFC == 0 {
            if seg == SegReg::Ss {
                return Err(Fault::GP0);
            }
            // A null selector loads an unusable segment; using it is not checked (as QEMU).
            self.state.segs[seg as usize] = Segment {
                selector,
                base: 0,
                limit: 0,
                attrs: 0,
            };
            return Ok(());
        }
        let (raw, address) = self.read_descriptor(selector)?;
        let cache = descriptor_to_segment(selector, raw);
        let attrs = cache.attrs;
        let dpl = (attrs >> attr::DPL_SHIFT) & 3;
        let rpl = selector & 3;
        let is_code = attrs & attr::CODE != 0;
        if attrs & attr::S == 0 {
            return Err(Fault::GeneralProtection(error));
        }
        if seg == SegReg::Ss {
            if is_code || attrs & attr::RW == 0 || rpl != cpl || dpl != cpl {
                return Err(Fault::GeneralProtection(error));
            }
            if attrs & attr::P == 0 {
                return Err(Fault::StackFault(error));
            }
        } else {
            if is_code && attrs & attr::RW == 0 {
                return Err(Fault::GeneralProtection(error));
            }
            let conforming_code = is_code && attrs & attr::DC != 0;
            if !conforming_code && dpl < cpl.max(rpl) {
                return Err(Fault::GeneralProtection(error));
            }
            if attrs & attr::P == 0 {
                return Err(Fault::SegmentNotPresent(error));
            }
        }
        self.mark_accessed(address, raw)?;
        self.state.segs[seg as usize] = Segment {
            attrs: attrs | attr::ACCESSED,
            ..cache
        };
        Ok(())
    }

    /// Loads CS for a far JMP, CALL, RET, IRET or interrupt, with the checks of SDM Vol. 2A
    /// "JMP" (far jump to a code segment) at CPL 0.
    pub(super) fn load_code_segment(&mut self, selector: u16) -> Result<(), Fault> {
        if !self.state.protected_mode() {
            let cs = &mut self.state.segs[SegReg::Cs as usize];
            cs.selector = selector;
            cs.base = u64::from(selector) << 4;
            return Ok(());
        }
        let error = selector & 0xFFFC;
        if error == 0 {
            return Err(Fault::GP0);
        }
        let (raw, address) = self.read_descriptor(selector)?;
        let cache = descriptor_to_segment(selector, raw);
        let attrs = cache.attrs;
        let cpl = self.cpl();
        let dpl = (attrs >> attr::DPL_SHIFT) & 3;
        let rpl = selector & 3;
        // System descriptors (call/task gates, TSS) are not covered: #GP as for a bad type.
        if attrs & attr::S == 0 || attrs & attr::CODE == 0 {
            return Err(Fault::GeneralProtection(error));
        }
        let conforming = attrs & attr::DC != 0;
        let allowed = if conforming {
            dpl <= cpl
        } else {
            dpl == cpl && rpl <= cpl
        };
        if !allowed {
            return Err(Fault::GeneralProtection(error));
        }
        if attrs & attr::P == 0 {
            return Err(Fault::SegmentNotPresent(error));
        }
        self.mark_accessed(address, raw)?;
        // The new CS keeps the current privilege level in its RPL (SDM: "RPL of CS is set to CPL").
        self.state.segs[SegReg::Cs as usize] = Segment {
            selector: (selector & !3) | cpl,
            attrs: attrs | attr::ACCESSED,
            ..cache
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_descriptors_decode_to_4gib_segments() {
        // 0x00CF9A000000FFFF: base 0, limit 0xFFFFF × 4 KiB, 32-bit code, present, ring 0.
        let code = descriptor_to_segment(0x08, 0x00CF_9A00_0000_FFFF);
        assert_eq!((code.base, code.limit), (0, 0xFFFF_FFFF));
        assert_ne!(code.attrs & attr::CODE, 0);
        assert!(code.is_32bit());
        // 0x00009300_1234_FFFF style: base 0x12340000? Check a byte-granular 16-bit data segment.
        let data = descriptor_to_segment(0x10, 0x0000_9201_0000_FFFF);
        assert_eq!((data.base, data.limit), (0x1_0000, 0xFFFF));
        assert!(!data.is_32bit());
        assert_eq!(data.attrs & attr::P, attr::P);
    }
}
