//! Delivering exceptions and software interrupts through the IVT (real mode) or the IDT
//! (protected mode), IRET, and the double-fault → triple-fault escalation.
//!
//! Escalation follows SDM Vol. 3A §7.15 "Interrupt 8—Double Fault Exception", Table 7-5: a
//! contributory exception raised while delivering a contributory exception becomes #DF; a
//! fault while delivering #DF puts the core in shutdown; a benign first exception lets the
//! second be delivered normally. smmsim has no paging yet, so the page-fault rows do not
//! arise.

use super::state::{flags, SegReg};
use super::{Activity, Cpu, Fault, StopReason};

/// Gate types in an IDT descriptor's type field (SDM Vol. 3A §7.11, Figure 7-2).
const GATE_INTERRUPT_16: u64 = 0x6;
const GATE_TRAP_16: u64 = 0x7;
const GATE_INTERRUPT_32: u64 = 0xE;
const GATE_TRAP_32: u64 = 0xF;

/// How many nested delivery failures can occur before the escalation settles; the SDM's
/// table reaches shutdown within three.
const MAX_DELIVERY_ATTEMPTS: usize = 4;

impl Cpu {
    /// Delivers `fault` raised by the current instruction.
    pub(super) fn deliver_fault(&mut self, fault: Fault) {
        let mut current = fault;
        for _ in 0..MAX_DELIVERY_ATTEMPTS {
            self.stats.exceptions += 1;
            self.charge(self.timing.interrupt);
            let return_ip = if current.is_trap() {
                self.next_rip
            } else {
                self.state.rip
            };
            let next = match self.deliver(current.vector(), return_ip, current.error_code(), false)
            {
                Ok(()) => return,
                Err(next) => next,
            };
            current = if current == Fault::DoubleFault {
                break;
            } else if current.is_contributory() && next.is_contributory() {
                Fault::DoubleFault
            } else {
                next
            };
        }
        // Triple fault.
        self.activity = Activity::Shutdown;
        self.request_stop(StopReason::Shutdown);
    }

    /// Runs INT n / INT3 / INTO: a software interrupt returning to the next instruction.
    pub(super) fn software_interrupt(&mut self, vector: u8) -> Result<(), Fault> {
        self.charge(self.timing.interrupt);
        let return_ip = self.next_rip;
        self.deliver(vector, return_ip, None, true)?;
        Ok(())
    }

    /// Delivers an external (APIC) interrupt at the current instruction boundary; a fault
    /// while delivering it escalates as any fault does.
    pub(super) fn external_interrupt(&mut self, vector: u8) {
        self.charge(self.timing.interrupt);
        let return_ip = self.state.rip;
        if let Err(fault) = self.deliver(vector, return_ip, None, false) {
            self.deliver_fault(fault);
        }
    }

    /// Transfers control to the handler of `vector`, saving FLAGS, CS and `return_ip`.
    /// On success IP points at the handler (both `rip` and `next_rip`).
    fn deliver(
        &mut self,
        vector: u8,
        return_ip: u64,
        error_code: Option<u16>,
        software: bool,
    ) -> Result<(), Fault> {
        if self.state.protected_mode() {
            self.deliver_protected(vector, return_ip, error_code, software)
        } else {
            self.deliver_real(vector, return_ip)
        }
    }

    /// Real-address mode: the IVT entry at IDTR.base + vector × 4 holds IP then CS (SDM Vol. 3A
    /// §21.1.4 "Interrupt and Exception Handling"). No error code is pushed.
    fn deliver_real(&mut self, vector: u8, return_ip: u64) -> Result<(), Fault> {
        let entry = u64::from(vector) * 4;
        if entry + 3 > u64::from(self.state.idtr.limit) {
            return Err(Fault::GeneralProtection(u16::from(vector) * 8 + 2));
        }
        let vector_address = self.state.idtr.base.wrapping_add(entry) & 0xFFFF_FFFF;
        let target = self.read_linear(vector_address, 4)?;
        let old_flags = self.state.rflags;
        let old_cs = self.state.seg(SegReg::Cs).selector;
        self.push(2, old_flags)?;
        self.push(2, u64::from(old_cs))?;
        self.push(2, return_ip)?;
        // QEMU `do_interrupt_real` also clears RF and AC; the SDM lists IF, TF and AC.
        self.state.rflags &= !(flags::IF | flags::TF | flags::AC | flags::RF);
        self.load_code_segment((target >> 16) as u16)?;
        self.jump_to(target & 0xFFFF);
        Ok(())
    }

    /// Protected mode at CPL 0 through an interrupt or trap gate (SDM Vol. 3A §7.12.1).
    fn deliver_protected(
        &mut self,
        vector: u8,
        return_ip: u64,
        error_code: Option<u16>,
        software: bool,
    ) -> Result<(), Fault> {
        let gate_error = u16::from(vector) * 8 + 2;
        let entry = u64::from(vector) * 8;
        if entry + 7 > u64::from(self.state.idtr.limit) {
            return Err(Fault::GeneralProtection(gate_error));
        }
        let address = self.state.idtr.base.wrapping_add(entry) & 0xFFFF_FFFF;
        let gate = self.read_linear(address, 8)?;
        let gate_type = (gate >> 40) & 0x1F;
        let gate_dpl = ((gate >> 45) & 3) as u16;
        let is_32 = match gate_type {
            GATE_INTERRUPT_32 | GATE_TRAP_32 => true,
            GATE_INTERRUPT_16 | GATE_TRAP_16 => false,
            // Task gates are not covered; anything else is not a gate at all.
            _ => return Err(Fault::GeneralProtection(gate_error)),
        };
        if software && gate_dpl < self.cpl() {
            return Err(Fault::GeneralProtection(gate_error));
        }
        if gate & (1 << 47) == 0 {
            return Err(Fault::SegmentNotPresent(gate_error));
        }
        let selector = ((gate >> 16) & 0xFFFF) as u16;
        let mut offset = gate & 0xFFFF;
        if is_32 {
            offset |= (gate >> 32) & 0xFFFF_0000;
        }
        let old_flags = self.state.rflags;
        let old_cs = self.state.segs[SegReg::Cs as usize];
        self.load_code_segment(selector)?;
        let size = if is_32 { 4 } else { 2 };
        let pushed = self
            .push(size, old_flags)
            .and_then(|()| self.push(size, u64::from(old_cs.selector)))
            .and_then(|()| self.push(size, return_ip))
            .and_then(|()| match error_code {
                Some(code) => self.push(size, u64::from(code)),
                None => Ok(()),
            });
        if let Err(fault) = pushed {
            self.state.segs[SegReg::Cs as usize] = old_cs;
            return Err(fault);
        }
        self.state.rflags &= !(flags::TF | flags::NT | flags::RF | flags::VM);
        if gate_type == GATE_INTERRUPT_32 || gate_type == GATE_INTERRUPT_16 {
            self.state.rflags &= !flags::IF;
        }
        self.jump_to(offset);
        Ok(())
    }

    /// Sets IP for both the rest of this instruction and the run loop.
    pub(super) fn jump_to(&mut self, ip: u64) {
        self.state.rip = ip;
        self.next_rip = ip;
    }

    /// IRET / IRETD at CPL 0, returning to the same privilege level.
    pub(super) fn iret(&mut self, size: u8) -> Result<(), Fault> {
        let protected = self.state.protected_mode();
        if protected && self.state.rflags & flags::NT != 0 {
            // Task return is not covered.
            return Err(Fault::GP0);
        }
        let ip = self.peek(0, size)?;
        let cs = self.peek(u64::from(size), size)? as u16;
        let popped_flags = self.peek(2 * u64::from(size), size)?;
        if protected && (cs & 3) != self.cpl() {
            // A return to an outer ring (stack switch) is not covered.
            return Err(Fault::GeneralProtection(cs & 0xFFFC));
        }
        self.load_code_segment(cs)?;
        self.adjust_sp(3 * u64::from(size));
        // IRET ends an NMI handler's blocking; in SMM, NMIs stay blocked until RSM.
        if !self.smm.in_smm {
            self.smm.nmi_blocked = false;
        }
        let writable = if size == 2 {
            flags::POPF_WRITABLE & 0xFFFF
        } else {
            flags::POPF_WRITABLE | flags::RF
        };
        self.state.rflags =
            (self.state.rflags & !writable) | (popped_flags & writable) | flags::FIXED1;
        self.jump_to(ip & super::alu::mask(size));
        Ok(())
    }
}
