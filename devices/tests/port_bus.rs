//! The stage-1 debug devices seen the way a core sees them: through `IN`/`OUT` on a
//! [`PortBus`] built by [`PortBus::with_debug_devices`].

use smmsim_devices::debug_exit::DebugExit;
use smmsim_devices::debugcon::DebugConsole;
use smmsim_devices::post_code::PostCode;
use smmsim_devices::{AccessContext, AccessWidth, BusError, Effect, PortBus, PortDevice};
use smmsim_traces::Cycle;

fn ctx() -> AccessContext {
    AccessContext::at_cycle(Cycle::ZERO)
}

/// `OUT port, value` at `width`, returning the effects it produced.
fn out(bus: &mut PortBus, port: u16, width: AccessWidth, value: u32) -> Vec<Effect> {
    let mut effects = Vec::new();
    bus.write(&ctx(), port, width, value, &mut effects);
    effects
}

#[test]
fn console_bytes_arrive_in_order() {
    let mut bus = PortBus::with_debug_devices();
    let effects: Vec<Effect> = b"PASS\n"
        .iter()
        .flat_map(|&b| out(&mut bus, 0x402, AccessWidth::Byte, b.into()))
        .collect();
    let text: Vec<u8> = effects
        .iter()
        .map(|e| match e {
            Effect::ConsoleByte(b) => *b,
            other => panic!("unexpected effect {other:?}"),
        })
        .collect();
    assert_eq!(text, b"PASS\n");
    // Firmware detects the console by reading the Bochs magic back.
    assert_eq!(
        bus.read(&ctx(), 0x402, AccessWidth::Byte, &mut Vec::new()),
        0xE9
    );
}

#[test]
fn debug_exit_status_is_value_shifted_left_plus_one() {
    let mut bus = PortBus::with_debug_devices();
    assert_eq!(
        out(&mut bus, 0xF4, AccessWidth::Byte, 0),
        [Effect::Exit { status: 1 }]
    );
    assert_eq!(
        out(&mut bus, 0xF4, AccessWidth::Byte, 0x10),
        [Effect::Exit { status: 0x21 }]
    );
    assert_eq!(
        out(&mut bus, 0xF4, AccessWidth::Dword, 0x10),
        [Effect::Exit { status: 0x21 }]
    );
    // Every port of the four-port window is the device (iosize=4).
    assert_eq!(
        out(&mut bus, 0xF7, AccessWidth::Byte, 0x10),
        [Effect::Exit { status: 0x21 }]
    );
    assert_eq!(bus.unmapped_accesses().writes, 0);
}

#[test]
fn post_codes_are_traced() {
    let mut bus = PortBus::with_debug_devices();
    assert_eq!(
        out(&mut bus, 0x80, AccessWidth::Byte, 0x55),
        [Effect::PostCode(0x55)]
    );
    assert_eq!(
        bus.read(&ctx(), 0x80, AccessWidth::Byte, &mut Vec::new()),
        0xFF
    );
}

#[test]
fn unmapped_ports_read_all_ones_per_width_drop_writes_and_are_counted() {
    let mut bus = PortBus::with_debug_devices();
    let mut effects = Vec::new();
    assert_eq!(
        bus.read(&ctx(), 0x1234, AccessWidth::Byte, &mut effects),
        0xFF
    );
    assert_eq!(
        bus.read(&ctx(), 0x1234, AccessWidth::Word, &mut effects),
        0xFFFF
    );
    assert_eq!(
        bus.read(&ctx(), 0xFFFF, AccessWidth::Dword, &mut effects),
        0xFFFF_FFFF
    );
    // 0xF8 is just past the debug-exit window.
    bus.write(&ctx(), 0xF8, AccessWidth::Byte, 0, &mut effects);
    assert!(effects.is_empty());
    let unmapped = bus.unmapped_accesses();
    assert_eq!((unmapped.reads, unmapped.writes), (3, 1));
}

#[test]
fn overlapping_device_is_rejected() {
    let mut bus = PortBus::with_debug_devices();
    let err = bus.add(0xF6, 1, Box::new(PostCode::new())).unwrap_err();
    assert_eq!(
        err,
        BusError::Overlap {
            device: "POST code",
            base: 0xF6,
            len: 1,
            existing: DebugExit::new().name(),
            existing_base: DebugExit::PORT,
            existing_len: DebugExit::WINDOW_LEN,
        }
    );
    let err = bus
        .add(0x400, 4, Box::new(DebugConsole::new()))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "device `debug console` window 0x0400..=0x0403 overlaps device `debug console` at \
         0x0402..=0x0402"
    );
    // The rejected device claimed nothing: the debug-exit window still answers.
    assert_eq!(
        out(&mut bus, 0xF6, AccessWidth::Byte, 2),
        [Effect::Exit { status: 5 }]
    );
}
