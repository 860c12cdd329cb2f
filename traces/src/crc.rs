//! CRC-32 (IEEE 802.3, the zlib/PNG polynomial) over trace chunks and the index.
//!
//! Written by hand rather than pulled from `crc32fast`: the trace only needs a few hundred
//! megabytes a second, a 256-entry table built at compile time gives that in thirty lines,
//! and it keeps the crate's dependency list to what it cannot do without.

/// The reflected IEEE polynomial.
const POLYNOMIAL: u32 = 0xEDB8_8320;

/// One entry per byte value: the CRC of that byte alone, built at compile time.
const TABLE: [u32; 256] = build_table();

const fn build_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = byte as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLYNOMIAL
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
}

/// A running CRC-32, so a chunk's header fields and payload can be checked as one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Crc32(u32);

impl Crc32 {
    /// An empty checksum.
    pub(crate) fn new() -> Self {
        Crc32(!0)
    }

    /// Folds `bytes` into the checksum.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        let mut crc = self.0;
        for &byte in bytes {
            // The index is masked to eight bits, so it is always inside the table.
            crc = TABLE[usize::from((crc as u8) ^ byte)] ^ (crc >> 8);
        }
        self.0 = crc;
    }

    /// The checksum of everything folded in so far.
    pub(crate) fn value(self) -> u32 {
        !self.0
    }
}

/// The CRC-32 of `bytes` in one call.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = Crc32::new();
    crc.update(bytes);
    crc.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_check_value() {
        // The check value every CRC-32/ISO-HDLC implementation publishes.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn piecewise_updates_equal_one_update() {
        let mut crc = Crc32::new();
        crc.update(b"1234");
        crc.update(b"56789");
        assert_eq!(crc.value(), crc32(b"123456789"));
    }
}
