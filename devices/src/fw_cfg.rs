//! QEMU's firmware configuration device (fw_cfg), I/O-port interface: how firmware learns
//! the CPU counts, reads the scenario's files, and negotiates SMI features.
//!
//! Firmware selects an item by writing its 16-bit key to the selector port, then reads the
//! item's bytes one at a time from the data port — or, when the ID item says DMA is there,
//! hands the device a descriptor in guest memory and lets it copy. smmsim implements both
//! interfaces of QEMU `docs/specs/fw_cfg.rst` as QEMU's `hw/nvram/fw_cfg.c` does them for
//! x86 (`fw_cfg_comb_mem_ops`, `fw_cfg_dma_mem_ops`, `fw_cfg_select`, `fw_cfg_data_read`,
//! `fw_cfg_dma_transfer`).
//!
//! ```text
//! port        off  access       effect
//! 0x510       0x0  OUT 16-bit   select the item with this key; data offset <- 0
//! 0x511       0x1  IN 8-bit     next byte of the item; 0 past its end
//! 0x510/511        IN 8-bit     the same data byte: QEMU ignores which port it is
//! 0x510/511        IN 16/32     0, offset unchanged, counted (QEMU rejects the width)
//! 0x510/511        OUT 8-bit    dropped, counted (data writes are no-ops since QEMU 2.4)
//! 0x511            OUT 16-bit   dropped, counted (QEMU rejects it as unaligned)
//! 0x510/511        OUT 32-bit   dropped, counted (QEMU rejects the width)
//! -- DMA interface, only when enabled (QEMU `dma_enabled`, on for q35) ----------------
//! 0x514       0x0  OUT 32-bit   DMA address bits 63:32 (big-endian; low half cleared)
//! 0x518       0x4  OUT 32-bit   DMA address bits 31:0 (big-endian); starts the transfer
//! 0x514-51B        IN, aligned  the signature "QEMU CFG", byte k at port 0x514 + k
//! 0x514-51B        other        dropped, counted; a misaligned read is 0
//!
//! key     item                          format
//! 0x0000  signature                     "QEMU"
//! 0x0001  ID / feature bitmap           LE32: bit 0 traditional, bit 1 DMA (when enabled)
//! 0x0005  boot CPU count                LE16
//! 0x000F  max CPUs                      LE16
//! 0x0019  file directory                BE32 count, then per file 64 bytes:
//!                                         size BE32, select BE16, reserved u16, name[56]
//! 0x0020+ files, in the order added     as given; read-only or writable through DMA
//! key bit 14 (write channel) is ignored; key bit 15 (architecture-specific) names items
//! smmsim does not have, which read as 0.
//!
//! FWCfgDmaAccess, at the guest-physical address written to 0x514/0x518 (all big-endian)
//! +0  control  31..16 key for SELECT | 4 WRITE | 3 SELECT | 2 SKIP | 1 READ | 0 ERROR
//! +4  length   bytes to transfer
//! +8  address  guest-physical buffer (64-bit)
//! ```
//!
//! 1. A 16-bit write at offset 0 selects an item and resets the data offset to 0
//!    (`fw_cfg_select`); then the [`FwCfgCallbacks`] hear of it — that is how
//!    `etc/smi/features-ok` validates a request the moment it is selected. Any key is
//!    accepted; one that names no item reads as 0.
//! 2. A byte read at either offset returns the item's byte at the data offset and advances
//!    it; past the end it returns 0 and stays (`fw_cfg_data_read`).
//! 3. Everything else on 0x510/0x511 — word and dword reads, dword writes, a word write at
//!    offset 1, byte writes — is what QEMU's `fw_cfg_comb_valid` rejects or `fw_cfg_write`
//!    drops: reads return 0 (QEMU's `unassigned_mem_read` for a rejected access), writes
//!    change nothing, the data offset does not move, and smmsim counts each in
//!    [`FwCfg::ignored_accesses`].
//! 4. DMA (`fw_cfg_dma_mem_write`, `fw_cfg_dma_transfer`): the x86 guest writes the
//!    descriptor's address as two byte-swapped dwords, high half first; the low half
//!    starts the transfer, and the latched address goes back to 0. The device reads the
//!    16-byte descriptor (failing that, it writes ERROR into its control field and stops),
//!    selects when SELECT is set, then READs (item → memory, zeros past the end), WRITEs
//!    (memory → a writable file; the whole length must fit in the rest of the file, else
//!    ERROR) or SKIPs (offset advances) `length` bytes, and finally stores the control
//!    field: 0 on success, ERROR (1) on failure. A control with none of READ, WRITE, SKIP
//!    transfers nothing. Guest memory is reached through a [`DmaMemory`] the caller
//!    supplies; a device never holds guest memory.
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
//! - PLATFORM.md says `etc/smi/requested-features` is "writable through the data port". It
//!   is not, in QEMU since 2.4 nor here: writable files take DMA writes only, as edk2's
//!   `QemuFwCfgWriteBytes` does them. A data-port byte write is dropped and counted.
//! - A device built with [`FwCfg::new`] has DMA off (QEMU's `dma_enabled=off`, as for
//!   machine types before 2.9); [`FwCfg::set_dma_enabled`] turns it on, which the q35
//!   chipset does. The [`PortDevice`] impl serves the traditional window only.

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

/// A guest-memory access a DMA transfer could not make: the address has no memory behind
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmaError {
    /// The guest-physical address of the failed access.
    pub address: u64,
    /// Its length in bytes.
    pub len_bytes: usize,
}

impl fmt::Display for DmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no guest memory for a {}-byte DMA access at {:#x}",
            self.len_bytes, self.address
        )
    }
}

impl std::error::Error for DmaError {}

/// Guest-physical memory as a bus-master device sees it.
///
/// The seam through which fw_cfg DMA reaches memory without owning it: the simulator
/// implements it over its RAM, tests over a `Vec`. A device access is never in SMM, so the
/// implementation applies the SMRAM rule as for any non-SMM access (closed SMRAM reads all
/// ones and drops writes, as QEMU's DMA through `address_space_memory` meets the TSEG
/// blackhole). Return an error only where no memory answers at all (QEMU's
/// `MEMTX_DECODE_ERROR`); the transfer then reports ERROR to the guest.
pub trait DmaMemory {
    /// Fills `buf` from guest-physical `address` onwards.
    fn read(&mut self, address: u64, buf: &mut [u8]) -> Result<(), DmaError>;
    /// Stores `bytes` at guest-physical `address` onwards.
    fn write(&mut self, address: u64, bytes: &[u8]) -> Result<(), DmaError>;
}

/// What fw_cfg tells the device that owns some of its files (QEMU's per-file `select_cb`).
///
/// Exists so an item can act when selected — `etc/smi/features-ok` validates the request
/// then — while fw_cfg stays ignorant of what the files mean. The owner gets the file store
/// to read and rewrite contents in place.
pub trait FwCfgCallbacks {
    /// The guest selected `key` (bit 14 cleared), through the selector port or a DMA
    /// SELECT; the data offset is already 0.
    fn selected(&mut self, key: u16, files: &mut FwCfgFiles);
}

/// Callbacks that do nothing: for an fw_cfg whose files are all plain data.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NoCallbacks;

impl FwCfgCallbacks for NoCallbacks {
    fn selected(&mut self, _key: u16, _files: &mut FwCfgFiles) {}
}

/// One named item, listed in the file directory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct File {
    name: String,
    bytes: Vec<u8>,
    /// Whether DMA writes may change it (QEMU `fw_cfg_add_file_callback(..., read_only)`).
    writable: bool,
}

/// The named files of an fw_cfg device.
///
/// Exists so a file's owner ([`FwCfgCallbacks`]) can read and rewrite contents in place.
/// Sizes are fixed once added, so the directory never goes stale.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FwCfgFiles {
    /// File `i` has selector `KEY_FILE_FIRST + i`.
    files: Vec<File>,
}

impl FwCfgFiles {
    /// The selector of the file called `name`, if there is one.
    pub fn selector(&self, name: &str) -> Option<u16> {
        let index = self.files.iter().position(|f| f.name == name)?;
        FwCfg::selector_of_index(index)
    }

    /// The contents of the file with `selector`.
    pub fn contents(&self, selector: u16) -> Option<&[u8]> {
        self.file(selector).map(|f| f.bytes.as_slice())
    }

    /// The contents of the file with `selector`, to change in place (read-only files too:
    /// "read-only" binds the guest, not the device that owns the file).
    pub fn contents_mut(&mut self, selector: u16) -> Option<&mut [u8]> {
        let index = Self::index_of(selector)?;
        self.files.get_mut(index).map(|f| f.bytes.as_mut_slice())
    }

    fn index_of(selector: u16) -> Option<usize> {
        if selector & !FwCfg::KEY_ENTRY_MASK != 0 {
            return None;
        }
        selector.checked_sub(FwCfg::KEY_FILE_FIRST).map(usize::from)
    }

    fn file(&self, selector: u16) -> Option<&File> {
        self.files.get(Self::index_of(selector)?)
    }
}

/// What a DMA descriptor asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DmaOp {
    Read,
    Write,
    Skip,
}

/// The fw_cfg device: fixed items, files, the guest's current selection and the DMA
/// address latch.
///
/// Exists so firmware can read the machine's CPU counts and the scenario's files
/// (`opt/smmsim/…`, `etc/smi/…`) and write the files meant for it, exactly as it does under
/// QEMU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwCfg {
    boot_cpus_le: [u8; 2],
    max_cpus_le: [u8; 2],
    ram_size_le: [u8; 8],
    id_le: [u8; 4],
    files: FwCfgFiles,
    /// The directory item, rebuilt whenever a file is added.
    directory: Vec<u8>,
    /// The key last written, bits 14 and 15 included.
    selector: u16,
    /// The next byte of the selected item a data read (or DMA) reaches.
    offset: u32,
    dma_enabled: bool,
    /// The descriptor address being assembled from 0x514/0x518.
    dma_address: u64,
    ignored_accesses: u64,
    dma_errors: u64,
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
    /// The DMA address register's first port (QEMU `FW_CFG_DMA_IO_BASE`).
    pub const DMA_PORT: u16 = 0x0514;
    /// Eight ports: the 64-bit DMA address (`sizeof(dma_addr_t)`).
    pub const DMA_WINDOW_LEN: u16 = 8;
    /// Offset of the DMA address's high half in the DMA window.
    pub const REG_DMA_ADDRESS_HIGH: u16 = 0x0;
    /// Offset of the DMA address's low half; writing it starts the transfer.
    pub const REG_DMA_ADDRESS_LOW: u16 = 0x4;
    /// What reads of the DMA window return, byte k at offset k (`FW_CFG_DMA_SIGNATURE`).
    pub const DMA_SIGNATURE: [u8; 8] = *b"QEMU CFG";
    /// Bytes of an `FWCfgDmaAccess` descriptor.
    pub const DMA_DESCRIPTOR_BYTES: usize = 16;
    /// Control bit 0: the transfer failed (`FW_CFG_DMA_CTL_ERROR`).
    pub const DMA_CTL_ERROR: u32 = 1 << 0;
    /// Control bit 1: item → memory (`FW_CFG_DMA_CTL_READ`).
    pub const DMA_CTL_READ: u32 = 1 << 1;
    /// Control bit 2: advance the offset without copying (`FW_CFG_DMA_CTL_SKIP`).
    pub const DMA_CTL_SKIP: u32 = 1 << 2;
    /// Control bit 3: select the key in bits 31:16 first (`FW_CFG_DMA_CTL_SELECT`).
    pub const DMA_CTL_SELECT: u32 = 1 << 3;
    /// Control bit 4: memory → item (`FW_CFG_DMA_CTL_WRITE`).
    pub const DMA_CTL_WRITE: u32 = 1 << 4;

    /// Key of the signature item, "QEMU" (`FW_CFG_SIGNATURE`).
    pub const KEY_SIGNATURE: u16 = 0x0000;
    /// Key of the ID / feature bitmap, LE32 (`FW_CFG_ID`).
    pub const KEY_ID: u16 = 0x0001;
    /// Key of the boot CPU count, LE16 (`FW_CFG_NB_CPUS`).
    pub const KEY_NB_CPUS: u16 = 0x0005;
    /// Guest RAM size in bytes, LE64 (QEMU `FW_CFG_RAM_SIZE`): firmware sizes low RAM and
    /// places TSEG from it.
    pub const KEY_RAM_SIZE: u16 = 0x0003;
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
    /// ID bit 1: the DMA interface (`FW_CFG_VERSION_DMA`), set while DMA is enabled.
    pub const ID_DMA: u32 = 1 << 1;
    /// Bytes of one directory entry (`sizeof(FWCfgFile)`).
    pub const DIR_ENTRY_BYTES: usize = 64;
    /// Bytes of the name field of a directory entry (`FW_CFG_MAX_FILE_PATH`).
    pub const NAME_FIELD_BYTES: usize = 56;
    /// The longest name: the field keeps a terminating NUL.
    pub const MAX_NAME_BYTES: usize = Self::NAME_FIELD_BYTES - 1;

    /// Zeros the DMA READ of a missing item writes, this many at a time.
    const ZERO_CHUNK_BYTES: usize = 4096;

    /// A device with no files and DMA off that reports `boot_cpus` CPUs at boot and
    /// `max_cpus` possible ones. `max_cpus` is published as is; QEMU publishes the APIC-ID
    /// limit there (see the module doc).
    pub fn new(boot_cpus: u16, max_cpus: u16) -> FwCfg {
        let mut fw_cfg = FwCfg {
            boot_cpus_le: boot_cpus.to_le_bytes(),
            max_cpus_le: max_cpus.to_le_bytes(),
            ram_size_le: [0; 8],
            id_le: Self::ID_TRADITIONAL.to_le_bytes(),
            files: FwCfgFiles::default(),
            directory: Vec::new(),
            selector: Self::KEY_SIGNATURE,
            offset: 0,
            dma_enabled: false,
            dma_address: 0,
            ignored_accesses: 0,
            dma_errors: 0,
        };
        fw_cfg.rebuild_directory();
        fw_cfg
    }

    /// Turns the DMA interface on or off; the ID item follows (bit 1).
    pub fn set_dma_enabled(&mut self, enabled: bool) {
        self.dma_enabled = enabled;
        let id = if enabled {
            Self::ID_TRADITIONAL | Self::ID_DMA
        } else {
            Self::ID_TRADITIONAL
        };
        self.id_le = id.to_le_bytes();
        self.dma_address = 0;
    }

    /// Whether the DMA interface is on (ports 0x514–0x51B answer).
    pub fn dma_enabled(&self) -> bool {
        self.dma_enabled
    }

    /// Adds a read-only file and returns its selector (0x0020 for the first, then up).
    ///
    /// Fails, leaving the device unchanged, for an empty name, a name longer than 55 bytes
    /// or containing NUL, a name already present, contents over 4 GiB − 1, or when every
    /// selector up to 0x3FFF is taken.
    pub fn add_file(&mut self, name: &str, bytes: Vec<u8>) -> Result<u16, FwCfgError> {
        self.add(name, bytes, false)
    }

    /// Adds a read-only file, or replaces the contents of the one with that name (size
    /// included), and returns its selector.
    ///
    /// Exists for the platform between boots: a scenario's reset gives the guest side a
    /// new plan (QEMU would need a new `-fw_cfg` and a restart). A replaced file keeps its
    /// selector and writability. Fails as [`FwCfg::add_file`] does for a new name.
    pub fn replace_file(&mut self, name: &str, bytes: Vec<u8>) -> Result<u16, FwCfgError> {
        let Some(selector) = self.files.selector(name) else {
            return self.add_file(name, bytes);
        };
        if u32::try_from(bytes.len()).is_err() {
            return Err(FwCfgError::FileTooLarge {
                name: name.to_owned(),
                size_bytes: bytes.len(),
            });
        }
        let index = FwCfgFiles::index_of(selector);
        if let Some(file) = index.and_then(|i| self.files.files.get_mut(i)) {
            file.bytes = bytes;
        }
        self.rebuild_directory();
        Ok(selector)
    }

    /// Adds a file the guest may overwrite through DMA (QEMU `fw_cfg_add_file_callback`
    /// with `read_only` false), and returns its selector. Its size is fixed: a DMA write
    /// must fit in it. Fails as [`FwCfg::add_file`] does.
    pub fn add_writable_file(&mut self, name: &str, bytes: Vec<u8>) -> Result<u16, FwCfgError> {
        self.add(name, bytes, true)
    }

    fn add(&mut self, name: &str, bytes: Vec<u8>, writable: bool) -> Result<u16, FwCfgError> {
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
        let selector = match Self::selector_of_index(self.files.files.len()) {
            Some(selector) => selector,
            None => {
                return Err(FwCfgError::TooManyFiles {
                    name: name.to_owned(),
                })
            }
        };
        self.files.files.push(File {
            name: name.to_owned(),
            bytes,
            writable,
        });
        self.rebuild_directory();
        Ok(selector)
    }

    /// The selector of the file called `name`, if there is one.
    pub fn file_selector(&self, name: &str) -> Option<u16> {
        self.files.selector(name)
    }

    /// The files, to read their current contents (what the guest wrote, say).
    pub fn files(&self) -> &FwCfgFiles {
        &self.files
    }

    /// The files, for their owner to rewrite contents in place (at reset, say).
    pub fn files_mut(&mut self) -> &mut FwCfgFiles {
        &mut self.files
    }

    /// Hard reset: the signature item is selected at offset 0 and the DMA address latch is
    /// cleared (QEMU `fw_cfg_reset`). Files are machine configuration and stay; resetting
    /// the contents of a writable file is its owner's business, as in QEMU.
    pub fn reset(&mut self) {
        self.selector = Self::KEY_SIGNATURE;
        self.offset = 0;
        self.dma_address = 0;
    }

    /// How many port accesses QEMU would reject or drop (see the module doc): wrong widths,
    /// byte writes, a word write at the data port, odd DMA-window accesses.
    pub fn ignored_accesses(&self) -> u64 {
        self.ignored_accesses
    }

    /// How many DMA transfers ended with ERROR in their control field.
    pub fn dma_errors(&self) -> u64 {
        self.dma_errors
    }

    /// `IN` of `width` at `offset` (0 or 1) into the selector/data window.
    pub fn io_read(&mut self, _offset: u16, width: AccessWidth) -> u32 {
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

    /// `OUT` of `value` (masked to `width`) at `offset` (0 or 1) into the selector/data
    /// window; a selection is reported to `callbacks`.
    pub fn io_write(
        &mut self,
        offset: u16,
        width: AccessWidth,
        value: u32,
        callbacks: &mut dyn FwCfgCallbacks,
    ) {
        match (offset, width) {
            // `fw_cfg_comb_write` size 2 → `fw_cfg_select((uint16_t)value)`.
            (Self::REG_SELECTOR, AccessWidth::Word) => self.select(value as u16, callbacks),
            // Size 1 → `fw_cfg_write`, a no-op since QEMU 2.4 ("write support removed"):
            // writable files take DMA writes only.
            (_, AccessWidth::Byte) => self.count_ignored(),
            // A word at the data port is unaligned (QEMU rejects it: `valid.unaligned` is
            // false); dwords fail `fw_cfg_comb_valid`.
            _ => self.count_ignored(),
        }
    }

    /// `IN` of `width` at `offset` (0–7) into the DMA window: the signature bytes
    /// (`fw_cfg_dma_mem_read`). A misaligned read is rejected (0); with DMA off the window
    /// is absent (all ones). Both are counted.
    pub fn dma_read(&mut self, offset: u16, width: AccessWidth) -> u32 {
        if !self.dma_enabled {
            self.count_ignored();
            return width.all_ones();
        }
        let start = usize::from(offset);
        let len = width.bytes() as usize;
        match Self::DMA_SIGNATURE.get(start..start + len) {
            Some(bytes) if start % len == 0 => bytes
                .iter()
                .rev()
                .fold(0, |value, &byte| (value << 8) | u32::from(byte)),
            _ => {
                self.count_ignored();
                0
            }
        }
    }

    /// `OUT` of `value` at `offset` (0–7) into the DMA window. Only dwords at 0 and 4 are
    /// accepted (`fw_cfg_dma_mem_valid`); the write at 4 runs the transfer against `memory`,
    /// reporting a DMA SELECT to `callbacks`.
    pub fn dma_write(
        &mut self,
        offset: u16,
        width: AccessWidth,
        value: u32,
        memory: &mut dyn DmaMemory,
        callbacks: &mut dyn FwCfgCallbacks,
    ) {
        if !self.dma_enabled || width != AccessWidth::Dword {
            self.count_ignored();
            return;
        }
        // The window is big-endian (`DEVICE_BIG_ENDIAN`): the device sees the register's
        // bytes swapped, so firmware writes `SwapBytes32(half)`.
        let half = u64::from(value.swap_bytes());
        match offset {
            Self::REG_DMA_ADDRESS_HIGH => self.dma_address = half << 32,
            Self::REG_DMA_ADDRESS_LOW => {
                self.dma_address |= half;
                self.dma_transfer(memory, callbacks);
            }
            _ => self.count_ignored(),
        }
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
        let files = &self.files.files;
        let mut dir = Vec::with_capacity(4 + files.len() * Self::DIR_ENTRY_BYTES);
        // `add` keeps the count below 0x4000 and each size below 2^32.
        let count = u32::try_from(files.len()).unwrap_or(u32::MAX);
        dir.extend_from_slice(&count.to_be_bytes());
        for (index, file) in files.iter().enumerate() {
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

    /// Selects the item named by `key`, rewinds to its first byte (QEMU `fw_cfg_select`),
    /// then tells `callbacks` — QEMU runs the item's `select_cb` right there.
    fn select(&mut self, key: u16, callbacks: &mut dyn FwCfgCallbacks) {
        self.selector = key;
        self.offset = 0;
        callbacks.selected(key & !Self::KEY_WRITE_CHANNEL, &mut self.files);
    }

    /// Sets the RAM size item (key 0x0003).
    pub fn set_ram_size(&mut self, bytes: u64) {
        self.ram_size_le = bytes.to_le_bytes();
    }

    /// The bytes of the selected item; empty for keys that name nothing.
    fn item(&self) -> &[u8] {
        if self.selector & Self::KEY_ARCH_LOCAL != 0 {
            // x86 QEMU has ACPI, SMBIOS, E820 and HPET items here; smmsim has none.
            return &[];
        }
        match self.selector & Self::KEY_ENTRY_MASK {
            Self::KEY_SIGNATURE => &Self::SIGNATURE,
            Self::KEY_ID => &self.id_le,
            Self::KEY_NB_CPUS => &self.boot_cpus_le,
            Self::KEY_MAX_CPUS => &self.max_cpus_le,
            Self::KEY_RAM_SIZE => &self.ram_size_le,
            Self::KEY_FILE_DIR => &self.directory,
            key => self.files.contents(key).unwrap_or_default(),
        }
    }

    /// The selected item's bytes from the data offset on; empty past its end.
    fn rest_of_item(&self) -> &[u8] {
        let item = self.item();
        usize::try_from(self.offset)
            .ok()
            .and_then(|offset| item.get(offset..))
            .unwrap_or_default()
    }

    /// One byte from the data register: the byte at the offset, which then advances; 0
    /// once past the end, where the offset stays.
    fn read_data_byte(&mut self) -> u8 {
        match self.rest_of_item().first().copied() {
            Some(byte) => {
                self.offset = self.offset.saturating_add(1);
                byte
            }
            None => 0,
        }
    }

    /// Runs the transfer whose descriptor sits at the latched address (module doc, step
    /// 4), then clears the latch.
    fn dma_transfer(&mut self, memory: &mut dyn DmaMemory, callbacks: &mut dyn FwCfgCallbacks) {
        let descriptor_address = std::mem::take(&mut self.dma_address);
        let mut descriptor = [0u8; Self::DMA_DESCRIPTOR_BYTES];
        if memory.read(descriptor_address, &mut descriptor).is_err() {
            // QEMU tries to flag the error and ignores whether that works too.
            let _ = memory.write(descriptor_address, &Self::DMA_CTL_ERROR.to_be_bytes());
            self.dma_errors = self.dma_errors.saturating_add(1);
            return;
        }
        let [c0, c1, c2, c3, l0, l1, l2, l3, a0, a1, a2, a3, a4, a5, a6, a7] = descriptor;
        let control = u32::from_be_bytes([c0, c1, c2, c3]);
        let mut length = u32::from_be_bytes([l0, l1, l2, l3]);
        let mut address = u64::from_be_bytes([a0, a1, a2, a3, a4, a5, a6, a7]);

        if control & Self::DMA_CTL_SELECT != 0 {
            self.select((control >> 16) as u16, callbacks);
        }
        // READ wins over WRITE, WRITE over SKIP; none of them transfers nothing.
        let op = if control & Self::DMA_CTL_READ != 0 {
            DmaOp::Read
        } else if control & Self::DMA_CTL_WRITE != 0 {
            DmaOp::Write
        } else if control & Self::DMA_CTL_SKIP != 0 {
            DmaOp::Skip
        } else {
            length = 0;
            DmaOp::Skip
        };

        let mut status = 0;
        while length > 0 && status & Self::DMA_CTL_ERROR == 0 {
            let available = self.rest_of_item().len();
            let chunk = if available == 0 {
                // Nothing (left) to transfer: READ fills zeros, WRITE fails, SKIP is free.
                let ok = match op {
                    DmaOp::Read => Self::dma_zero_fill(memory, address, length),
                    DmaOp::Write => false,
                    DmaOp::Skip => true,
                };
                if !ok {
                    status |= Self::DMA_CTL_ERROR;
                }
                length
            } else {
                let chunk = u32::try_from(available).map_or(length, |a| a.min(length));
                if !self.dma_copy(op, memory, address, chunk, length) {
                    status |= Self::DMA_CTL_ERROR;
                }
                self.offset = self.offset.saturating_add(chunk);
                chunk
            };
            address = address.wrapping_add(u64::from(chunk));
            length -= chunk;
        }
        if status & Self::DMA_CTL_ERROR != 0 {
            self.dma_errors = self.dma_errors.saturating_add(1);
        }
        // Firmware polls this field until it is 0 (or ERROR).
        let _ = memory.write(descriptor_address, &status.to_be_bytes());
    }

    /// Copies `chunk` bytes between the item (at the data offset) and `address`, in the
    /// direction of `op`; false when the transfer must report ERROR. A WRITE must fit in
    /// the rest of a writable file: `chunk` has to be the whole `length`.
    fn dma_copy(
        &mut self,
        op: DmaOp,
        memory: &mut dyn DmaMemory,
        address: u64,
        chunk: u32,
        length: u32,
    ) -> bool {
        let (Ok(start), Ok(len)) = (usize::try_from(self.offset), usize::try_from(chunk)) else {
            return false;
        };
        match op {
            DmaOp::Read => match start
                .checked_add(len)
                .and_then(|end| self.item().get(start..end))
            {
                Some(bytes) => memory.write(address, bytes).is_ok(),
                None => false,
            },
            DmaOp::Write => {
                if chunk != length || self.selector & Self::KEY_ARCH_LOCAL != 0 {
                    return false;
                }
                let key = self.selector & Self::KEY_ENTRY_MASK;
                if !self.files.file(key).is_some_and(|f| f.writable) {
                    return false;
                }
                let end = start.checked_add(len);
                match self
                    .files
                    .contents_mut(key)
                    .zip(end)
                    .and_then(|(bytes, end)| bytes.get_mut(start..end))
                {
                    Some(dst) => memory.read(address, dst).is_ok(),
                    None => false,
                }
            }
            DmaOp::Skip => true,
        }
    }

    /// Writes `length` zero bytes at `address`, in chunks; false if any chunk failed
    /// (QEMU `dma_memory_set` carries on and reports the failure at the end).
    fn dma_zero_fill(memory: &mut dyn DmaMemory, address: u64, length: u32) -> bool {
        let zeros = [0u8; Self::ZERO_CHUNK_BYTES];
        let mut ok = true;
        let mut done: u64 = 0;
        let total = u64::from(length);
        while done < total {
            let len = (total - done).min(Self::ZERO_CHUNK_BYTES as u64) as usize;
            let bytes = zeros.get(..len).unwrap_or_default();
            ok &= memory.write(address.wrapping_add(done), bytes).is_ok();
            done += len as u64;
        }
        ok
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
        offset: u16,
        width: AccessWidth,
        _effects: &mut Vec<Effect>,
    ) -> u32 {
        self.io_read(offset, width)
    }

    fn port_write(
        &mut self,
        _ctx: &AccessContext,
        offset: u16,
        width: AccessWidth,
        value: u32,
        _effects: &mut Vec<Effect>,
    ) {
        self.io_write(offset, width, value, &mut NoCallbacks);
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

    /// Guest memory for DMA tests: `size` bytes from address 0, nothing above.
    struct TestMemory(Vec<u8>);

    impl DmaMemory for TestMemory {
        fn read(&mut self, address: u64, buf: &mut [u8]) -> Result<(), DmaError> {
            let err = DmaError {
                address,
                len_bytes: buf.len(),
            };
            let start = usize::try_from(address).map_err(|_| err)?;
            let src = self.0.get(start..start + buf.len()).ok_or(err)?;
            buf.copy_from_slice(src);
            Ok(())
        }
        fn write(&mut self, address: u64, bytes: &[u8]) -> Result<(), DmaError> {
            let err = DmaError {
                address,
                len_bytes: bytes.len(),
            };
            let start = usize::try_from(address).map_err(|_| err)?;
            let dst = self.0.get_mut(start..start + bytes.len()).ok_or(err)?;
            dst.copy_from_slice(bytes);
            Ok(())
        }
    }

    /// Records every key it hears of.
    #[derive(Default)]
    struct Recorder(Vec<u16>);

    impl FwCfgCallbacks for Recorder {
        fn selected(&mut self, key: u16, _files: &mut FwCfgFiles) {
            self.0.push(key);
        }
    }

    const DESC: u64 = 0x100;
    const BUF: u64 = 0x200;

    fn dma_device() -> FwCfg {
        let mut dev = FwCfg::new(2, 8);
        dev.set_dma_enabled(true);
        dev
    }

    /// Puts a descriptor at `DESC` and starts it the way edk2 does: high half, low half,
    /// each byte-swapped.
    fn run_dma(dev: &mut FwCfg, mem: &mut TestMemory, control: u32, length: u32, address: u64) {
        run_dma_with(dev, mem, control, length, address, &mut NoCallbacks);
    }

    fn run_dma_with(
        dev: &mut FwCfg,
        mem: &mut TestMemory,
        control: u32,
        length: u32,
        address: u64,
        callbacks: &mut dyn FwCfgCallbacks,
    ) {
        let mut desc = Vec::new();
        desc.extend_from_slice(&control.to_be_bytes());
        desc.extend_from_slice(&length.to_be_bytes());
        desc.extend_from_slice(&address.to_be_bytes());
        mem.write(DESC, &desc).unwrap();
        let high = ((DESC >> 32) as u32).swap_bytes();
        let low = (DESC as u32).swap_bytes();
        dev.dma_write(
            FwCfg::REG_DMA_ADDRESS_HIGH,
            AccessWidth::Dword,
            high,
            mem,
            callbacks,
        );
        dev.dma_write(
            FwCfg::REG_DMA_ADDRESS_LOW,
            AccessWidth::Dword,
            low,
            mem,
            callbacks,
        );
    }

    fn control_field(mem: &TestMemory) -> u32 {
        let at = DESC as usize;
        u32::from_be_bytes(mem.0[at..at + 4].try_into().unwrap())
    }

    fn select_read(key: u16) -> u32 {
        (u32::from(key) << 16) | FwCfg::DMA_CTL_SELECT | FwCfg::DMA_CTL_READ
    }

    fn select_write(key: u16) -> u32 {
        (u32::from(key) << 16) | FwCfg::DMA_CTL_SELECT | FwCfg::DMA_CTL_WRITE
    }

    #[test]
    fn id_reports_dma_while_enabled() {
        let mut dev = dma_device();
        select(&mut dev, FwCfg::KEY_ID);
        assert_eq!(read(&mut dev, 4), [3, 0, 0, 0]);
        dev.set_dma_enabled(false);
        select(&mut dev, FwCfg::KEY_ID);
        assert_eq!(read(&mut dev, 4), [1, 0, 0, 0]);
    }

    #[test]
    fn dma_window_reads_the_signature() {
        let mut dev = dma_device();
        let dword = dev.dma_read(0, AccessWidth::Dword);
        assert_eq!(dword.to_le_bytes(), *b"QEMU");
        assert_eq!(dev.dma_read(4, AccessWidth::Dword).to_le_bytes(), *b" CFG");
        assert_eq!(
            dev.dma_read(6, AccessWidth::Word),
            u32::from(u16::from_le_bytes(*b"FG"))
        );
        assert_eq!(dev.dma_read(7, AccessWidth::Byte), u32::from(b'G'));
        assert_eq!(dev.dma_read(6, AccessWidth::Dword), 0, "misaligned");
        assert_eq!(dev.ignored_accesses(), 1);
        let mut off = FwCfg::new(1, 1);
        assert_eq!(off.dma_read(0, AccessWidth::Byte), 0xFF);
    }

    #[test]
    fn dma_select_and_read_a_file_then_zeros_past_its_end() {
        let mut dev = dma_device();
        let sel = dev.add_file("opt/x", vec![1, 2, 3]).unwrap();
        let mut mem = TestMemory(vec![0xAA; 0x400]);
        run_dma(&mut dev, &mut mem, select_read(sel), 5, BUF);
        assert_eq!(control_field(&mem), 0);
        assert_eq!(mem.0[0x200..0x206], [1, 2, 3, 0, 0, 0xAA]);
        // A READ without SELECT goes on from the offset (past the end: zeros).
        run_dma(&mut dev, &mut mem, FwCfg::DMA_CTL_READ, 2, 0x300);
        assert_eq!(mem.0[0x300..0x303], [0, 0, 0xAA]);
        assert_eq!(dev.dma_errors(), 0);
    }

    #[test]
    fn dma_skip_moves_the_offset_and_none_of_the_ops_transfers_nothing() {
        let mut dev = dma_device();
        let sel = dev.add_file("opt/x", vec![1, 2, 3, 4]).unwrap();
        let mut mem = TestMemory(vec![0; 0x400]);
        let skip = (u32::from(sel) << 16) | FwCfg::DMA_CTL_SELECT | FwCfg::DMA_CTL_SKIP;
        run_dma(&mut dev, &mut mem, skip, 2, 0);
        assert_eq!(control_field(&mem), 0);
        assert_eq!(read(&mut dev, 2), [3, 4]);
        // SELECT alone: the selection happens, no bytes move.
        run_dma(
            &mut dev,
            &mut mem,
            (u32::from(sel) << 16) | FwCfg::DMA_CTL_SELECT,
            4,
            BUF,
        );
        assert_eq!(mem.0[0x200..0x204], [0; 4]);
        assert_eq!(read(&mut dev, 1), [1]);
    }

    #[test]
    fn dma_write_into_a_writable_file() {
        let mut dev = dma_device();
        let sel = dev.add_writable_file("etc/w", vec![0; 8]).unwrap();
        let mut mem = TestMemory(vec![0; 0x400]);
        mem.write(BUF, &[9, 8, 7, 6, 5, 4, 3, 2]).unwrap();
        run_dma(&mut dev, &mut mem, select_write(sel), 8, BUF);
        assert_eq!(control_field(&mem), 0);
        assert_eq!(
            dev.files().contents(sel),
            Some(&[9, 8, 7, 6, 5, 4, 3, 2][..])
        );
        select(&mut dev, sel);
        assert_eq!(read(&mut dev, 2), [9, 8]);
    }

    #[test]
    fn dma_write_fails_on_read_only_items_and_past_the_end() {
        let mut dev = dma_device();
        let ro = dev.add_file("etc/ro", vec![0; 8]).unwrap();
        let rw = dev.add_writable_file("etc/rw", vec![0; 4]).unwrap();
        let mut mem = TestMemory(vec![0x55; 0x400]);
        run_dma(&mut dev, &mut mem, select_write(ro), 4, BUF);
        assert_eq!(control_field(&mem), FwCfg::DMA_CTL_ERROR);
        assert_eq!(dev.files().contents(ro), Some(&[0; 8][..]));
        // Longer than the file: ERROR, and nothing is written.
        run_dma(&mut dev, &mut mem, select_write(rw), 5, BUF);
        assert_eq!(control_field(&mem), FwCfg::DMA_CTL_ERROR);
        assert_eq!(dev.files().contents(rw), Some(&[0; 4][..]));
        // A fixed item and a key naming nothing are not writable either.
        run_dma(&mut dev, &mut mem, select_write(FwCfg::KEY_NB_CPUS), 1, BUF);
        assert_eq!(control_field(&mem), FwCfg::DMA_CTL_ERROR);
        run_dma(&mut dev, &mut mem, select_write(0x3000), 1, BUF);
        assert_eq!(control_field(&mem), FwCfg::DMA_CTL_ERROR);
        assert_eq!(dev.dma_errors(), 4);
        // The item is still readable and unchanged.
        select(&mut dev, FwCfg::KEY_NB_CPUS);
        assert_eq!(read(&mut dev, 2), [2, 0]);
    }

    #[test]
    fn dma_with_an_unreadable_descriptor_or_buffer_reports_error() {
        let mut dev = dma_device();
        let sel = dev.add_file("opt/x", vec![1; 16]).unwrap();
        let mut mem = TestMemory(vec![0; 0x400]);
        // Buffer past the end of memory.
        run_dma(&mut dev, &mut mem, select_read(sel), 16, 0x3F8);
        assert_eq!(control_field(&mem), FwCfg::DMA_CTL_ERROR);
        // Descriptor past the end of memory: nothing can be written back either.
        let mut tiny = TestMemory(vec![0; 8]);
        dev.dma_write(
            4,
            AccessWidth::Dword,
            0x100u32.swap_bytes(),
            &mut tiny,
            &mut NoCallbacks,
        );
        assert_eq!(tiny.0, [0; 8]);
        assert_eq!(dev.dma_errors(), 2);
    }

    #[test]
    fn the_address_latch_clears_after_each_transfer() {
        let mut dev = dma_device();
        let sel = dev.add_file("opt/x", vec![7]).unwrap();
        let mut mem = TestMemory(vec![0; 0x400]);
        run_dma(&mut dev, &mut mem, select_read(sel), 1, BUF);
        assert_eq!(mem.0[0x200], 7);
        // SeaBIOS writes only the low half; that works because the latch is back at 0.
        let mut desc = Vec::new();
        desc.extend_from_slice(&select_read(sel).to_be_bytes());
        desc.extend_from_slice(&1u32.to_be_bytes());
        desc.extend_from_slice(&0x210u64.to_be_bytes());
        mem.write(0x180, &desc).unwrap();
        dev.dma_write(
            4,
            AccessWidth::Dword,
            0x180u32.swap_bytes(),
            &mut mem,
            &mut NoCallbacks,
        );
        assert_eq!(mem.0[0x210], 7);
    }

    #[test]
    fn odd_dma_window_writes_are_dropped() {
        let mut dev = dma_device();
        let mut mem = TestMemory(vec![0; 0x400]);
        dev.dma_write(0, AccessWidth::Word, 1, &mut mem, &mut NoCallbacks);
        dev.dma_write(2, AccessWidth::Dword, 1, &mut mem, &mut NoCallbacks);
        dev.dma_write(4, AccessWidth::Byte, 1, &mut mem, &mut NoCallbacks);
        assert_eq!(dev.ignored_accesses(), 3);
        assert_eq!(dev.dma_errors(), 0);
    }

    #[test]
    fn callbacks_hear_port_and_dma_selections_without_bit_14() {
        let mut dev = dma_device();
        let sel = dev.add_file("opt/x", vec![1]).unwrap();
        let mut rec = Recorder::default();
        dev.io_write(
            0,
            AccessWidth::Word,
            u32::from(sel | FwCfg::KEY_WRITE_CHANNEL),
            &mut rec,
        );
        let mut mem = TestMemory(vec![0; 0x400]);
        run_dma_with(
            &mut dev,
            &mut mem,
            select_read(FwCfg::KEY_ID),
            4,
            BUF,
            &mut rec,
        );
        run_dma_with(&mut dev, &mut mem, FwCfg::DMA_CTL_READ, 4, BUF, &mut rec);
        assert_eq!(rec.0, [sel, FwCfg::KEY_ID]);
    }

    #[test]
    fn data_port_byte_writes_never_reach_a_writable_file() {
        let mut dev = dma_device();
        let sel = dev.add_writable_file("etc/w", vec![0; 2]).unwrap();
        select(&mut dev, sel);
        dev.io_write(FwCfg::REG_DATA, AccessWidth::Byte, 0x41, &mut NoCallbacks);
        assert_eq!(dev.files().contents(sel), Some(&[0, 0][..]));
        assert_eq!(dev.ignored_accesses(), 1);
    }
}
