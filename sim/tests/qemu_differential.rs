//! Differential tests: each built-in firmware image must print byte-identical debug-console
//! output and end with the same exit status under smmsim and under QEMU
//! (`qemu-system-x86_64 -machine q35,smm=on -m 128M`), the reference machine smmsim models;
//! smmsim runs with `--profile qemu` and the same RAM size.
//!
//! QEMU is required: without it these tests fail and say what to install.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{qemu_like, qemu_q35, run_builtin, TempFile};
use smmsim::cpu::smm::Profile;
use smmsim::{MachineConfig, RunEnd};

/// Longest a QEMU run may take before the test calls it hung.
const QEMU_TIMEOUT: Duration = Duration::from_secs(120);

/// Console bytes and exit status of `image` under QEMU.
fn run_qemu(image: &[u8], cpus: u32) -> (Vec<u8>, i32) {
    let bios = TempFile::with_bytes(".bin", image);
    let console = TempFile::with_bytes(".out", &[]);
    let mut child = qemu_q35(&bios.0, &console.0)
        .args(["-smp", &cpus.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("QEMU starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("QEMU can be waited for") {
            break status;
        }
        if started.elapsed() > QEMU_TIMEOUT {
            let _ = child.kill();
            panic!("QEMU did not finish within {QEMU_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::fs::read(&console.0).expect("QEMU wrote the console file");
    (output, status.code().expect("QEMU exited normally"))
}

fn compare(name: &str, cpus: u32) {
    let image = smmsim_firmware::find(name).expect("built-in image").bytes;
    let (qemu_console, qemu_status) = run_qemu(image, cpus);
    let config = MachineConfig {
        profile: Profile::Qemu,
        ..qemu_like(cpus)
    };
    let (console, report) = run_builtin(name, config);
    let name = format!("{name} -smp {cpus}");
    let status = match report.end {
        RunEnd::DebugExit { status } => (status & 0xFF) as i32,
        other => panic!("{name}: smmsim ended with {other:?}, QEMU with status {qemu_status}"),
    };
    if console != qemu_console {
        let ours = String::from_utf8_lossy(&console);
        let theirs = String::from_utf8_lossy(&qemu_console);
        let first = ours.lines().zip(theirs.lines()).position(|(a, b)| a != b);
        panic!(
            "{name}: console output differs (first differing line {first:?})\n--- smmsim\n{ours}\n--- qemu\n{theirs}"
        );
    }
    assert_eq!(status, qemu_status, "{name}: exit status");
    assert_eq!(
        report.cpu.unsupported, 0,
        "{name}: {:?}",
        report.cpu.unsupported_examples
    );
}

#[test]
fn every_builtin_image_matches_qemu() {
    for image in smmsim_firmware::IMAGES {
        compare(image.name, 1);
    }
}

#[test]
fn boot_relocates_every_smbase_as_qemu_does() {
    for cpus in [2, 4, 16, 64] {
        compare("boot", cpus);
    }
}

#[test]
fn mp_hello_matches_qemu_with_many_cpus() {
    for cpus in [2, 4, 8, 64] {
        compare("mp-hello", cpus);
    }
}
