//! Every built-in image, run in smmsim, prints exactly what QEMU printed when the image was
//! built (`firmware-images/expected/NAME.txt` and `.status`), so a regression shows even
//! before the QEMU differential test runs.

mod common;

use common::{firmware_dir, qemu_like, run_builtin};
use smmsim::{MachineConfig, RunEnd};

#[test]
fn every_builtin_image_matches_its_recorded_qemu_output() {
    for image in smmsim_firmware::IMAGES {
        let expected_dir = firmware_dir().join("expected");
        // Multi-CPU images record one output per CPU count; this test boots one CPU.
        let stem = if expected_dir.join(format!("{}.txt", image.name)).exists() {
            image.name.to_owned()
        } else {
            format!("{}-smp1", image.name)
        };
        let expected = std::fs::read(expected_dir.join(format!("{stem}.txt")))
            .unwrap_or_else(|e| panic!("{}: expected output missing: {e}", image.name));
        let status: u32 = std::fs::read_to_string(expected_dir.join(format!("{stem}.status")))
            .unwrap_or_else(|e| panic!("{}: expected status missing: {e}", image.name))
            .trim()
            .parse()
            .expect("a status number");
        let (console, report) = run_builtin(image.name, qemu_like(1));
        assert_eq!(
            String::from_utf8_lossy(&console),
            String::from_utf8_lossy(&expected),
            "{}: console",
            image.name
        );
        assert_eq!(
            report.end,
            RunEnd::DebugExit { status },
            "{}: ending",
            image.name
        );
    }
}

#[test]
fn deterministic_runs_repeat_exactly() {
    let (first_console, first) = run_builtin("hello", MachineConfig::default());
    let (second_console, second) = run_builtin("hello", MachineConfig::default());
    assert_eq!(first_console, second_console);
    assert_eq!(first.cycles, second.cycles);
    assert_eq!(first.cpu.instructions, second.cpu.instructions);
}
