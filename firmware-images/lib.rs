//! The firmware images smmsim runs, built from the NASM sources in `src/` and embedded.
//!
//! Each image is a flat 64 KiB binary meant for the top of the 32-bit address space
//! (0xFFFF0000–0xFFFFFFFF, aliased at 0xF0000–0xFFFFF), with its reset vector, a far jump
//! (opcode 0xEA), at offset 0xFFF0. The same bytes also boot in QEMU with
//! `qemu-system-x86_64 -machine q35 -bios NAME.bin`, which is how `expected/NAME.txt` and
//! `expected/NAME.status` were produced: the console output and exit status smmsim must match.
//!
//! The `.bin` files are committed next to their sources so that building the workspace does
//! not need NASM; `build.sh` regenerates them and `build.sh --check` (run by the
//! `images_match_sources` test) proves they match the sources.

/// A firmware image compiled into the crate.
///
/// Why: smmsim selects built-in firmware by name, so it needs the bytes together
/// with a name to look them up by and a one-line description to list them with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinImage {
    /// The name the image is selected by; also its file stem (`src/<name>.asm`, `<name>.bin`).
    pub name: &'static str,
    /// The image bytes exactly as assembled: 64 KiB, reset vector at offset 0xFFF0.
    pub bytes: &'static [u8],
    /// One line saying what the image does, for listings and error messages.
    pub summary: &'static str,
}

/// Every built-in image, in a stable order (the default image first).
///
/// Why: the simulator, the benches and the differential tests against QEMU all need the same
/// set of images without reading files at run time.
pub const IMAGES: &[BuiltinImage] = &[
    BuiltinImage {
        name: "hello",
        bytes: include_bytes!("hello.bin"),
        summary: "prints \"Hello from smmsim firmware!\" and exits with 0",
    },
    BuiltinImage {
        name: "isa-selftest",
        bytes: include_bytes!("isa-selftest.bin"),
        summary: "prints the results of the x86 instruction families with known operands, in \
                  real mode and in 32-bit protected mode, for line-by-line comparison with QEMU",
    },
    BuiltinImage {
        name: "mips-loop",
        bytes: include_bytes!("mips-loop.bin"),
        summary: "speed benchmark: 10 million iterations of an 8-instruction loop in 32-bit \
                  protected mode (80,000,179 instructions from reset), then \"loop done\"",
    },
    BuiltinImage {
        name: "mp-hello",
        bytes: include_bytes!("mp-hello.bin"),
        summary: "multi-processor bring-up: reads the CPU count from fw_cfg, wakes the APs with \
                  INIT-SIPI-SIPI, each AP records its APIC ID, then prints \"cpus: N\" and the \
                  sorted APIC IDs",
    },
    BuiltinImage {
        name: "mp-loop",
        bytes: include_bytes!("mp-loop.bin"),
        summary: "multi-processor speed benchmark: wakes the APs like mp-hello, then every CPU \
                  runs 5 million iterations of the mips-loop 8-instruction loop on its own \
                  cache line (40,000,000 loop instructions per CPU); the BSP waits for the APs \
                  and prints \"mp-loop done: N cpus\"",
    },
    BuiltinImage {
        name: "boot",
        bytes: include_bytes!("boot.bin"),
        summary: "SMM bring-up as OVMF does it on q35: negotiates broadcast SMI (and CPU \
                  hot-plug/unplug) over fw_cfg, sets up TSEG, relocates every CPU's SMBASE \
                  into TSEG one at a time (BSP last), installs per-CPU SMI entry stubs, locks \
                  SMRAM and the default-SMBASE window, optionally serves CPU hot-add and \
                  hot-remove events with the strategy named in the opt/smmsim/* fw_cfg files \
                  (smbase-smram, controller, formula, max-cpus), then takes one broadcast SMI \
                  in which every online CPU reports its SMBASE; prints the features, TSEG and \
                  one \"cpu APIC-ID smbase SMBASE\" line per CPU. Up to 4096 possible CPUs \
                  (as many as TSEG has 8 KiB tiles for: 2041 with 16 MiB), in x2APIC mode \
                  above 255",
    },
];

/// The image smmsim runs when none is named.
///
/// Why: a run that names no image should show what smmsim is for: the platform brought up
/// as OVMF does it, with every CPU's SMBASE relocated into TSEG.
pub const DEFAULT_IMAGE: &str = "boot";

/// Looks up a built-in image by its exact name.
///
/// Why: the command line and scenario files name images; `None` lets the caller report the
/// unknown name together with the list of known ones (see [`IMAGES`]).
pub fn find(name: &str) -> Option<&'static BuiltinImage> {
    IMAGES.iter().find(|image| image.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_image_is_64_kib_with_a_far_jump_at_the_reset_vector() {
        for image in IMAGES {
            assert_eq!(image.bytes.len(), 64 * 1024, "{} size", image.name);
            assert_eq!(
                image.bytes[0xFFF0], 0xEA,
                "{} reset vector opcode",
                image.name
            );
        }
    }

    #[test]
    fn names_are_unique_and_the_default_exists() {
        for (i, image) in IMAGES.iter().enumerate() {
            assert!(
                IMAGES[i + 1..].iter().all(|other| other.name != image.name),
                "duplicate image name {}",
                image.name
            );
        }
        assert!(find(DEFAULT_IMAGE).is_some(), "the default image is listed");
    }

    #[test]
    fn find_returns_the_named_image_and_none_for_unknown_names() {
        for image in IMAGES {
            let found = find(image.name).expect("listed image is found");
            assert_eq!(found.name, image.name);
            assert_eq!(found, image);
        }
        assert_eq!(find(DEFAULT_IMAGE).map(|image| image.name), Some("boot"));
        assert!(find("no-such-image").is_none());
        assert!(find("").is_none());
        assert!(find("HELLO").is_none(), "names are case-sensitive");
    }
}
