//! Firmware images: loading, checking and holding the bytes the machine maps below 4 GiB.
//!
//! An image given as a file is memory-mapped read-only, never copied, so a 16 MiB image costs
//! page-cache pages shared with every other run of it. Built-in images are static bytes from
//! the `smmsim-firmware` crate.
//!
//! QEMU accepts a `-bios` image only if its size is a non-zero multiple of 64 KiB
//! (`hw/i386/x86.c`, `x86_bios_rom_init`); smmsim asks for a power of two from 64 KiB to
//! 16 MiB, which every image QEMU maps at the top of the 4 GiB space satisfies in practice and
//! which keeps the reset vector at a fixed offset from the end.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

/// The smallest image accepted (QEMU's granule for `-bios`).
pub const MIN_IMAGE_BYTES: usize = 64 * 1024;
/// The largest image accepted: 16 MiB, the flash size of the largest OVMF builds.
pub const MAX_IMAGE_BYTES: usize = 16 * 1024 * 1024;

/// Why a firmware image could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be opened or mapped.
    #[error("cannot read firmware image {path}")]
    Unreadable {
        /// The file named.
        path: PathBuf,
        /// What the host said.
        #[source]
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("firmware image {name} is empty")]
    Empty {
        /// The image's path or name.
        name: String,
    },
    /// The size is not a power of two between the limits.
    #[error(
        "firmware image {name} is {bytes} bytes; it must be a power of two from 64 KiB to 16 MiB"
    )]
    BadSize {
        /// The image's path or name.
        name: String,
        /// Its size.
        bytes: usize,
    },
    /// No built-in image has this name.
    #[error("no built-in firmware image is called {name:?} (built-in: {known})")]
    UnknownBuiltin {
        /// The name asked for.
        name: String,
        /// The names that exist, comma separated.
        known: String,
    },
}

enum Storage {
    Static(&'static [u8]),
    Mapped(Mmap),
    Owned(Vec<u8>),
}

/// A checked firmware image and where its bytes live.
pub struct FirmwareImage {
    name: String,
    storage: Storage,
}

impl FirmwareImage {
    /// Maps the image file at `path` read-only and checks its size.
    pub fn from_file(path: &Path) -> Result<FirmwareImage, ImageError> {
        let unreadable = |source| ImageError::Unreadable {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(unreadable)?;
        let bytes = file.metadata().map_err(unreadable)?.len();
        let name = path.display().to_string();
        if bytes == 0 {
            return Err(ImageError::Empty { name });
        }
        if bytes > MAX_IMAGE_BYTES as u64 {
            return Err(ImageError::BadSize {
                name,
                bytes: bytes as usize,
            });
        }
        // SAFETY: the mapping is read-only. A file truncated by another process while mapped
        // would fault on access; images are not rewritten while a run uses them, and that is
        // the documented contract of `--firmware`.
        let map = unsafe { Mmap::map(&file) }.map_err(unreadable)?;
        Self::checked(name, Storage::Mapped(map))
    }

    /// A built-in image by name (see `smmsim_firmware::IMAGES`).
    pub fn builtin(name: &str) -> Result<FirmwareImage, ImageError> {
        match smmsim_firmware::find(name) {
            Some(image) => Self::checked(image.name.to_owned(), Storage::Static(image.bytes)),
            None => Err(ImageError::UnknownBuiltin {
                name: name.to_owned(),
                known: smmsim_firmware::IMAGES
                    .iter()
                    .map(|image| image.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// An image from bytes in memory (tests, generated images).
    pub fn from_vec(name: &str, bytes: Vec<u8>) -> Result<FirmwareImage, ImageError> {
        Self::checked(name.to_owned(), Storage::Owned(bytes))
    }

    fn checked(name: String, storage: Storage) -> Result<FirmwareImage, ImageError> {
        let image = FirmwareImage { name, storage };
        let bytes = image.bytes().len();
        if bytes == 0 {
            return Err(ImageError::Empty { name: image.name });
        }
        if !bytes.is_power_of_two() || !(MIN_IMAGE_BYTES..=MAX_IMAGE_BYTES).contains(&bytes) {
            return Err(ImageError::BadSize {
                name: image.name,
                bytes,
            });
        }
        Ok(image)
    }

    /// The image's file path or built-in name, for messages and reports.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The image's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Static(bytes) => bytes,
            Storage::Mapped(map) => map,
            Storage::Owned(bytes) => bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_outside_the_rules_are_refused_with_the_size() {
        for bytes in [1usize, 4096, 96 * 1024, 32 << 20] {
            let err = FirmwareImage::from_vec("t", vec![0; bytes])
                .err()
                .expect("bad size");
            assert!(err.to_string().contains(&bytes.to_string()), "{err}");
        }
        assert!(matches!(
            FirmwareImage::from_vec("t", vec![]),
            Err(ImageError::Empty { .. })
        ));
        assert!(FirmwareImage::from_vec("t", vec![0; 128 * 1024]).is_ok());
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = FirmwareImage::from_file(Path::new("/nonexistent/fw.bin"))
            .err()
            .expect("missing");
        assert!(err.to_string().contains("/nonexistent/fw.bin"));
    }

    #[test]
    fn unknown_builtins_list_the_known_ones() {
        let err = FirmwareImage::builtin("no-such-image")
            .err()
            .expect("unknown");
        assert!(err.to_string().contains("hello"), "{err}");
    }
}
