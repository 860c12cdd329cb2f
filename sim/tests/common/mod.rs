//! Helpers shared by smmsim's integration tests: temporary files, running the binary,
//! running an image in-process with its console captured.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use smmsim::{FirmwareImage, Machine, MachineConfig, RunReport};

/// A file in the temporary directory, removed when dropped.
pub struct TempFile(pub PathBuf);

impl TempFile {
    /// Writes `bytes` to a fresh file whose name ends in `suffix`.
    pub fn with_bytes(suffix: &str, bytes: &[u8]) -> TempFile {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("smmsim-test-{}-{n}{suffix}", std::process::id()));
        std::fs::write(&path, bytes).expect("the temporary directory is writable");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs the `smmsim` binary with `args`.
pub fn smmsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smmsim"))
        .args(args)
        .output()
        .expect("the smmsim binary runs")
}

/// A 64 KiB image whose reset vector holds `code` (at most 16 bytes), the rest HLT.
pub fn reset_vector_image(code: &[u8]) -> Vec<u8> {
    let mut image = vec![0xF4; 64 * 1024];
    image[0xFFF0..0xFFF0 + code.len()].copy_from_slice(code);
    image
}

/// A console sink tests can read back.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("console lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs a built-in image in-process; returns its console bytes and the report.
pub fn run_builtin(name: &str, config: MachineConfig) -> (Vec<u8>, RunReport) {
    let image = FirmwareImage::builtin(name).expect("a built-in image");
    let console = Captured::default();
    let mut machine =
        Machine::new(config, image, Box::new(console.clone())).expect("machine builds");
    let report = machine.run();
    let bytes = console.0.lock().expect("console lock").clone();
    (bytes, report)
}

/// QEMU's default RAM size (`-m 128M`): recorded outputs and differential runs use it, since
/// the `boot` image places TSEG at the top of RAM and prints where.
pub const QEMU_RAM_BYTES: u64 = 128 << 20;

/// A machine like QEMU's default q35 with `cpus` CPUs.
pub fn qemu_like(cpus: u32) -> MachineConfig {
    MachineConfig {
        cpus,
        max_cpus: cpus,
        ram_bytes: QEMU_RAM_BYTES,
        ..MachineConfig::default()
    }
}

/// The workspace's `firmware-images/` folder.
pub fn firmware_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../firmware-images")
}

/// The QEMU binary the differential tests compare against.
pub const QEMU: &str = "qemu-system-x86_64";

/// Fails the test, saying what to install, when QEMU is missing (tests never skip silently).
pub fn require_qemu() {
    if Command::new(QEMU).arg("--version").output().is_err() {
        panic!("{QEMU} is not installed; install it with `apt-get install -y qemu-system-x86`");
    }
}

/// A QEMU command for the reference machine: q35 with SMM, 128 MiB, no default devices or
/// display, `bios` as firmware, its debug console (port 0x402) into `console` and the
/// debug-exit device at 0xF4, as PLATFORM.md's ports say. Callers add `-smp` and the rest.
pub fn qemu_q35(bios: &std::path::Path, console: &std::path::Path) -> Command {
    require_qemu();
    let mut command = Command::new(QEMU);
    command
        .args([
            "-machine",
            "q35,smm=on",
            "-m",
            "128M",
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-bios",
        ])
        .arg(bios)
        .arg("-debugcon")
        .arg(format!("file:{}", console.display()))
        .args([
            "-global",
            "isa-debugcon.iobase=0x402",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=4",
        ]);
    command
}
