//! The `boot` image beyond xAPIC's 255 CPUs: maxcpus up to 4096 with few CPUs present, hot-add
//! at maxcpus 1024 for the strategies that install per-APIC-ID state, and x2APIC mode when
//! more than 255 CPUs are present (the boot CPUs' IPIs then reach APIC IDs above 0xFF).
//!
//! What each run must print is derived from the image's rules (firmware-images/src/boot.asm
//! header): one "cpu APIC-ID smbase SMBASE" line per online CPU in slot order, SMBASE(slot) =
//! TSEG base + slot × 0x2000, TSEG = the top 16 MiB of the default 512 MiB of RAM.

mod common;

use std::path::Path;

use common::run_builtin;
use smmsim::scenario::Scenario;
use smmsim::scenario_run::{run_scenario, ScenarioReport};
use smmsim::{MachineConfig, RunEnd};

/// TSEG base with the default 512 MiB of RAM and 16 MiB of extended TSEG.
const TSEG_BASE: u32 = 0x1F00_0000;
/// Bytes between the SMBASEs of neighbouring slots.
const TILE_BYTES: u32 = 0x2000;

/// Boots the built-in `boot` image with `cpus` present of `max_cpus`; returns the console
/// text and how the run ended.
fn boot(cpus: u32, max_cpus: u32) -> (String, RunEnd) {
    let config = MachineConfig {
        cpus,
        max_cpus,
        ..MachineConfig::default()
    };
    let (console, report) = run_builtin("boot", config);
    (String::from_utf8_lossy(&console).into_owned(), report.end)
}

/// The console the image prints without opt/smmsim files when CPUs 0 .. cpus - 1 are present
/// and relocated into slots 0 .. cpus - 1.
fn expected_boot_console(cpus: u32, max_cpus: u32) -> String {
    let mut text = format!(
        "features 00000007 tseg {TSEG_BASE:08X} size 01000000 cpus {cpus} maxcpus {max_cpus}\n"
    );
    for apic_id in 0..cpus {
        let smbase = TSEG_BASE + apic_id * TILE_BYTES;
        text.push_str(&format!("cpu {apic_id:08X} smbase {smbase:08X}\n"));
    }
    text
}

/// Runs a scenario given as TOML text.
fn run_text(name: &str, text: &str) -> ScenarioReport {
    let origin = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/{name}.toml"));
    let scenario = Scenario::from_str(text, &origin).unwrap_or_else(|error| panic!("{error}"));
    run_scenario(&scenario, Box::new(std::io::sink()), None, false)
        .unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// One CPU of 1024, APIC ID 1 hot-added at 3 ms. At maxcpus 1024 the firmware is still
/// counting the hot-plug block then (1024 selectors at 1 us per port access), so the CPU
/// appears while the firmware boots and must still be served as a hot-add.
fn hot_add_at_maxcpus_1024(strategy: &str) -> ScenarioReport {
    let text = format!(
        r#"
name = "{strategy}: one hot-add at maxcpus 1024"

[machine]
cpus = 1
maxcpus = 1024
strategy = "{strategy}"

[[event]]
at = "3ms"
action = "cpu-add"
apic_id = 1

[expect]
smbase = "unique-in-tseg"
console = ["cpu 00000001 online"]
status = 1
"#
    );
    run_text(&format!("hot-add-1024-{strategy}"), &text)
}

#[test]
fn one_cpu_of_1024_boots_with_every_table_sized_for_maxcpus() {
    let (console, end) = boot(1, 1024);
    assert_eq!(console, expected_boot_console(1, 1024));
    assert_eq!(end, RunEnd::DebugExit { status: 1 });
}

#[test]
fn maxcpus_beyond_what_tseg_holds_fails_with_a_line_naming_the_limit() {
    // 16 MiB of TSEG: 2041 tiles, the last one's save area ending 0xE000 past its tile.
    let (console, end) = boot(1, 2042);
    assert_eq!(
        console,
        "boot: TSEG of 16 MiB holds the SMBASE tiles of at most 2041 CPUs, maxcpus is 2042\n"
    );
    assert_eq!(
        end,
        RunEnd::DebugExit {
            status: (4 << 1) | 1
        }
    );
}

#[test]
fn smbase_smram_hot_add_at_maxcpus_1024() {
    let report = hot_add_at_maxcpus_1024("smbase-smram");
    assert!(report.passed, "{}", report.render());
}

#[test]
fn controller_hot_add_at_maxcpus_1024() {
    let report = hot_add_at_maxcpus_1024("controller");
    assert!(report.passed, "{}", report.render());
}

#[test]
fn formula_hot_add_at_maxcpus_1024() {
    let report = hot_add_at_maxcpus_1024("formula");
    assert!(report.passed, "{}", report.render());
}

#[test]
fn three_hundred_cpus_boot_in_x2apic_mode() {
    let (console, end) = boot(300, 300);
    assert_eq!(console, expected_boot_console(300, 300));
    assert_eq!(end, RunEnd::DebugExit { status: 1 });
}

#[test]
fn max_cpus_at_300_boots_all_ejects_299_and_re_adds_one() {
    let text = r#"
name = "max-cpus at maxcpus 300"

[machine]
cpus = 1
maxcpus = 300
strategy = "max-cpus"
hotadd_reset = false

[guest]
boot_cpus = 1

[[event]]
at = "100ms"
action = "cpu-add"
apic_id = 299

[expect]
smbase = "unique-in-tseg"
console = ["cpu 0000012A removed", "cpu 0000012B online"]
online = [0, 299]
status = 1
"#;
    let report = run_text("max-cpus-300", text);
    assert!(report.passed, "{}", report.render());
}
