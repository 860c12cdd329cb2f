//! Port 0xCF9: a hard reset restarts every CPU from the reset vector with memory kept.

mod common;

use common::Captured;
use smmsim::{FirmwareImage, Machine, MachineConfig, RunEnd};

/// First boot: mark RAM and hard-reset; second boot: see the mark and exit with 7.
fn reset_twice_image() -> Vec<u8> {
    let code: &[u8] = &[
        0x31, 0xC0, //                   xor ax, ax
        0x8E, 0xD8, //                   mov ds, ax
        0x80, 0x3E, 0x00, 0x06, 0x01, // cmp byte [0x600], 1
        0x74, 0x0C, //                   je second
        0xC6, 0x06, 0x00, 0x06, 0x01, // mov byte [0x600], 1
        0xB0, 0x06, //                   mov al, 6 (hard reset)
        0xBA, 0xF9, 0x0C, //             mov dx, 0xCF9
        0xEE, //                         out dx, al
        0xF4, //                         hlt (not reached)
        0xB0, 0x07, //                   second: mov al, 7
        0xE6, 0xF4, //                   out 0xF4, al
    ];
    let mut image = vec![0xF4; 64 * 1024];
    image[0xFF00..0xFF00 + code.len()].copy_from_slice(code);
    image[0xFFF0..0xFFF5].copy_from_slice(&[0xEA, 0x00, 0xFF, 0x00, 0xF0]); // jmp F000:FF00
    image
}

#[test]
fn a_hard_reset_restarts_every_cpu_at_the_reset_vector_keeping_memory() {
    let image = FirmwareImage::from_vec("reset-twice", reset_twice_image()).expect("64 KiB");
    let config = MachineConfig {
        cpus: 2,
        max_cpus: 2,
        ..MachineConfig::default()
    };
    let mut machine = Machine::new(config, image, Box::new(Captured::default())).expect("builds");
    let report = machine.run();
    assert_eq!(
        report.end,
        RunEnd::DebugExit {
            status: (7 << 1) | 1
        }
    );
    assert_eq!(machine.cpu().smm.smbase, 0x3_0000);
}
