//! Hot-add, eject and refused actions at the machine level, with tiny hand-assembled guests
//! (the firmware-driven flows are in `scenarios.rs`).

mod common;

use common::Captured;
use smmsim::machine::{MachineAction, RunEnd};
use smmsim::recorder::EventConsumer;
use smmsim::{FirmwareImage, Machine, MachineConfig};
use smmsim_traces::{Event, EventKind};

/// A 64 KiB image: `code` at its start (CS base 0xFFFF0000, IP 0) and a jump there from the
/// reset vector.
fn image(code: &[u8]) -> FirmwareImage {
    let mut bytes = vec![0xF4; 64 * 1024];
    bytes[..code.len()].copy_from_slice(code);
    // jmp near 0x0000 from IP 0xFFF0 (next IP 0xFFF3): rel16 = 0x000D.
    bytes[0xFFF0..0xFFF3].copy_from_slice(&[0xE9, 0x0D, 0x00]);
    FirmwareImage::from_vec("test", bytes).expect("a valid image")
}

/// `cli; hlt; jmp $-1`: the BSP stops for good.
const HALT_FOREVER: &[u8] = &[0xFA, 0xF4, 0xEB, 0xFD];

/// Polls the hot-plug block until CPU 1 is present, ejects it, then halts:
/// ```text
///   mov dx, 0xCD8 ; mov eax, 1 ; out dx, eax      select CPU 1
/// .poll:
///   mov dx, 0xCDC ; in al, dx ; test al, 1 ; jz .poll
///   mov al, 8 ; out dx, al                        eject
///   cli ; hlt ; jmp $-1
/// ```
const EJECT_CPU1_WHEN_PRESENT: &[u8] = &[
    0xBA, 0xD8, 0x0C, 0x66, 0xB8, 0x01, 0x00, 0x00, 0x00, 0x66, 0xEF, // select 1
    0xBA, 0xDC, 0x0C, 0xEC, 0xA8, 0x01, 0x74, 0xF8, // poll
    0xB0, 0x08, 0xEE, // eject
    0xFA, 0xF4, 0xEB, 0xFD,
];

fn machine(code: &[u8], cpus: u32, max_cpus: u32) -> Machine {
    let config = MachineConfig {
        cpus,
        max_cpus,
        ram_bytes: 64 << 20,
        max_cycles: 50_000_000,
        ..MachineConfig::default()
    };
    Machine::new(config, image(code), Box::new(Captured::default())).expect("machine builds")
}

#[derive(Default)]
struct Kinds(Vec<(u64, u32, String)>);

impl EventConsumer for Kinds {
    fn consume(&mut self, events: &[Event]) {
        for event in events {
            let name = match &event.kind {
                EventKind::HotAdd { apic_id } => format!("hot_add {apic_id}"),
                EventKind::CpuEjected { apic_id } => format!("cpu_ejected {apic_id}"),
                EventKind::HotRemove { apic_id } => format!("hot_remove {apic_id}"),
                other => other.kind_name().to_owned(),
            };
            self.0.push((event.cycle.0, event.cpu, name));
        }
    }
}

#[test]
fn a_hot_added_cpu_appears_at_its_cycle_in_reset_state() {
    let mut machine = machine(HALT_FOREVER, 1, 4);
    machine.schedule(10_000, MachineAction::CpuAdd { apic_id: 2 });
    let mut kinds = Kinds::default();
    let report = machine.run_observed(&mut kinds);
    assert!(
        matches!(report.end, RunEnd::AllHalted { .. }),
        "{:?}",
        report.end
    );
    let ids: Vec<(u32, u64)> = report.cpus.iter().map(|c| (c.apic_id, c.smbase)).collect();
    assert_eq!(ids, vec![(0, 0x30000), (2, 0x30000)]);
    assert!(
        kinds.0.contains(&(10_000, 2, "hot_add 2".to_owned())),
        "{:?}",
        kinds.0
    );
    assert!(machine.refused_actions().is_empty());
}

#[test]
fn the_guest_ejects_a_cpu_and_it_can_be_added_again() {
    let mut machine = machine(EJECT_CPU1_WHEN_PRESENT, 1, 2);
    machine.schedule(5_000, MachineAction::CpuAdd { apic_id: 1 });
    machine.schedule(2_000_000, MachineAction::CpuAdd { apic_id: 1 });
    let mut kinds = Kinds::default();
    let report = machine.run_observed(&mut kinds);
    let ejected: Vec<_> = kinds
        .0
        .iter()
        .filter(|(_, _, name)| name.starts_with("cpu_ejected"))
        .collect();
    assert_eq!(ejected.len(), 1, "{:?}", kinds.0);
    assert!(ejected[0].0 > 5_000 && ejected[0].0 < 2_000_000);
    // Added again after the eject: present at the end.
    let ids: Vec<u32> = report.cpus.iter().map(|c| c.apic_id).collect();
    assert_eq!(ids, vec![0, 1]);
    assert!(
        machine.refused_actions().is_empty(),
        "{:?}",
        machine.refused_actions()
    );
}

#[test]
fn adding_a_present_cpu_or_removing_cpu_0_is_refused_and_reported() {
    let mut machine = machine(HALT_FOREVER, 2, 4);
    machine.schedule(1_000, MachineAction::CpuAdd { apic_id: 1 });
    machine.schedule(2_000, MachineAction::CpuRemove { apic_id: 0 });
    machine.schedule(3_000, MachineAction::CpuAdd { apic_id: 9 });
    machine.run();
    let refused: Vec<&str> = machine
        .refused_actions()
        .iter()
        .map(|r| r.reason.as_str())
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(refused[0].contains("present"), "{refused:?}");
    assert!(refused[2].contains("maxcpus"), "{refused:?}");
}

#[test]
fn a_scheduled_hard_reset_restarts_the_bsp() {
    // The BSP halts; a reset at cycle 100,000 runs it again from the reset vector, so it
    // halts twice.
    let mut machine = machine(HALT_FOREVER, 1, 1);
    machine.schedule(
        100_000,
        MachineAction::Reset {
            hard: true,
            fw_cfg_files: vec![("opt/smmsim/x".to_owned(), b"1".to_vec())],
        },
    );
    let mut kinds = Kinds::default();
    machine.run_observed(&mut kinds);
    let halts = kinds.0.iter().filter(|(_, _, n)| n == "halt").count();
    assert_eq!(halts, 2, "{:?}", kinds.0);
    assert!(kinds
        .0
        .iter()
        .any(|(c, _, n)| *c == 100_000 && n == "reset"));
}
