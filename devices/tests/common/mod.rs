//! Helpers shared by the devices' integration tests.

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
