//! Guest physical memory: one RAM mapping shared by every core, the firmware image below
//! 4 GiB (and its alias below 1 MiB), and the bookkeeping that keeps decoded code fresh.
//!
//! The flow of one access:
//! 1. the core turns a linear address into a physical one (no paging yet: identity);
//! 2. an access wholly inside RAM and outside the low firmware alias takes the fast path:
//!    one host atomic for an aligned access, one atomic per byte for an unaligned one, so
//!    cores on different host threads never race in the Rust sense;
//! 3. anything else (the firmware image, the unassigned hole, an access that straddles two
//!    regions) goes byte by byte through [`GuestMemory::read_u8`] / [`GuestMemory::write_u8`];
//! 4. a write to a RAM page that some core has decoded code from bumps that page's code
//!    generation, which tells every core that its decoded instructions from the page are stale.
//!
//! Memory map (PLATFORM.md, "Memory map"): RAM from 0; the image at 4 GiB − size; the image's
//! last min(size, 128 KiB) also ending at 1 MiB, read-only, as QEMU maps `-bios`
//! (`hw/i386/x86.c`, `x86_bios_rom_init`). Addresses nothing claims read all ones and drop
//! writes.

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

use memmap2::MmapMut;

use crate::image::FirmwareImage;

/// Size of the pages the decoded-code bookkeeping tracks.
pub const CODE_PAGE_BYTES: u64 = 4096;
/// End of the low alias of the firmware image (1 MiB).
pub const LOW_ALIAS_END: u64 = 0x10_0000;
/// At most this much of the image is aliased below 1 MiB (QEMU `x86_bios_rom_init`).
pub const LOW_ALIAS_MAX_BYTES: u64 = 128 * 1024;
/// The top of the 32-bit physical address space, where the firmware image ends.
pub const FOUR_GIB: u64 = 1 << 32;
/// The most RAM smmsim maps below 4 GiB: QEMU q35 keeps at most 2 GiB of RAM below the
/// 4 GiB line with the default `max-ram-below-4g` (`hw/i386/pc_q35.c`).
pub const MAX_RAM_BYTES: u64 = 2 << 30;

/// Why guest memory could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The requested RAM size is zero, not a multiple of 4 KiB, or above [`MAX_RAM_BYTES`].
    #[error("RAM size {bytes} bytes is not a non-zero multiple of 4 KiB up to 2 GiB")]
    BadRamSize {
        /// The size asked for.
        bytes: u64,
    },
    /// The host refused the anonymous mapping.
    #[error("could not map {bytes} bytes of guest RAM")]
    Map {
        /// The size asked for.
        bytes: u64,
        /// What the host said.
        #[source]
        source: std::io::Error,
    },
}

/// The guest's physical address space, shared by all cores.
pub struct GuestMemory {
    ram: MmapMut,
    ram_bytes: u64,
    image: FirmwareImage,
    /// First address of the image's alias below 1 MiB.
    low_alias_start: u64,
    /// First address of the image below 4 GiB.
    high_image_start: u64,
    /// One flag per RAM page: set when a core caches code decoded from the page, so that a
    /// write only has to look at one byte to know whether code may have gone stale.
    code_pages: Box<[AtomicU8]>,
    /// One counter per RAM page, bumped when a write lands on a flagged page; a decoded
    /// instruction remembers the counter of its page and is stale once it differs. Per page
    /// rather than global so that a page mixing code and data (real-mode firmware does that)
    /// only costs re-decoding its own instructions.
    code_generations: Box<[AtomicU32]>,
    /// Which physical ranges are SMRAM right now (set by the chipset model).
    smram: SmramMap,
}

/// The physical ranges that only SMM may see, as the q35 chipset currently decodes them
/// (PLATFORM.md, "SMRAM rule": decided per access by the accessing CPU's SMM state).
///
/// Plain atomics so every core reads the current view without a lock; `active` lets the
/// common case — no SMRAM configured yet — cost one relaxed load per access.
#[derive(Default)]
pub struct SmramMap {
    active: std::sync::atomic::AtomicBool,
    tseg_base: AtomicU64,
    tseg_end: AtomicU64,
    default_window_locked: std::sync::atomic::AtomicBool,
    /// D_LCK: SMRAM's configuration is locked until reset (the checker's "after SMRAM is
    /// locked").
    locked: std::sync::atomic::AtomicBool,
    blocked_reads: AtomicU64,
    blocked_writes: AtomicU64,
}

/// The default-SMBASE window that the q35 register 0x9C lock turns into SMRAM
/// (0x30000–0x4FFFF, PLATFORM.md memory map).
pub const DEFAULT_SMBASE_WINDOW: std::ops::Range<u64> = 0x3_0000..0x5_0000;

impl SmramMap {
    /// Sets the view: TSEG (base, size) when enabled and closed to non-SMM code, and whether
    /// the default-SMBASE window is locked.
    pub fn set(&self, tseg: Option<(u64, u64)>, default_window_locked: bool) {
        let (base, end) = tseg.map_or((0, 0), |(base, size)| (base, base.saturating_add(size)));
        self.tseg_base.store(base, Ordering::Relaxed);
        self.tseg_end.store(end, Ordering::Relaxed);
        self.default_window_locked
            .store(default_window_locked, Ordering::Relaxed);
        self.active
            .store(end > base || default_window_locked, Ordering::Release);
    }

    /// Records whether firmware has locked SMRAM (MCH D_LCK).
    pub fn set_locked(&self, locked: bool) {
        self.locked.store(locked, Ordering::Relaxed);
    }

    /// Whether firmware has locked SMRAM (MCH D_LCK).
    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }

    /// True when all of `[phys, phys + len)` is SMRAM (inside TSEG, or inside the locked
    /// default-SMBASE window).
    pub fn contains(&self, phys: u64, len: u64) -> bool {
        if !self.active.load(Ordering::Acquire) {
            return false;
        }
        let end = phys.saturating_add(len);
        let inside = |lo: u64, hi: u64| phys >= lo && end <= hi;
        inside(
            self.tseg_base.load(Ordering::Relaxed),
            self.tseg_end.load(Ordering::Relaxed),
        ) || (self.default_window_locked.load(Ordering::Relaxed)
            && inside(DEFAULT_SMBASE_WINDOW.start, DEFAULT_SMBASE_WINDOW.end))
    }

    /// True when any part of `[phys, phys + len)` is SMRAM.
    #[inline(always)]
    pub fn covers(&self, phys: u64, len: u64) -> bool {
        if !self.active.load(Ordering::Acquire) {
            return false;
        }
        let end = phys.saturating_add(len);
        let overlaps = |lo: u64, hi: u64| phys < hi && end > lo;
        overlaps(
            self.tseg_base.load(Ordering::Relaxed),
            self.tseg_end.load(Ordering::Relaxed),
        ) || (self.default_window_locked.load(Ordering::Relaxed)
            && overlaps(DEFAULT_SMBASE_WINDOW.start, DEFAULT_SMBASE_WINDOW.end))
    }

    /// Counts a non-SMM access that SMRAM blocked.
    pub fn note_blocked(&self, write: bool) {
        let counter = if write {
            &self.blocked_writes
        } else {
            &self.blocked_reads
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Non-SMM (reads, writes) of SMRAM blocked so far.
    pub fn blocked(&self) -> (u64, u64) {
        (
            self.blocked_reads.load(Ordering::Relaxed),
            self.blocked_writes.load(Ordering::Relaxed),
        )
    }
}

impl GuestMemory {
    /// Maps `ram_bytes` of zeroed RAM and places `image` below 4 GiB and below 1 MiB.
    pub fn new(ram_bytes: u64, image: FirmwareImage) -> Result<GuestMemory, MemoryError> {
        if ram_bytes == 0 || ram_bytes % CODE_PAGE_BYTES != 0 || ram_bytes > MAX_RAM_BYTES {
            return Err(MemoryError::BadRamSize { bytes: ram_bytes });
        }
        let len =
            usize::try_from(ram_bytes).map_err(|_| MemoryError::BadRamSize { bytes: ram_bytes })?;
        let ram = MmapMut::map_anon(len).map_err(|source| MemoryError::Map {
            bytes: ram_bytes,
            source,
        })?;
        let image_bytes = image.bytes().len() as u64;
        let pages = (ram_bytes / CODE_PAGE_BYTES) as usize;
        Ok(GuestMemory {
            ram,
            ram_bytes,
            low_alias_start: LOW_ALIAS_END - image_bytes.min(LOW_ALIAS_MAX_BYTES),
            high_image_start: FOUR_GIB - image_bytes,
            image,
            code_pages: (0..pages).map(|_| AtomicU8::new(0)).collect(),
            code_generations: (0..pages).map(|_| AtomicU32::new(0)).collect(),
            smram: SmramMap::default(),
        })
    }

    /// The current SMRAM view.
    pub fn smram(&self) -> &SmramMap {
        &self.smram
    }

    /// RAM size in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.ram_bytes
    }

    /// The firmware image the machine runs.
    pub fn image(&self) -> &FirmwareImage {
        &self.image
    }

    /// True when `[phys, phys + len)` lies wholly in plain RAM (not under the low alias).
    #[inline(always)]
    fn is_plain_ram(&self, phys: u64, len: u64) -> bool {
        let end = phys.wrapping_add(len);
        end <= self.ram_bytes
            && end > phys
            && (end <= self.low_alias_start || phys >= LOW_ALIAS_END)
    }

    #[inline(always)]
    fn ram_ptr(&self, phys: u64) -> *mut u8 {
        // In bounds: every caller checked `is_plain_ram` (or `phys < ram_bytes`) first.
        self.ram.as_ptr().wrapping_add(phys as usize).cast_mut()
    }

    /// Reads one byte from any physical address.
    pub fn read_u8(&self, phys: u64) -> u8 {
        if phys < self.ram_bytes && !(self.low_alias_start..LOW_ALIAS_END).contains(&phys) {
            // SAFETY: `phys < ram_bytes`, so the byte is inside the mapping; AtomicU8 has the
            // alignment of u8.
            return unsafe { AtomicU8::from_ptr(self.ram_ptr(phys)) }.load(Ordering::Relaxed);
        }
        self.read_image_or_unassigned(phys)
    }

    fn read_image_or_unassigned(&self, phys: u64) -> u8 {
        let image = self.image.bytes();
        if (self.low_alias_start..LOW_ALIAS_END).contains(&phys) {
            return image[image.len() - (LOW_ALIAS_END - phys) as usize];
        }
        if (self.high_image_start..FOUR_GIB).contains(&phys) {
            return image[(phys - self.high_image_start) as usize];
        }
        0xFF
    }

    /// Writes one byte to any physical address; writes to the image or to unassigned space
    /// are dropped.
    pub fn write_u8(&self, phys: u64, value: u8) {
        if phys < self.ram_bytes && !(self.low_alias_start..LOW_ALIAS_END).contains(&phys) {
            // SAFETY: as in `read_u8`.
            unsafe { AtomicU8::from_ptr(self.ram_ptr(phys)) }.store(value, Ordering::Relaxed);
            self.note_write(phys, 1);
        }
    }

    /// Reads `N` ≤ 8 bytes little-endian, taking the atomic fast path when it can.
    #[inline(always)]
    pub fn read(&self, phys: u64, size: u8) -> u64 {
        if self.is_plain_ram(phys, u64::from(size)) && phys & (u64::from(size) - 1) == 0 {
            let ptr = self.ram_ptr(phys);
            // SAFETY: the range is inside the mapping and `phys` is aligned to `size`, and the
            // mapping itself is page aligned, so the pointer is aligned for the atomic type.
            unsafe {
                return match size {
                    1 => u64::from(AtomicU8::from_ptr(ptr).load(Ordering::Relaxed)),
                    2 => u64::from(AtomicU16::from_ptr(ptr.cast()).load(Ordering::Relaxed)),
                    4 => u64::from(AtomicU32::from_ptr(ptr.cast()).load(Ordering::Relaxed)),
                    _ => AtomicU64::from_ptr(ptr.cast()).load(Ordering::Relaxed),
                };
            }
        }
        self.read_bytewise(phys, size)
    }

    #[cold]
    fn read_bytewise(&self, phys: u64, size: u8) -> u64 {
        (0..u64::from(size)).fold(0, |value, i| {
            value | u64::from(self.read_u8(phys.wrapping_add(i) & (FOUR_GIB - 1))) << (8 * i)
        })
    }

    /// Writes `size` ≤ 8 bytes little-endian, taking the atomic fast path when it can.
    #[inline(always)]
    pub fn write(&self, phys: u64, size: u8, value: u64) {
        if self.is_plain_ram(phys, u64::from(size)) && phys & (u64::from(size) - 1) == 0 {
            let ptr = self.ram_ptr(phys);
            // SAFETY: as in `read`.
            unsafe {
                match size {
                    1 => AtomicU8::from_ptr(ptr).store(value as u8, Ordering::Relaxed),
                    2 => AtomicU16::from_ptr(ptr.cast()).store(value as u16, Ordering::Relaxed),
                    4 => AtomicU32::from_ptr(ptr.cast()).store(value as u32, Ordering::Relaxed),
                    _ => AtomicU64::from_ptr(ptr.cast()).store(value, Ordering::Relaxed),
                }
            }
            // Aligned, so the write lies in one page.
            self.note_write_in_page(phys);
            return;
        }
        self.write_bytewise(phys, size, value);
    }

    #[cold]
    fn write_bytewise(&self, phys: u64, size: u8, value: u64) {
        for i in 0..u64::from(size) {
            self.write_u8(
                phys.wrapping_add(i) & (FOUR_GIB - 1),
                (value >> (8 * i)) as u8,
            );
        }
    }

    /// Atomically replaces `expected` by `new` at `phys` (a host compare-and-swap), for
    /// LOCK-prefixed instructions and XCHG. Returns the value found.
    ///
    /// An aligned access in RAM is one host CAS. Anything else (unaligned "split lock",
    /// image, unassigned) is done non-atomically: guests do not put locks there, and the
    /// image drops writes anyway.
    pub fn compare_exchange(&self, phys: u64, size: u8, expected: u64, new: u64) -> u64 {
        if self.is_plain_ram(phys, u64::from(size)) && phys & (u64::from(size) - 1) == 0 {
            let ptr = self.ram_ptr(phys);
            // SAFETY: as in `read`.
            let found = unsafe {
                match size {
                    1 => u64::from(cas(AtomicU8::from_ptr(ptr), expected as u8, new as u8)),
                    2 => u64::from(cas(
                        AtomicU16::from_ptr(ptr.cast()),
                        expected as u16,
                        new as u16,
                    )),
                    4 => u64::from(cas(
                        AtomicU32::from_ptr(ptr.cast()),
                        expected as u32,
                        new as u32,
                    )),
                    _ => cas(AtomicU64::from_ptr(ptr.cast()), expected, new),
                }
            };
            if found == expected {
                self.note_write(phys, u64::from(size));
            }
            return found;
        }
        let found = self.read_bytewise(phys, size);
        if found == expected {
            self.write_bytewise(phys, size, new);
        }
        found
    }

    /// Copies bytes out of guest memory (for loaders, tests and the decoder's fetch).
    pub fn read_bytes(&self, phys: u64, out: &mut [u8]) {
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = self.read_u8(phys.wrapping_add(i as u64) & (FOUR_GIB - 1));
        }
    }

    /// Copies bytes into guest memory (for loaders and tests); image bytes stay unchanged.
    pub fn write_bytes(&self, phys: u64, bytes: &[u8]) {
        for (i, byte) in bytes.iter().enumerate() {
            self.write_u8(phys.wrapping_add(i as u64) & (FOUR_GIB - 1), *byte);
        }
    }

    /// Records that a core is about to cache code decoded from `phys`.
    pub fn mark_code(&self, phys: u64) {
        if let Some(flag) = self.code_pages.get((phys / CODE_PAGE_BYTES) as usize) {
            flag.store(1, Ordering::Relaxed);
        }
    }

    /// The code generation of the page holding `phys`: decoded instructions from the page are
    /// valid while it stays the same. Memory outside RAM is never written, so it is always 0.
    #[inline(always)]
    pub fn code_generation(&self, phys: u64) -> u32 {
        match self.code_generations.get((phys / CODE_PAGE_BYTES) as usize) {
            Some(generation) => generation.load(Ordering::Acquire),
            None => 0,
        }
    }

    /// [`GuestMemory::note_write`] for a write that does not cross a page boundary.
    #[inline(always)]
    fn note_write_in_page(&self, phys: u64) {
        let page = (phys / CODE_PAGE_BYTES) as usize;
        if let Some(flag) = self.code_pages.get(page) {
            if flag.load(Ordering::Relaxed) != 0 {
                self.invalidate_code_page(page);
            }
        }
    }

    #[inline(always)]
    fn note_write(&self, phys: u64, len: u64) {
        let first = (phys / CODE_PAGE_BYTES) as usize;
        let last = ((phys + len - 1) / CODE_PAGE_BYTES) as usize;
        for page in first..=last {
            if let Some(flag) = self.code_pages.get(page) {
                if flag.load(Ordering::Relaxed) != 0 {
                    self.invalidate_code_page(page);
                }
            }
        }
    }

    #[cold]
    fn invalidate_code_page(&self, page: usize) {
        self.code_pages[page].store(0, Ordering::Relaxed);
        self.code_generations[page].fetch_add(1, Ordering::Release);
    }
}

fn cas<A: AtomicCas>(atomic: &A, expected: A::Value, new: A::Value) -> A::Value {
    atomic.cas(expected, new)
}

/// The one operation `compare_exchange` needs, over the four atomic widths.
trait AtomicCas {
    type Value: Copy;
    fn cas(&self, expected: Self::Value, new: Self::Value) -> Self::Value;
}

macro_rules! atomic_cas {
    ($atomic:ty, $value:ty) => {
        impl AtomicCas for $atomic {
            type Value = $value;
            fn cas(&self, expected: $value, new: $value) -> $value {
                match self.compare_exchange(expected, new, Ordering::SeqCst, Ordering::SeqCst) {
                    Ok(found) | Err(found) => found,
                }
            }
        }
    };
}
atomic_cas!(AtomicU8, u8);
atomic_cas!(AtomicU16, u16);
atomic_cas!(AtomicU32, u32);
atomic_cas!(AtomicU64, u64);

#[cfg(test)]
mod tests {
    use super::*;

    fn image_64k() -> FirmwareImage {
        let mut bytes = vec![0u8; 64 * 1024];
        bytes[0] = 0x11;
        bytes[0xFFF0] = 0xEA;
        FirmwareImage::from_vec("test", bytes).expect("64 KiB is a valid image size")
    }

    fn memory() -> GuestMemory {
        GuestMemory::new(2 << 20, image_64k()).expect("2 MiB of RAM maps")
    }

    #[test]
    fn ram_round_trips_every_width_aligned_and_not() {
        let mem = memory();
        for (phys, size) in [
            (0x1000, 1),
            (0x1000, 2),
            (0x1000, 4),
            (0x1000, 8),
            (0x1003, 4),
            (0x1FFF, 2),
        ] {
            let value = 0x1122_3344_5566_7788u64 & (u64::MAX >> (64 - 8 * size as u32));
            mem.write(phys, size, value);
            assert_eq!(mem.read(phys, size), value, "phys {phys:#x} size {size}");
        }
    }

    #[test]
    fn image_is_visible_below_4g_and_below_1m_and_read_only() {
        let mem = memory();
        assert_eq!(mem.read_u8(0xFFFF_0000), 0x11);
        assert_eq!(mem.read_u8(0xF0000), 0x11);
        assert_eq!(mem.read_u8(0xFFFF_FFF0), 0xEA);
        assert_eq!(mem.read_u8(0xFFFF0), 0xEA);
        mem.write(0xF0000, 4, 0);
        mem.write(0xFFFF_0000, 1, 0);
        assert_eq!(mem.read(0xF0000, 1), 0x11);
        assert_eq!(mem.read(0xFFFF_0000, 1), 0x11);
        // Below the alias is plain RAM.
        mem.write(0xEFFFF, 1, 0x5A);
        assert_eq!(mem.read(0xEFFFF, 1), 0x5A);
    }

    #[test]
    fn unassigned_space_reads_all_ones_and_drops_writes() {
        let mem = memory();
        mem.write(0x8000_0000, 4, 0);
        assert_eq!(mem.read(0x8000_0000, 4), 0xFFFF_FFFF);
        // An access straddling the end of RAM mixes both.
        mem.write((2 << 20) - 2, 2, 0x0000);
        assert_eq!(mem.read((2 << 20) - 2, 4), 0xFFFF_0000);
    }

    #[test]
    fn writes_to_code_pages_bump_their_generation_once() {
        let mem = memory();
        mem.write(0x5000, 4, 1);
        assert_eq!(mem.code_generation(0x5000), 0, "no code cached yet");
        mem.mark_code(0x5010);
        mem.write(0x5FFE, 4, 1); // straddles into page 6
        assert_eq!(mem.code_generation(0x5000), 1);
        assert_eq!(mem.code_generation(0x6000), 0, "page 6 held no code");
        mem.write(0x5000, 4, 1);
        assert_eq!(
            mem.code_generation(0x5000),
            1,
            "flag cleared until code is cached again"
        );
        assert_eq!(
            mem.code_generation(0xFFFF_0000),
            0,
            "the image is never written"
        );
    }

    #[test]
    fn compare_exchange_swaps_only_on_match() {
        let mem = memory();
        mem.write(0x2000, 4, 7);
        assert_eq!(mem.compare_exchange(0x2000, 4, 8, 9), 7);
        assert_eq!(mem.read(0x2000, 4), 7);
        assert_eq!(mem.compare_exchange(0x2000, 4, 7, 9), 7);
        assert_eq!(mem.read(0x2000, 4), 9);
        mem.write(0x2001, 2, 0x1234);
        assert_eq!(mem.compare_exchange(0x2001, 2, 0x1234, 0x4321), 0x1234);
        assert_eq!(mem.read(0x2001, 2), 0x4321);
    }

    #[test]
    fn bad_ram_sizes_are_refused() {
        for bytes in [0, 4095, MAX_RAM_BYTES + 4096] {
            assert!(matches!(
                GuestMemory::new(bytes, image_64k()),
                Err(MemoryError::BadRamSize { .. })
            ));
        }
    }
}
