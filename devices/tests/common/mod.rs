//! Helpers shared by the devices' integration tests.

// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use smmsim_devices::{DmaError, DmaMemory};

/// Flat guest RAM from address 0, as the simulator's memory would serve fw_cfg DMA.
pub struct Ram(pub Vec<u8>);

impl DmaMemory for Ram {
    fn read(&mut self, address: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        let err = DmaError {
            address,
            len_bytes: buf.len(),
        };
        let start = usize::try_from(address).map_err(|_| err)?;
        buf.copy_from_slice(self.0.get(start..start + buf.len()).ok_or(err)?);
        Ok(())
    }

    fn write(&mut self, address: u64, bytes: &[u8]) -> Result<(), DmaError> {
        let err = DmaError {
            address,
            len_bytes: bytes.len(),
        };
        let start = usize::try_from(address).map_err(|_| err)?;
        self.0
            .get_mut(start..start + bytes.len())
            .ok_or(err)?
            .copy_from_slice(bytes);
        Ok(())
    }
}

use smmsim_devices::{AccessContext, AccessWidth, ApicId, CpuIndex, Effect, Q35Chipset};
use smmsim_traces::Cycle;

/// A machine reduced to what firmware touches in these tests: the chipset, some RAM for
/// DMA buffers, and the CPU executing the `IN`s and `OUT`s (in SMM or not).
pub struct Board {
    /// The chipset under test.
    pub chipset: Q35Chipset,
    /// Guest RAM for fw_cfg DMA.
    pub ram: Ram,
    /// The CPU making the accesses (APIC ID = index).
    pub cpu: CpuIndex,
    /// Whether that CPU is in SMM.
    pub in_smm: bool,
}

impl Board {
    /// `chipset` with `ram_bytes` of RAM, accessed by CPU 0 outside SMM.
    pub fn new(chipset: Q35Chipset, ram_bytes: usize) -> Board {
        Board {
            chipset,
            ram: Ram(vec![0; ram_bytes]),
            cpu: CpuIndex(0),
            in_smm: false,
        }
    }

    /// The context of the current CPU's accesses.
    pub fn ctx(&self) -> AccessContext {
        AccessContext {
            cpu: self.cpu,
            apic_id: ApicId(self.cpu.0),
            in_smm: self.in_smm,
            cycle: Cycle::ZERO,
        }
    }

    /// `OUT port, value`; returns the effects. The port must be the chipset's.
    pub fn out(&mut self, port: u16, width: AccessWidth, value: u32) -> Vec<Effect> {
        let ctx = self.ctx();
        let mut effects = Vec::new();
        let claimed =
            self.chipset
                .port_write(&ctx, port, width, value, &mut self.ram, &mut effects);
        assert!(claimed, "port {port:#x} is the chipset's");
        effects
    }

    /// `IN port`. The port must be the chipset's.
    pub fn inp(&mut self, port: u16, width: AccessWidth) -> u32 {
        let ctx = self.ctx();
        self.chipset
            .port_read(&ctx, port, width, &mut Vec::new())
            .unwrap_or_else(|| panic!("port {port:#x} is the chipset's"))
    }
}
