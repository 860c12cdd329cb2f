//! QEMU's firmware configuration device (fw_cfg), I/O-port interface: how firmware learns
//! the CPU counts and reads the scenario's files.
//!
//! Firmware selects an item by writing its 16-bit key to the selector port, then reads the
//! item's bytes one at a time from the data port. smmsim implements the traditional
//! interface of QEMU `docs/specs/fw_cfg.rst` as QEMU's `hw/nvram/fw_cfg.c` does it for
//! x86 (`fw_cfg_comb_mem_ops`, `fw_cfg_select`, `fw_cfg_data_read`); the DMA interface
//! (port 0x514) is not offered, and [`FwCfg::KEY_ID`] says so.
//!
//! ```text
//! port   off  access      effect
//! 0x510  0x0  OUT 16-bit  select the item with this key; data offset <- 0
//! 0x511  0x1  IN 8-bit    next byte of the item; 0 past its end
//! either      IN 8-bit    the same data byte: QEMU ignores which port it is
//! either      IN 16/32    0, offset unchanged, counted (QEMU rejects the width)
//! either      OUT 8-bit   dropped, counted (data writes are no-ops since QEMU 2.4)
//! 0x511       OUT 16-bit  dropped, counted (QEMU rejects it as unaligned)
//! either      OUT 32-bit  dropped, counted (QEMU rejects the width)
//!
//! key     item                          format
//! 0x0000  signature                     "QEMU"
//! 0x0001  ID / feature bitmap           LE32 = 1: traditional interface, no DMA
//! 0x0005  boot CPU count                LE16
//! 0x000F  max CPUs                      LE16
//! 0x0019  file directory                BE32 count, then per file 64 bytes:
//!                                         size BE32, select BE16, reserved u16, name[56]
//! 0x0020+ files, in the order added     as given
//! key bit 14 (write channel) is ignored; key bit 15 (architecture-specific) names items
//! smmsim does not have, which read as 0.
//! ```
//!
//! 1. A 16-bit write at offset 0 selects an item and resets the data offset to 0
//!    (`fw_cfg_select`). Any key is accepted; one that names no item reads as 0.
//! 2. A byte read at either offset returns the item's byte at the data offset and advances
//!    it; past the end it returns 0 and stays (`fw_cfg_data_read`).
//! 3. Everything else — word and dword reads, dword writes, a word write at offset 1, byte
//!    writes — is what QEMU's `fw_cfg_comb_valid` rejects or `fw_cfg_write` drops: reads
//!    return 0 (QEMU's `unassigned_mem_read` for a rejected access), writes change nothing,
//!    the data offset does not move, and smmsim counts each in [`FwCfg::ignored_accesses`].
//!
//! Where smmsim is not QEMU:
//! - QEMU sorts files by name on current machine types and numbers them by sorted position,
//!   so adding a file can renumber the others. smmsim keeps the order they were added in,
//!   so a selector [`FwCfg::add_file`] returns stays valid. Neither is a contract: firmware
//!   finds files by name in the directory, as edk2's `QemuFwCfgFindFile` and SeaBIOS do.
//! - QEMU's directory item is `4 + 64 × file_slots` bytes (the unused entries zero), and
//!   QEMU stops at 32 files by default. smmsim's is `4 + 64 × count` and takes files up to
//!   key 0x3FFF. Byte reads cannot tell the difference: past the last entry both read 0.
//! - On x86 QEMU fills key 0x000F with the APIC-ID limit (highest possible APIC ID + 1,
//!   `hw/i386/fw_cfg.c` `fw_cfg_arch_create`), not the CPU count; they agree when APIC IDs
//!   are the CPU indices, as in smmsim. [`FwCfg::new`] takes the value to publish.
//!
//! Extension points (not implemented yet, PLATFORM.md "fw_cfg"): writable files
//! (`etc/smi/requested-features`) take byte writes at the data offset in the `Byte` arm of
//! [`PortDevice::port_write`], and items that act when selected (`etc/smi/features-ok`
//! validating the request) hook into `FwCfg::select`, the one place a selection happens.

use std::fmt;

use crate::access::{AccessContext, AccessWidth};
use crate::bus::PortDevice;
use crate::effect::Effect;

/// Why a file could not be added: a mistake in the machine's setup, not a guest action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FwCfgError {
    /// The name is empty.
    EmptyName,
    /// The name does not fit the directory's 56-byte field with its terminating NUL.
    NameTooLong {
        /// The name as given.
        name: String,
        /// Its length in bytes (UTF-8).
        len_bytes: usize,
    },
    /// The name contains a NUL byte, which would cut it short in the directory.
    NameContainsNul {
        /// The name as given.
        name: String,
    },
    /// A file with this name exists already (QEMU refuses duplicates too).
    DuplicateName {
        /// The name as given.
        name: String,
        /// The selector of the file already there.
        existing_selector: u16,
    },
    /// The contents are larger than the directory's 32-bit size field can say.
    FileTooLarge {
        /// The name as given.
        name: String,
        /// The size of the contents.
        size_bytes: usize,
    },
    /// Every file key up to 0x3FFF is taken.
    TooManyFiles {
        /// The name as given.
        name: String,
    },
}

impl fmt::Display for FwCfgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FwCfgError::EmptyName => write!(f, "fw_cfg file name is empty"),
            FwCfgError::NameTooLong { name, len_bytes } => write!(
                f,
                "fw_cfg file name `{name}` is {len_bytes} bytes long; at most {} fit",
                FwCfg::MAX_NAME_BYTES
            ),
            FwCfgError::NameContainsNul { name } => {
                write!(f, "fw_cfg file name {name:?} contains a NUL byte")
            }
            FwCfgError::DuplicateName {
                name,
                existing_selector,
            } => write!(
                f,
                "fw_cfg file `{name}` already exists at selector {existing_selector:#06x}"
            ),
            FwCfgError::FileTooLarge { name, size_bytes } => write!(
                f,
                "fw_cfg file `{name}` is {size_bytes} bytes; at most {} fit",
                u32::MAX
            ),
            FwCfgError::TooManyFiles { name } => write!(
                f,
                "cannot add fw_cfg file `{name}`: every selector up to {:#06x} is taken",
                FwCfg::KEY_ENTRY_MASK
            ),
        }
    }
}

impl std::error::Error for FwCfgError {}

/// One named item, listed in the file directory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct File {
    name: String,
    bytes: Vec<u8>,
}

/// The fw_cfg device: fixed items, files, and the guest's current selection.
///
/// Exists so firmware can read the machine's CPU counts and the scenario's files
/// (`opt/smmsim/…`, later `etc/smi/…`) exactly as it does under QEMU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwCfg {
    boot_cpus_le: [u8; 2],
    max_cpus_le: [u8; 2],
    /// File `i` has selector `FILE_FIRST + i`.
    files: Vec<File>,
    /// The directory item, rebuilt whenever a file is added.
    directory: Vec<u8>,
    /// The key last written, bits 14 and 15 included.
    selector: u16,
    /// The next byte of the selected item a data read returns.
    offset: u32,
    ignored_accesses: u64,
}

impl FwCfg {
    /// The first port of the window (QEMU `FW_CFG_IO_BASE`; PLATFORM.md).
    pub const PORT: u16 = 0x0510;
    /// Two ports: selector and data (QEMU `FW_CFG_CTL_SIZE`).
    pub const WINDOW_LEN: u16 = 2;
    /// Offset of the selector register (16-bit write).
    pub const REG_SELECTOR: u16 = 0x0;
    /// Offset of the data register (8-bit read).
    pub const REG_DATA: u16 = 0x1;

    /// Key of the signature item, "QEMU" (`FW_CFG_SIGNATURE`).
    pub const KEY_SIGNATURE: u16 = 0x0000;
    /// Key of the ID / feature bitmap, LE32 (`FW_CFG_ID`).
    pub const KEY_ID: u16 = 0x0001;
    /// Key of the boot CPU count, LE16 (`FW_CFG_NB_CPUS`).
    pub const KEY_NB_CPUS: u16 = 0x0005;
    /// Key of the maximum CPU count, LE16 (`FW_CFG_MAX_CPUS`).
    pub const KEY_MAX_CPUS: u16 = 0x000F;
    /// Key of the file directory (`FW_CFG_FILE_DIR`).
    pub const KEY_FILE_DIR: u16 = 0x0019;
    /// Key of the first file (`FW_CFG_FILE_FIRST`).
    pub const KEY_FILE_FIRST: u16 = 0x0020;
    /// Key bit 14: "write channel", ignored since QEMU 2.4 (`FW_CFG_WRITE_CHANNEL`).
    pub const KEY_WRITE_CHANNEL: u16 = 0x4000;
    /// Key bit 15: architecture-specific item (`FW_CFG_ARCH_LOCAL`).
    pub const KEY_ARCH_LOCAL: u16 = 0x8000;
    /// The item index within a key (`FW_CFG_ENTRY_MASK`).
    pub const KEY_ENTRY_MASK: u16 = 0x3FFF;

    /// What the signature item holds.
    pub const SIGNATURE: [u8; 4] = *b"QEMU";
    /// ID bit 0: the traditional (selector/data port) interface (`FW_CFG_VERSION`).
    pub const ID_TRADITIONAL: u32 = 1 << 0;
    /// ID bit 1: the DMA interface (`FW_CFG_VERSION_DMA`); smmsim does not set it.
    pub const ID_DMA: u32 = 1 << 1;
    /// Bytes of one directory entry (`sizeof(FWCfgFile)`).
    pub const DIR_ENTRY_BYTES: usize = 64;
    /// Bytes of the name field of a directory entry (`FW_CFG_MAX_FILE_PATH`).
    pub const NAME_FIELD_BYTES: usize = 56;
    /// The longest name: the field keeps a terminating NUL.
    pub const MAX_NAME_BYTES: usize = Self::NAME_FIELD_BYTES - 1;

    /// A device with no files that reports `boot_cpus` CPUs at boot and `max_cpus` possible
    /// ones. `max_cpus` is published as is; QEMU publishes the APIC-ID limit there (see the
    /// module doc).
    pub fn new(boot_cpus: u16, max_cpus: u16) -> FwCfg {
        let mut fw_cfg = FwCfg {
            boot_cpus_le: boot_cpus.to_le_bytes(),
            max_cpus_le: max_cpus.to_le_bytes(),
            files: Vec::new(),
            directory: Vec::new(),
            selector: Self::KEY_SIGNATURE,
            offset: 0,
            ignored_accesses: 0,
        };
        fw_cfg.rebuild_directory();
        fw_cfg
    }

    /// Adds a read-only file and returns its selector (0x0020 for the first, then up).
    ///
    /// Fails, leaving the device unchanged, for an empty name, a name longer than 55 bytes
    /// or containing NUL, a name already present, contents over 4 GiB − 1, or when every
    /// selector up to 0x3FFF is taken.
    pub fn add_file(&mut self, name: &str, bytes: Vec<u8>) -> Result<u16, FwCfgError> {
        if name.is_empty() {
            return Err(FwCfgError::EmptyName);
        }
        if name.len() > Self::MAX_NAME_BYTES {
            return Err(FwCfgError::NameTooLong {
                name: name.to_owned(),
                len_bytes: name.len(),
            });
        }
        if name.as_bytes().contains(&0) {
            return Err(FwCfgError::NameContainsNul {
                name: name.to_owned(),
            });
        }
        if let Some(existing_selector) = self.file_selector(name) {
            return Err(FwCfgError::DuplicateName {
                name: name.to_owned(),
                existing_selector,
            });
        }
        if u32::try_from(bytes.len()).is_err() {
            return Err(FwCfgError::FileTooLarge {
                name: name.to_owned(),
                size_bytes: bytes.len(),
            });
        }
        let selector = match Self::selector_of_index(self.files.len()) {
            Some(selector) => selector,
            None => {
                return Err(FwCfgError::TooManyFiles {
                    name: name.to_owned(),
                })
            }
        };
        self.files.push(File {
            name: name.to_owned(),
            bytes,
        });
        self.rebuild_directory();
        Ok(selector)
    }

    /// The selector of the file called `name`, if there is one.
    pub fn file_selector(&self, name: &str) -> Option<u16> {
        let index = self.files.iter().position(|f| f.name == name)?;
        Self::selector_of_index(index)
    }

    /// Hard reset: the signature item is selected at offset 0 (QEMU `fw_cfg_reset`). Files
    /// are machine configuration and stay.
    pub fn reset(&mut self) {
        self.select(Self::KEY_SIGNATURE);
    }

    /// How many port accesses QEMU would reject or drop (see the module doc): wrong widths,
    /// byte writes, a word write at the data port.
    pub fn ignored_accesses(&self) -> u64 {
        self.ignored_accesses
    }

    /// The selector of file number `index`, if it stays below the write-channel bit.
    fn selector_of_index(index: usize) -> Option<u16> {
        u16::try_from(index)
            .ok()
            .and_then(|i| Self::KEY_FILE_FIRST.checked_add(i))
            .filter(|&selector| selector <= Self::KEY_ENTRY_MASK)
    }

    /// The directory: BE32 count, then one 64-byte entry per file (QEMU `FWCfgFiles`).
    fn rebuild_directory(&mut self) {
        let mut dir = Vec::with_capacity(4 + self.files.len() * Self::DIR_ENTRY_BYTES);
        // `add_file` keeps the count below 0x4000 and each size below 2^32.
        let count = u32::try_from(self.files.len()).unwrap_or(u32::MAX);
        dir.extend_from_slice(&count.to_be_bytes());
        for (index, file) in self.files.iter().enumerate() {
            let size = u32::try_from(file.bytes.len()).unwrap_or(u32::MAX);
            let selector = Self::selector_of_index(index).unwrap_or(u16::MAX);
            dir.extend_from_slice(&size.to_be_bytes());
            dir.extend_from_slice(&selector.to_be_bytes());
            dir.extend_from_slice(&[0, 0]); // reserved
            let mut name = [0u8; Self::NAME_FIELD_BYTES];
            for (dst, src) in name.iter_mut().zip(file.name.as_bytes()) {
                *dst = *src;
            }
            dir.extend_from_slice(&name);
        }
        self.directory = dir;
    }

    /// Selects the item named by `key` and rewinds to its first byte (QEMU `fw_cfg_select`).
    /// Items that act on selection will hook in here.
    fn select(&mut self, key: u16) {
        self.selector = key;
        self.offset = 0;
    }

    /// The bytes of the selected item; empty for keys that name nothing.
    fn item(&self) -> &[u8] {
        if self.selector & Self::KEY_ARCH_LOCAL != 0 {
            // x86 QEMU has ACPI, SMBIOS, E820 and HPET items here; smmsim has none.
            return &[];
        }
        const ID_LE: [u8; 4] = FwCfg::ID_TRADITIONAL.to_le_bytes();
        match self.selector & Self::KEY_ENTRY_MASK {
            Self::KEY_SIGNATURE => &Self::SIGNATURE,
            Self::KEY_ID => &ID_LE,
            Self::KEY_NB_CPUS => &self.boot_cpus_le,
            Self::KEY_MAX_CPUS => &self.max_cpus_le,
            Self::KEY_FILE_DIR => &self.directory,
            key => key
                .checked_sub(Self::KEY_FILE_FIRST)
                .and_then(|index| self.files.get(usize::from(index)))
                .map_or(&[], |file| file.bytes.as_slice()),
        }
    }

    /// One byte from the data register: the byte at the offset, which then advances; 0
    /// once past the end, where the offset stays.
    fn read_data_byte(&mut self) -> u8 {
        let byte = usize::try_from(self.offset)
            .ok()
            .and_then(|offset| self.item().get(offset).copied());
        match byte {
            Some(byte) => {
                self.offset = self.offset.saturating_add(1);
                byte
            }
            None => 0,
        }
    }

    fn count_ignored(&mut self) {
        self.ignored_accesses = self.ignored_accesses.saturating_add(1);
    }
}

impl PortDevice for FwCfg {
    fn name(&self) -> &'static str {
        "fw_cfg"
    }

    fn port_read(
        &mut self,
        _ctx: &AccessContext,
        _offset: u16,
        width: AccessWidth,
        _effects: &mut Vec<Effect>,
    ) -> u32 {
        match width {
            // Either port: QEMU's `fw_cfg_comb_mem_ops.read` is `fw_cfg_data_read`, which
            // ignores the address.
            AccessWidth::Byte => u32::from(self.read_data_byte()),
            // `fw_cfg_comb_valid` accepts reads of size 1 only; the memory core answers a
            // rejected read with `unassigned_mem_read`, 0, and the offset does not move.
            AccessWidth::Word | AccessWidth::Dword => {
                self.count_ignored();
                0
            }
        }
    }

    fn port_write(
        &mut self,
        _ctx: &AccessContext,
        offset: u16,
        width: AccessWidth,
        value: u32,
        _effects: &mut Vec<Effect>,
    ) {
        match (offset, width) {
            // `fw_cfg_comb_write` size 2 → `fw_cfg_select((uint16_t)value)`.
            (Self::REG_SELECTOR, AccessWidth::Word) => self.select(value as u16),
            // Size 1 → `fw_cfg_write`, a no-op since QEMU 2.4 ("write support removed").
            // Writable items (etc/smi/requested-features) will take their bytes here.
            (_, AccessWidth::Byte) => self.count_ignored(),
            // A word at the data port is unaligned (QEMU rejects it: `valid.unaligned` is
            // false); dwords fail `fw_cfg_comb_valid`.
            _ => self.count_ignored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smmsim_traces::Cycle;

    fn ctx() -> AccessContext {
        AccessContext::at_cycle(Cycle::ZERO)
    }

    fn select(dev: &mut FwCfg, key: u16) {
        dev.port_write(
            &ctx(),
            FwCfg::REG_SELECTOR,
            AccessWidth::Word,
            key.into(),
            &mut Vec::new(),
        );
    }

    fn read(dev: &mut FwCfg, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                let v = dev.port_read(&ctx(), FwCfg::REG_DATA, AccessWidth::Byte, &mut Vec::new());
                u8::try_from(v).expect("a byte read returns one byte")
            })
            .collect()
    }

    #[test]
    fn signature_is_selected_at_power_on() {
        let mut dev = FwCfg::new(1, 1);
        assert_eq!(read(&mut dev, 4), b"QEMU");
    }

    #[test]
    fn fixed_items() {
        let mut dev = FwCfg::new(4, 0x120);
        select(&mut dev, FwCfg::KEY_SIGNATURE);
        assert_eq!(read(&mut dev, 5), b"QEMU\0");
        select(&mut dev, FwCfg::KEY_ID);
        assert_eq!(read(&mut dev, 4), [1, 0, 0, 0]);
        select(&mut dev, FwCfg::KEY_NB_CPUS);
        assert_eq!(read(&mut dev, 2), [4, 0]);
        select(&mut dev, FwCfg::KEY_MAX_CPUS);
        assert_eq!(read(&mut dev, 3), [0x20, 0x01, 0]);
        select(&mut dev, FwCfg::KEY_FILE_DIR);
        assert_eq!(read(&mut dev, 5), [0; 5]);
        assert_eq!(dev.ignored_accesses(), 0);
    }

    #[test]
    fn selecting_rewinds_and_reading_past_the_end_returns_zero() {
        let mut dev = FwCfg::new(1, 1);
        assert_eq!(read(&mut dev, 2), b"QE");
        select(&mut dev, FwCfg::KEY_SIGNATURE);
        assert_eq!(read(&mut dev, 6), b"QEMU\0\0");
        // The offset stayed at the end; reselecting starts over.
        select(&mut dev, FwCfg::KEY_SIGNATURE);
        assert_eq!(read(&mut dev, 1), b"Q");
    }

    #[test]
    fn files_get_selectors_in_order_and_appear_in_the_directory() {
        let mut dev = FwCfg::new(2, 8);
        assert_eq!(dev.add_file("opt/smmsim/a", vec![1, 2, 3]), Ok(0x20));
        assert_eq!(dev.add_file("etc/b", vec![9; 300]), Ok(0x21));
        assert_eq!(dev.file_selector("etc/b"), Some(0x21));
        assert_eq!(dev.file_selector("etc/c"), None);

        select(&mut dev, FwCfg::KEY_FILE_DIR);
        let dir = read(&mut dev, 4 + 2 * 64 + 1);
        assert_eq!(dir[..4], [0, 0, 0, 2]);
        let first = &dir[4..68];
        assert_eq!(first[..4], [0, 0, 0, 3]); // size, big-endian
        assert_eq!(first[4..6], [0x00, 0x20]); // select, big-endian
        assert_eq!(first[6..8], [0, 0]); // reserved
        assert_eq!(&first[8..20], b"opt/smmsim/a");
        assert!(first[20..].iter().all(|&b| b == 0));
        let second = &dir[68..132];
        assert_eq!(second[..8], [0, 0, 0x01, 0x2C, 0x00, 0x21, 0, 0]);
        assert_eq!(&second[8..13], b"etc/b");
        assert_eq!(dir[132], 0);

        select(&mut dev, 0x20);
        assert_eq!(read(&mut dev, 4), [1, 2, 3, 0]);
    }

    #[test]
    fn key_bit_14_is_ignored_and_bit_15_names_nothing() {
        let mut dev = FwCfg::new(3, 3);
        select(&mut dev, FwCfg::KEY_WRITE_CHANNEL | FwCfg::KEY_NB_CPUS);
        assert_eq!(read(&mut dev, 2), [3, 0]);
        select(&mut dev, FwCfg::KEY_ARCH_LOCAL | FwCfg::KEY_NB_CPUS);
        assert_eq!(read(&mut dev, 2), [0, 0]);
        // Keys that name nothing: an unused fixed key, a file key past the last file.
        for key in [0x0002, 0x0020, 0x3FFF, 0xFFFF] {
            select(&mut dev, key);
            assert_eq!(read(&mut dev, 1), [0], "key {key:#06x}");
        }
    }

    #[test]
    fn add_file_rejects_bad_names_and_leaves_the_device_unchanged() {
        let mut dev = FwCfg::new(1, 1);
        let long = "x".repeat(56);
        assert_eq!(dev.add_file("", vec![]), Err(FwCfgError::EmptyName));
        let err = dev.add_file(&long, vec![]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("fw_cfg file name `{long}` is 56 bytes long; at most 55 fit")
        );
        assert_eq!(
            dev.add_file("a\0b", vec![]),
            Err(FwCfgError::NameContainsNul {
                name: "a\0b".into()
            })
        );
        assert_eq!(dev.add_file(&long[..55], vec![7]), Ok(0x20));
        let dup = dev.add_file(&long[..55], vec![]).unwrap_err();
        assert_eq!(
            dup,
            FwCfgError::DuplicateName {
                name: long[..55].into(),
                existing_selector: 0x20
            }
        );
        // A 55-byte name fills the field but for the NUL.
        select(&mut dev, FwCfg::KEY_FILE_DIR);
        let dir = read(&mut dev, 4 + 64);
        assert_eq!(dir[..4], [0, 0, 0, 1]);
        assert!(dir[12..67].iter().all(|&b| b == b'x'));
        assert_eq!(dir[67], 0);
    }

    #[test]
    fn file_selectors_stop_below_the_write_channel_bit() {
        let last_index = usize::from(FwCfg::KEY_ENTRY_MASK - FwCfg::KEY_FILE_FIRST);
        assert_eq!(FwCfg::selector_of_index(last_index), Some(0x3FFF));
        assert_eq!(FwCfg::selector_of_index(last_index + 1), None);
        assert_eq!(FwCfg::selector_of_index(usize::MAX), None);
    }

    #[test]
    fn wide_reads_return_zero_without_advancing_and_are_counted() {
        let mut dev = FwCfg::new(1, 1);
        for offset in [FwCfg::REG_SELECTOR, FwCfg::REG_DATA] {
            for width in [AccessWidth::Word, AccessWidth::Dword] {
                assert_eq!(dev.port_read(&ctx(), offset, width, &mut Vec::new()), 0);
            }
        }
        assert_eq!(dev.ignored_accesses(), 4);
        assert_eq!(read(&mut dev, 4), b"QEMU");
    }

    #[test]
    fn byte_read_of_the_selector_port_reads_data_as_qemu_does() {
        let mut dev = FwCfg::new(1, 1);
        let mut effects = Vec::new();
        let q = dev.port_read(&ctx(), FwCfg::REG_SELECTOR, AccessWidth::Byte, &mut effects);
        assert_eq!(q, u32::from(b'Q'));
        assert_eq!(read(&mut dev, 3), b"EMU");
        assert!(effects.is_empty());
    }

    #[test]
    fn writes_other_than_a_selector_word_are_dropped_and_counted() {
        let mut dev = FwCfg::new(5, 5);
        let mut write = |offset, width, value| {
            dev.port_write(&ctx(), offset, width, value, &mut Vec::new());
        };
        write(FwCfg::REG_DATA, AccessWidth::Byte, 0x41);
        write(FwCfg::REG_SELECTOR, AccessWidth::Byte, 0x05);
        write(FwCfg::REG_DATA, AccessWidth::Word, 0x0005);
        write(FwCfg::REG_SELECTOR, AccessWidth::Dword, 0x0005);
        assert_eq!(dev.ignored_accesses(), 4);
        // Still the signature, still at offset 0.
        assert_eq!(read(&mut dev, 4), b"QEMU");
    }

    #[test]
    fn a_selector_word_uses_the_low_sixteen_bits() {
        let mut dev = FwCfg::new(6, 6);
        dev.port_write(
            &ctx(),
            FwCfg::REG_SELECTOR,
            AccessWidth::Word,
            0xFFFF_0005,
            &mut Vec::new(),
        );
        assert_eq!(read(&mut dev, 2), [6, 0]);
    }

    #[test]
    fn reset_selects_the_signature_and_keeps_files() {
        let mut dev = FwCfg::new(1, 1);
        dev.add_file("opt/x", vec![0xAA]).unwrap();
        select(&mut dev, 0x20);
        dev.reset();
        assert_eq!(read(&mut dev, 4), b"QEMU");
        select(&mut dev, 0x20);
        assert_eq!(read(&mut dev, 1), [0xAA]);
    }

    #[test]
    fn errors_read_as_sentences_with_the_bad_value() {
        let too_large = FwCfgError::FileTooLarge {
            name: "big".into(),
            size_bytes: 1 << 33,
        };
        assert_eq!(
            too_large.to_string(),
            "fw_cfg file `big` is 8589934592 bytes; at most 4294967295 fit"
        );
        assert_eq!(
            FwCfgError::TooManyFiles { name: "n".into() }.to_string(),
            "cannot add fw_cfg file `n`: every selector up to 0x3fff is taken"
        );
        assert_eq!(
            FwCfgError::DuplicateName {
                name: "d".into(),
                existing_selector: 0x21
            }
            .to_string(),
            "fw_cfg file `d` already exists at selector 0x0021"
        );
    }
}
