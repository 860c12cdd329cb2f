//! CRC-32 (IEEE 802.3, the zlib/PNG polynomial) over trace chunks and the index.
//!
//! `trace stats` must read tens of millions of events a second, so the chunk checksum has to
//! run at several gigabytes a second or it dominates reading. Two methods, both written
//! here rather than pulled from `crc32fast` to keep the dependency list to what the crate
//! cannot do without:
//!
//! 1. On x86-64 with PCLMULQDQ (every x86-64 CPU since 2010), [`clmul`] folds 64 bytes per
//!    step with carry-less multiplication, as in Intel's white paper "Fast CRC Computation
//!    for Generic Polynomials Using PCLMULQDQ Instruction" (Gopal et al., 2009): well over
//!    5 GB/s.
//! 2. Everywhere else, and for the last few bytes, "slicing-by-16": sixteen 256-entry
//!    tables built at compile time fold sixteen bytes per step (about 2 GB/s here; the
//!    textbook byte-at-a-time table managed 0.4 GB/s and was most of the time spent reading
//!    a trace).
//!
//! Both are checked against the bit-at-a-time definition at every length and alignment.

/// The reflected IEEE polynomial.
const POLYNOMIAL: u32 = 0xEDB8_8320;

/// Bytes folded per step of [`Crc32::update`].
const SLICES: usize = 16;

/// Slicing-by-16 tables, built at compile time. `TABLES[0][b]` is the CRC of the byte `b`
/// alone (the textbook table); `TABLES[k][b]` is the CRC of `b` followed by `k` zero
/// bytes, so sixteen table look-ups fold sixteen input bytes at once.
static TABLES: [[u32; 256]; SLICES] = build_tables();

const fn build_tables() -> [[u32; 256]; SLICES] {
    let mut tables = [[0u32; 256]; SLICES];
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
        tables[0][byte] = crc;
        byte += 1;
    }
    let mut k = 1;
    while k < SLICES {
        let mut byte = 0;
        while byte < 256 {
            let previous = tables[k - 1][byte];
            tables[k][byte] = (previous >> 8) ^ tables[0][(previous & 0xFF) as usize];
            byte += 1;
        }
        k += 1;
    }
    tables
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
        #[cfg(target_arch = "x86_64")]
        let bytes = if bytes.len() >= clmul::MIN_BYTES && clmul::available() {
            // SAFETY: `available` has just confirmed the CPU features `fold` is compiled
            // for, and `fold` needs no more than that.
            let (folded, rest) = unsafe { clmul::fold(self.0, bytes) };
            self.0 = folded;
            rest
        } else {
            bytes
        };
        self.update_tables(bytes);
    }

    /// Folds `bytes` in with the slicing-by-16 tables.
    fn update_tables(&mut self, bytes: &[u8]) {
        let mut crc = self.0;
        let mut blocks = bytes.chunks_exact(SLICES);
        for block in &mut blocks {
            // The running CRC folds into the first four bytes; byte i of the block then
            // goes through the table for the SLICES - 1 - i zero bytes that follow it.
            // Every index is a single byte, so it is always inside its table.
            let mut folded = [0u8; SLICES];
            folded.copy_from_slice(block);
            for (byte, crc_byte) in folded.iter_mut().zip(crc.to_le_bytes()) {
                *byte ^= crc_byte;
            }
            crc = 0;
            for (i, &byte) in folded.iter().enumerate() {
                crc ^= TABLES[SLICES - 1 - i][usize::from(byte)];
            }
        }
        for &byte in blocks.remainder() {
            crc = TABLES[0][usize::from((crc as u8) ^ byte)] ^ (crc >> 8);
        }
        self.0 = crc;
    }

    /// The checksum of everything folded in so far.
    pub(crate) fn value(self) -> u32 {
        !self.0
    }
}

/// CRC folding with carry-less multiplication (PCLMULQDQ) on x86-64.
///
/// The CRC register is treated as a 128-bit polynomial remainder that is "folded" forward
/// over 16-byte blocks: multiplying a block by x^k mod P(x) (a precomputed constant) moves
/// it k bits further along the message, where it is XORed into the data there. Four
/// independent 128-bit lanes are folded 64 bytes at a time, then folded into one, reduced
/// to 64 bits, and finally to the 32-bit CRC by Barrett reduction. Everything is in the
/// bit-reflected domain of the IEEE CRC, which is why the constants are reflected and
/// shifted by one bit (white paper, section "Bit-Reflection").
#[cfg(target_arch = "x86_64")]
mod clmul {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_clmulepi64_si128, _mm_cvtsi32_si128, _mm_extract_epi32,
        _mm_loadu_si128, _mm_set_epi32, _mm_set_epi64x, _mm_srli_si128, _mm_xor_si128,
    };

    /// Shorter inputs go to the tables: set-up and final reduction cost more than they save.
    pub(super) const MIN_BYTES: usize = 128;

    /// x^(4·128+32) mod P(x) and x^(4·128−32) mod P(x), reflected: fold by 512 bits.
    const FOLD_BY_4: (i64, i64) = (0x1_5444_2BD4, 0x1_C6E4_1596);
    /// x^(128+32) mod P(x) and x^(128−32) mod P(x), reflected: fold by 128 bits.
    const FOLD_BY_1: (i64, i64) = (0x1_7519_97D0, 0x0_CCAA_009E);
    /// x^64 mod P(x), reflected: the 96-to-64-bit step.
    const FOLD_64: i64 = 0x1_63CD_6124;
    /// P(x) itself, reflected (with its x^32 term).
    const POLYNOMIAL: i64 = 0x1_DB71_0641;
    /// µ = floor(x^64 / P(x)), reflected: Barrett reduction's quotient estimate.
    const MU: i64 = 0x1_F701_1641;

    /// Whether this CPU can run [`fold`]. The standard library caches the answer.
    pub(super) fn available() -> bool {
        std::is_x86_feature_detected!("pclmulqdq") && std::is_x86_feature_detected!("sse4.1")
    }

    /// Folds all whole 16-byte blocks of `bytes` (at least [`MIN_BYTES`] long) into the
    /// CRC register `register` (the running, not yet inverted, value) and returns the new
    /// register and the fewer than 16 bytes left over.
    ///
    /// # Safety
    /// The CPU must support PCLMULQDQ and SSE4.1 ([`available`]).
    // Whether each intrinsic is an unsafe call depends on the compiler version (newer ones
    // make them safe inside a `target_feature` function), so the body is one unsafe block
    // and an older compiler's view of it is not an error either way.
    #[allow(unused_unsafe)]
    #[target_feature(enable = "pclmulqdq,sse2,sse4.1")]
    pub(super) unsafe fn fold(register: u32, bytes: &[u8]) -> (u32, &[u8]) {
        debug_assert!(bytes.len() >= MIN_BYTES);
        let whole = bytes.len() / 16 * 16;
        // SAFETY: the caller guarantees the CPU features this function is compiled for;
        // loads go through `load`, which reads only in-bounds 16-byte blocks.
        unsafe {
            let mut lanes = [
                load(bytes, 0),
                load(bytes, 16),
                load(bytes, 32),
                load(bytes, 48),
            ];
            lanes[0] = _mm_xor_si128(lanes[0], _mm_cvtsi32_si128(register as i32));
            let mut at = 64;

            let by_4 = _mm_set_epi64x(FOLD_BY_4.1, FOLD_BY_4.0);
            while at + 64 <= whole {
                for (lane, offset) in lanes.iter_mut().zip([0, 16, 32, 48]) {
                    *lane = fold_into(*lane, load(bytes, at + offset), by_4);
                }
                at += 64;
            }

            let by_1 = _mm_set_epi64x(FOLD_BY_1.1, FOLD_BY_1.0);
            let mut x = fold_into(lanes[0], lanes[1], by_1);
            x = fold_into(x, lanes[2], by_1);
            x = fold_into(x, lanes[3], by_1);
            while at + 16 <= whole {
                x = fold_into(x, load(bytes, at), by_1);
                at += 16;
            }

            // 128 → 96 bits: the low half times x^(128−32) mod P, plus the high half.
            x = _mm_xor_si128(_mm_clmulepi64_si128(x, by_1, 0x10), _mm_srli_si128(x, 8));
            // 96 → 64 bits: the low 32 bits times x^64 mod P, plus the rest.
            let low_32 = _mm_set_epi32(0, 0, 0, -1);
            x = _mm_xor_si128(
                _mm_clmulepi64_si128(_mm_and_si128(x, low_32), _mm_set_epi64x(0, FOLD_64), 0x00),
                _mm_srli_si128(x, 4),
            );
            // 64 → 32 bits by Barrett reduction: T1 = (R mod x^32)·µ,
            // T2 = (T1 mod x^32)·P, CRC = (R xor T2) / x^32 (reflected: the upper dword).
            let p_mu = _mm_set_epi64x(MU, POLYNOMIAL);
            let t1 = _mm_clmulepi64_si128(_mm_and_si128(x, low_32), p_mu, 0x10);
            let t2 = _mm_clmulepi64_si128(_mm_and_si128(t1, low_32), p_mu, 0x00);
            let crc = _mm_extract_epi32(_mm_xor_si128(x, t2), 1) as u32;
            (crc, bytes.get(at..).unwrap_or(&[]))
        }
    }

    /// The 16 bytes of `bytes` at `at`; the callers only ask for whole blocks inside it
    /// (zeros otherwise, which cannot happen, rather than a panic).
    #[inline(always)]
    fn load(bytes: &[u8], at: usize) -> __m128i {
        let block = at
            .checked_add(16)
            .and_then(|end| bytes.get(at..end))
            .unwrap_or(&[0; 16]);
        // SAFETY: `block` is 16 readable bytes; the load is unaligned and SSE2 is part of
        // the x86-64 baseline.
        unsafe { _mm_loadu_si128(block.as_ptr().cast()) }
    }

    /// `acc` carried 128 bits (× `keys`) forward and XORed into `data`.
    #[allow(unused_unsafe)]
    #[inline]
    #[target_feature(enable = "pclmulqdq,sse2")]
    unsafe fn fold_into(acc: __m128i, data: __m128i, keys: __m128i) -> __m128i {
        // SAFETY: only reached from `fold`, whose caller guarantees the CPU features.
        unsafe {
            let low = _mm_clmulepi64_si128(acc, keys, 0x00);
            let high = _mm_clmulepi64_si128(acc, keys, 0x11);
            _mm_xor_si128(_mm_xor_si128(data, low), high)
        }
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

    /// The textbook bit-at-a-time CRC, as the reference the table version must match.
    fn bitwise(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ POLYNOMIAL
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn matches_the_bitwise_definition_at_every_length_and_alignment() {
        // Long enough for the carry-less path's four-lane loop, single-block loop and tail.
        let data: Vec<u8> = (0..700u32).map(|i| (i * 37 + 11 + i / 7) as u8).collect();
        for start in 0..17 {
            for end in start..data.len() {
                assert_eq!(
                    crc32(&data[start..end]),
                    bitwise(&data[start..end]),
                    "bytes {start}..{end}"
                );
            }
        }
    }

    #[test]
    fn tables_alone_match_the_bitwise_definition() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 91 + 5) as u8).collect();
        for end in 0..data.len() {
            let mut crc = Crc32::new();
            crc.update_tables(&data[..end]);
            assert_eq!(crc.value(), bitwise(&data[..end]), "{end} bytes");
        }
    }

    #[test]
    fn piecewise_updates_equal_one_update() {
        let mut crc = Crc32::new();
        crc.update(b"1234");
        crc.update(b"56789");
        assert_eq!(crc.value(), crc32(b"123456789"));
    }
}
