//! Scenario files: a full example parses to the values it spells out, every mistake is
//! reported with the file, the line and the offending value, and no input makes the parser
//! panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use smmsim::cpu::smm::{Profile, SaveStateLayout};
use smmsim::scenario::units::{self, UnitError};
use smmsim::scenario::{
    fnv1a_64, EventAction, EventProblem, FirmwareSource, Handshake, OnDone, Problem, Scenario,
    ScenarioError, ScheduledEvent, SmbaseExpectation, Strategy,
};
use smmsim::{ExecMode, TimingTable};

/// The name every in-memory scenario is given, as `smmsim batch` would pass it.
const ORIGIN: &str = "scenarios/x.toml";

/// Every key of the format, each set to something other than its default.
const FULL: &str = r#"name = "smbase-smram: one hot-add"
description = "one CPU hot-added at 3 ms"

[machine]
cpus = 2
maxcpus = 4
memory = "1GiB"
strategy = "controller"
layout = "intel32"
profile = "qemu"
mode = "parallel"
clock = "2.5GHz"
quantum = 500
max_cycles = "2s"
hotadd_reset = true
ipi_latency = 1234

[machine.timing]
divide = 40
port_io = 3000

[firmware]
builtin = "hello"

[guest]
handshake = "redirect"
on_done = "halt"
boot_cpus = 2

[[event]]
at = "3ms"
action = "cpu-add"
apic_id = 2

[[event]]
at = 8000000
action = "cpu-remove"
apic_id = 1

[[event]]
at = "4.5ms"
action = "reset"
hard = false

[expect]
smbase = { "0" = 0x7000000, "2" = 0x7002000 }
console = ["cpu 00000002 online"]
status = 1
online = [0, 2]
"#;

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::from_str(text, Path::new(ORIGIN))
}

/// The message of the error `text` must produce.
fn error_of(text: &str) -> String {
    match parse(text) {
        Ok(scenario) => panic!("accepted: {scenario:?}\n--- text ---\n{text}"),
        Err(error) => error.to_string(),
    }
}

/// Checks that `text` is refused with a message that starts with `x.toml:LINE:` and contains
/// every one of `needles`; returns the message.
fn assert_refused(text: &str, line: usize, needles: &[&str]) -> String {
    let message = error_of(text);
    let prefix = format!("{ORIGIN}:{line}:");
    assert!(message.starts_with(&prefix), "want {prefix} in: {message}");
    for needle in needles {
        assert!(message.contains(needle), "want {needle:?} in: {message}");
    }
    message
}

/// A `[machine]` table with `body` and nothing else.
fn machine(body: &str) -> String {
    format!("[machine]\n{body}\n")
}

// ---------------------------------------------------------------------------------------------
// The happy path

#[test]
fn a_full_scenario_parses_to_the_values_it_spells_out() {
    let scenario = parse(FULL).expect("valid");
    assert_eq!(scenario.name, "smbase-smram: one hot-add");
    assert_eq!(
        scenario.description.as_deref(),
        Some("one CPU hot-added at 3 ms")
    );
    assert_eq!(scenario.origin, PathBuf::from(ORIGIN));

    let m = &scenario.machine;
    assert_eq!((m.cpus, m.max_cpus), (2, 4));
    assert_eq!(m.ram_bytes, 1 << 30);
    assert_eq!(m.strategy, Strategy::Controller);
    assert_eq!(m.layout, SaveStateLayout::Intel32);
    assert_eq!(m.profile, Profile::Qemu);
    assert_eq!(m.mode, ExecMode::Parallel);
    assert_eq!(m.clock_hz, 2_500_000_000);
    assert_eq!(m.quantum_cycles, 500);
    assert_eq!(m.max_cycles, 5_000_000_000, "2 s at 2.5 GHz");
    assert!(m.hotadd_reset);
    assert_eq!(m.ipi_latency_cycles, 1234);
    assert_eq!(
        m.timing,
        TimingTable {
            divide: 40,
            port_io: 3000,
            ..TimingTable::default()
        }
    );

    assert_eq!(
        scenario.firmware,
        FirmwareSource::Builtin("hello".to_owned())
    );
    assert_eq!(scenario.guest.handshake, Handshake::Redirect);
    assert_eq!(scenario.guest.on_done, OnDone::Halt);
    assert_eq!(scenario.guest.boot_cpus, Some(2));

    assert_eq!(
        scenario.events,
        [
            ScheduledEvent {
                at_cycle: 7_500_000,
                action: EventAction::CpuAdd { apic_id: 2 },
                line: 30,
            },
            ScheduledEvent {
                at_cycle: 8_000_000,
                action: EventAction::CpuRemove { apic_id: 1 },
                line: 35,
            },
            ScheduledEvent {
                at_cycle: 11_250_000,
                action: EventAction::Reset { hard: false },
                line: 40,
            },
        ]
    );

    let expect = &scenario.expect;
    assert_eq!(
        expect.smbase,
        Some(SmbaseExpectation::Exact(BTreeMap::from([
            (0, 0x700_0000),
            (2, 0x700_2000)
        ])))
    );
    assert_eq!(expect.console, ["cpu 00000002 online"]);
    assert_eq!(expect.status, Some(1));
    assert_eq!(expect.online, Some(vec![0, 2]));
}

#[test]
fn the_machine_config_carries_every_scenario_value() {
    let scenario = parse(FULL).expect("valid");
    let config = scenario.machine_config();
    assert_eq!(config.ram_bytes, 1 << 30);
    assert_eq!(config.timing.divide, 40);
    assert_eq!(config.clock_hz, 2_500_000_000);
    assert_eq!(config.max_cycles, 5_000_000_000);
    assert_eq!(config.quantum_cycles, 500);
    assert_eq!((config.cpus, config.max_cpus), (2, 4));
    assert_eq!(config.mode, ExecMode::Parallel);
    assert_eq!(config.ipi_latency_cycles, 1234);
    assert_eq!(config.layout, SaveStateLayout::Intel32);
    assert_eq!(config.profile, Profile::Qemu);
    assert!(config.hotadd_reset);
}

#[test]
fn an_empty_file_is_the_default_machine_named_after_its_file() {
    let scenario = parse("").expect("valid");
    let defaults = smmsim::MachineConfig::default();
    assert_eq!(scenario.name, "x");
    let m = &scenario.machine;
    assert_eq!((m.cpus, m.max_cpus), (1, 1));
    assert_eq!(m.ram_bytes, 512 << 20);
    assert_eq!(m.strategy, Strategy::SmbaseSmram);
    assert_eq!(m.layout, SaveStateLayout::Amd64);
    assert_eq!(m.profile, Profile::Kvm);
    assert_eq!(m.mode, ExecMode::Deterministic);
    assert_eq!(m.clock_hz, 2_000_000_000);
    assert_eq!(m.quantum_cycles, 1000);
    assert_eq!(m.max_cycles, defaults.max_cycles);
    assert_eq!(m.ipi_latency_cycles, defaults.ipi_latency_cycles);
    assert!(m.hotadd_reset);
    assert_eq!(m.timing, TimingTable::default());
    assert_eq!(
        scenario.firmware,
        FirmwareSource::Builtin("boot".to_owned())
    );
    assert_eq!(scenario.guest.handshake, Handshake::Ovmf);
    assert_eq!(scenario.guest.on_done, OnDone::Exit);
    assert!(scenario.events.is_empty());
    assert_eq!(scenario.expect, Default::default());
}

#[test]
fn integer_memory_is_mib_integer_clock_is_hz_and_integer_times_are_cycles() {
    let scenario = parse(&machine(
        "memory = 64\nclock = 1000000000\nmax_cycles = 1234567",
    ))
    .expect("valid");
    assert_eq!(scenario.machine.ram_bytes, 64 << 20);
    assert_eq!(scenario.machine.clock_hz, 1_000_000_000);
    assert_eq!(scenario.machine.max_cycles, 1_234_567);
}

#[test]
fn times_are_converted_with_the_scenario_clock_whatever_the_key_order() {
    let text = "[[event]]\nat = \"1us\"\naction = \"reset\"\n\n[machine]\nclock = \"3GHz\"\n";
    let scenario = parse(text).expect("valid");
    assert_eq!(scenario.events[0].at_cycle, 3_000);
}

#[test]
fn the_smbase_expectation_may_be_a_rule_or_a_sub_table() {
    let rule = parse("[expect]\nsmbase = \"unique-in-tseg\"\n").expect("valid");
    assert_eq!(rule.expect.smbase, Some(SmbaseExpectation::UniqueInTseg));
    let table = parse("[machine]\nmaxcpus = 2\n[expect.smbase]\n0 = 0x1000\n\"1\" = 0x2000\n")
        .expect("valid");
    assert_eq!(
        table.expect.smbase,
        Some(SmbaseExpectation::Exact(BTreeMap::from([
            (0, 0x1000),
            (1, 0x2000)
        ])))
    );
}

#[test]
fn dotted_sub_tables_are_accepted_before_their_parent() {
    let scenario = parse("[machine.timing]\ndivide = 7\n").expect("valid");
    assert_eq!(scenario.machine.timing.divide, 7);
}

// ---------------------------------------------------------------------------------------------
// fw_cfg files and the hash

/// Two adds and a remove in the first boot, a reset, one add, a reset, nothing.
const HOTPLUG: &str = r#"
[machine]
cpus = 2
maxcpus = 8

[[event]]
at = "1ms"
action = "cpu-add"
apic_id = 2

[[event]]
at = "1ms"
action = "cpu-add"
apic_id = 3

[[event]]
at = "2ms"
action = "cpu-remove"
apic_id = 1

[[event]]
at = "3ms"
action = "reset"

[[event]]
at = "4ms"
action = "cpu-add"
apic_id = 1

[[event]]
at = "5ms"
action = "reset"
"#;

fn file(name: &str, contents: &str) -> (String, Vec<u8>) {
    (name.to_owned(), contents.as_bytes().to_vec())
}

#[test]
fn fw_cfg_files_count_the_hotplug_events_of_each_boot() {
    let scenario = parse(HOTPLUG).expect("valid");
    // A boot followed by a reset halts when done instead of exiting, so the reset happens.
    let boot = |on_done: &str, hotplug: &str| {
        vec![
            file("opt/smmsim/strategy", "smbase-smram"),
            file("opt/smmsim/handshake", "ovmf"),
            file("opt/smmsim/on-done", on_done),
            file("opt/smmsim/hotplug-events", hotplug),
        ]
    };
    assert_eq!(scenario.fw_cfg_files(), boot("halt", "3"));
    assert_eq!(scenario.fw_cfg_files_after_reset(0), boot("halt", "3"));
    assert_eq!(scenario.fw_cfg_files_after_reset(1), boot("halt", "1"));
    assert_eq!(scenario.fw_cfg_files_after_reset(2), boot("exit", "0"));
    assert_eq!(scenario.fw_cfg_files_after_reset(9), boot("exit", "0"));
}

#[test]
fn fw_cfg_files_give_the_boot_cpu_count_for_max_cpus() {
    let text = r#"
[machine]
cpus = 2
maxcpus = 6
strategy = "max-cpus"
hotadd_reset = false

[[event]]
at = "1ms"
action = "cpu-add"
apic_id = 4
"#;
    let scenario = parse(text).expect("valid");
    assert_eq!(
        scenario.fw_cfg_files(),
        [
            file("opt/smmsim/strategy", "max-cpus"),
            file("opt/smmsim/handshake", "ovmf"),
            file("opt/smmsim/on-done", "exit"),
            file("opt/smmsim/boot-cpus", "2"),
            file("opt/smmsim/hotplug-events", "1"),
        ]
    );
    let config = scenario.machine_config();
    assert_eq!(
        (config.cpus, config.max_cpus),
        (6, 6),
        "all present at reset"
    );
    assert!(!config.hotadd_reset);
}

#[test]
fn the_hash_is_fnv1a_of_the_bytes_and_changes_with_any_edit() {
    let a = parse(FULL).expect("valid");
    assert_eq!(a.scenario_hash(), fnv1a_64(FULL.as_bytes()));
    assert_eq!(
        a.scenario_hash(),
        parse(FULL).expect("valid").scenario_hash()
    );
    let edited = FULL.replace("quantum = 500", "quantum = 501");
    assert_ne!(
        a.scenario_hash(),
        parse(&edited).expect("valid").scenario_hash()
    );
}

// ---------------------------------------------------------------------------------------------
// TOML-level errors: syntax, unknown keys, wrong types

#[test]
fn syntax_errors_give_line_and_column() {
    let message = assert_refused("name = \"x\"\n[machine\ncpus = 1\n", 2, &["table header"]);
    assert!(message.starts_with("scenarios/x.toml:2:9: "), "{message}");
    assert_refused("name = \"x\"\nname = \"y\"\n", 2, &["duplicate key `name`"]);
}

#[test]
fn unknown_keys_are_named_wherever_they_are() {
    assert_refused("bogus = 1\n", 1, &["unknown field `bogus`"]);
    assert_refused(&machine("cpus = 1\ncpuz = 2"), 3, &["`cpuz`"]);
    assert_refused("[firmware]\nimage = \"x\"\n", 2, &["`image`"]);
    assert_refused("[guest]\nboot = 1\n", 2, &["`boot`"]);
    assert_refused(
        "[[event]]\nat = 1\naction = \"reset\"\nwhen = 2\n",
        4,
        &["`when`"],
    );
    assert_refused("[expect]\nexit = 1\n", 2, &["`exit`"]);
    assert_refused(
        "[machine.timing]\ndivide = 40\ndvide = 40\n",
        3,
        &["unknown key `dvide`", "divide"],
    );
}

#[test]
fn wrong_types_name_the_value() {
    assert_refused(&machine("cpus = \"two\""), 2, &["\"two\"", "u32"]);
    assert_refused(&machine("hotadd_reset = 1"), 2, &["integer `1`"]);
    assert_refused(&machine("memory = true"), 2, &["memory = true", "boolean"]);
    assert_refused(&machine("clock = 2.5"), 2, &["clock = 2.5", "float"]);
    assert_refused(
        "[[event]]\nat = [1]\naction = \"reset\"\n",
        2,
        &["at = [1]", "array"],
    );
    assert_refused("[[event]]\nat = 1\n", 1, &["missing field `action`"]);
    assert_refused(&machine("memory.size = 1"), 2, &["\"size\"", "not a table"]);
}

// ---------------------------------------------------------------------------------------------
// [machine]

#[test]
fn cpu_counts_must_be_consistent() {
    assert_refused(&machine("cpus = 0"), 2, &["cpus = 0"]);
    let message = assert_refused(&machine("cpus = 5\nmaxcpus = 4"), 2, &[]);
    assert_eq!(message, "scenarios/x.toml:2: cpus = 5 is above maxcpus = 4");
    assert_refused(&machine("maxcpus = 4097"), 2, &["maxcpus = 4097", "4096"]);
    assert_refused(&machine("cpus = 5000"), 2, &["cpus = 5000", "4096"]);
    assert!(parse(&machine("cpus = 1\nmaxcpus = 4096")).is_ok());
}

#[test]
fn bad_memory_sizes_say_what_is_wrong() {
    assert_refused(
        &machine("memory = \"-1MiB\""),
        2,
        &["\"-1MiB\"", "negative"],
    );
    assert_refused(
        &machine("memory = \"512\""),
        2,
        &["\"512\"", "unit is missing"],
    );
    assert_refused(
        &machine("memory = \"512MB\""),
        2,
        &["unknown unit \"MB\"", "MiB"],
    );
    assert_refused(
        &machine("memory = \"99999999999999999999GiB\""),
        2,
        &["too large"],
    );
    assert_refused(&machine("memory = -5"), 2, &["memory = -5", "negative"]);
    assert_refused(
        &machine("memory = 0"),
        2,
        &["memory = 0", "multiple of 4 KiB"],
    );
    assert_refused(&machine("memory = 4096"), 2, &["memory = 4096", "2048 MiB"]);
    assert_refused(&machine("memory = \"1000B\""), 2, &["1000 bytes"]);
}

#[test]
fn bad_clocks_and_times_say_what_is_wrong() {
    assert_refused(
        &machine("clock = \"fast\""),
        2,
        &["clock = \"fast\"", "number"],
    );
    assert_refused(&machine("clock = \"2 GHZ\""), 2, &["unknown unit \"GHZ\""]);
    assert_refused(&machine("clock = 0"), 2, &["clock = 0", "at least 1"]);
    assert_refused(
        &machine("max_cycles = \"2 min\""),
        2,
        &["unknown unit \"min\"", "ms"],
    );
    assert_refused(&machine("max_cycles = \"3\""), 2, &["unit is missing"]);
    assert_refused(&machine("max_cycles = 0"), 2, &["max_cycles = 0"]);
    assert_refused(&machine("quantum = 0"), 2, &["quantum = 0"]);
    assert_refused(
        &machine("max_cycles = \"100000000000s\""),
        2,
        &["too large"],
    );
}

#[test]
fn unknown_names_list_the_valid_ones() {
    assert_refused(
        &machine("strategy = \"maxcpus\""),
        2,
        &["\"maxcpus\"", "smbase-smram, controller, formula, max-cpus"],
    );
    assert_refused(&machine("profile = \"tcg\""), 2, &["tcg", "kvm, qemu, sdm"]);
    assert_refused(&machine("layout = \"amd\""), 2, &["amd", "amd64, intel32"]);
    assert_refused(
        &machine("mode = \"fast\""),
        2,
        &["\"fast\"", "deterministic, parallel"],
    );
    assert_refused(
        "[guest]\nhandshake = \"acpi\"\n",
        2,
        &["\"acpi\"", "ovmf, redirect"],
    );
    assert_refused(
        "[guest]\non_done = \"reboot\"\n",
        2,
        &["\"reboot\"", "exit, halt"],
    );
    assert_refused(
        "[[event]]\nat = 1\naction = \"cpu-plug\"\n",
        3,
        &[
            "event 1: unknown action \"cpu-plug\"",
            "cpu-add, cpu-remove, reset",
        ],
    );
}

#[test]
fn timing_overrides_are_checked_like_timing_files() {
    assert_refused(
        "[machine.timing]\nload = 4\ndivide = 0\n",
        3,
        &["divide = 0", "out of range"],
    );
    assert_refused("[machine.timing]\ndivide = -1\n", 2, &["-1"]);
}

#[test]
fn max_cpus_needs_hotadd_reset_off() {
    let message = assert_refused(
        &machine("cpus = 1\nmaxcpus = 4\nstrategy = \"max-cpus\""),
        4,
        &[
            "hotadd_reset = true (the default)",
            "max-cpus",
            "hotadd_reset = false",
        ],
    );
    assert!(message.contains("INIT only"), "{message}");
    assert_refused(
        &machine("strategy = \"max-cpus\"\nhotadd_reset = true"),
        3,
        &["hotadd_reset = true cannot"],
    );
}

// ---------------------------------------------------------------------------------------------
// [firmware] and [guest]

#[test]
fn firmware_must_name_one_existing_image() {
    assert_refused(
        "[firmware]\nbuiltin = \"boot\"\npath = \"fw.bin\"\n",
        3,
        &["both", "\"boot\"", "\"fw.bin\""],
    );
    assert_refused(
        "[firmware]\nbuiltin = \"bios\"\n",
        2,
        &["\"bios\"", "hello", "boot"],
    );
    let message = assert_refused(
        "[firmware]\npath = \"images/none.bin\"\n",
        2,
        &[
            "\"images/none.bin\"",
            "scenarios/images/none.bin",
            "No such file",
        ],
    );
    assert!(message.contains("os error"), "{message}");
}

/// A directory of its own under the test's temporary directory.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("scenario_files-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("images")).expect("temporary directory is writable");
    dir
}

#[test]
fn a_relative_firmware_path_resolves_against_the_scenario_directory() {
    let dir = fresh_dir("relative");
    let image = smmsim_firmware::find("hello").expect("built in").bytes;
    std::fs::write(dir.join("images/fw.bin"), image).expect("writable");
    let path = dir.join("one.toml");
    std::fs::write(&path, "[firmware]\npath = \"images/fw.bin\"\n").expect("writable");

    let scenario = Scenario::from_file(&path).expect("valid");
    assert_eq!(scenario.name, "one");
    assert_eq!(
        scenario.firmware,
        FirmwareSource::File(dir.join("images/fw.bin"))
    );
    let loaded = scenario.firmware_image().expect("loads");
    assert_eq!(loaded.bytes(), image);

    std::fs::write(dir.join("images/small.bin"), [0u8; 100]).expect("writable");
    std::fs::write(&path, "\n[firmware]\npath = \"images/small.bin\"\n").expect("writable");
    let message = Scenario::from_file(&path)
        .expect_err("too small")
        .to_string();
    assert!(message.contains("one.toml:3:"), "{message}");
    assert!(message.contains("100 bytes"), "{message}");
}

#[test]
fn an_unreadable_scenario_file_names_its_path() {
    let path = Path::new("/nonexistent/s.toml");
    let error = Scenario::from_file(path).expect_err("missing");
    let message = error.to_string();
    assert!(message.contains("/nonexistent/s.toml"), "{message}");
    assert!(message.contains("No such file"), "{message}");
    assert!(error.problem().is_none());
}

#[test]
fn boot_cpus_must_be_between_one_and_maxcpus() {
    let text = "[machine]\nmaxcpus = 4\n[guest]\nboot_cpus = 5\n";
    let message = assert_refused(text, 4, &[]);
    assert_eq!(
        message,
        "scenarios/x.toml:4: boot_cpus = 5 is outside 1..=4 (maxcpus)"
    );
    assert_refused("[guest]\nboot_cpus = 0\n", 2, &["boot_cpus = 0"]);
}

// ---------------------------------------------------------------------------------------------
// [[event]]

/// A machine with `cpus` present of `maxcpus`, then `events`.
fn with_events(cpus: u32, max_cpus: u32, events: &str) -> String {
    format!("[machine]\ncpus = {cpus}\nmaxcpus = {max_cpus}\n\n{events}")
}

/// One event; `extra` is more keys.
fn event(at: &str, action: &str, extra: &str) -> String {
    format!("[[event]]\nat = {at}\naction = \"{action}\"\n{extra}\n")
}

#[test]
fn an_apic_id_beyond_maxcpus_is_refused_with_the_exact_message() {
    // Lines: 1-3 machine, 4 blank, 5-8 event 1, 9-12 event 2 (apic_id on 12).
    let text = with_events(
        1,
        4,
        &(event("\"1ms\"", "cpu-add", "apic_id = 1") + &event("\"2ms\"", "cpu-add", "apic_id = 9")),
    );
    let message = assert_refused(&text, 12, &[]);
    assert_eq!(
        message,
        "scenarios/x.toml:12: event 2: apic_id 9 is not below maxcpus = 4"
    );
    match parse(&text).expect_err("refused").problem() {
        Some(Problem::Event {
            number: 2,
            problem:
                EventProblem::ApicIdTooLarge {
                    apic_id: 9,
                    max_cpus: 4,
                },
        }) => {}
        other => panic!("unexpected problem {other:?}"),
    }
}

#[test]
fn events_must_be_in_time_order_and_before_the_cycle_limit() {
    let text = with_events(
        1,
        4,
        &(event("\"2ms\"", "cpu-add", "apic_id = 1") + &event("\"1ms\"", "cpu-add", "apic_id = 2")),
    );
    assert_refused(
        &text,
        10,
        &[
            "event 2",
            "\"1ms\"",
            "cycle 2000000",
            "cycle 4000000",
            "time order",
        ],
    );
    let same_time =
        event("\"1ms\"", "cpu-add", "apic_id = 1") + &event("2000000", "cpu-add", "apic_id = 2");
    assert!(parse(&with_events(1, 4, &same_time)).is_ok());

    let late = format!(
        "[machine]\nmax_cycles = 1000\n{}",
        event("1000", "reset", "")
    );
    assert_refused(&late, 4, &["event 1", "at = 1000", "max_cycles = 1000"]);
    let bad_time = event("\"3 weeks\"", "reset", "");
    assert_refused(&bad_time, 2, &["event 1: at = \"3 weeks\"", "unknown unit"]);
    assert_refused(
        &event("-4", "reset", ""),
        2,
        &["event 1: at = -4", "negative"],
    );
}

#[test]
fn presence_is_tracked_through_the_events() {
    let add_present = with_events(2, 4, &event("1", "cpu-add", "apic_id = 1"));
    assert_refused(
        &add_present,
        8,
        &["event 1", "cpu-add of apic_id 1", "already present"],
    );

    let remove_absent = with_events(2, 4, &event("1", "cpu-remove", "apic_id = 3"));
    assert_refused(
        &remove_absent,
        8,
        &["cpu-remove of apic_id 3", "not present"],
    );

    let remove_bsp = with_events(2, 4, &event("1", "cpu-remove", "apic_id = 0"));
    assert_refused(&remove_bsp, 8, &["apic_id 0", "bootstrap processor"]);

    let readd = event("1", "cpu-remove", "apic_id = 1")
        + &event("2", "cpu-add", "apic_id = 1")
        + &event("3", "reset", "")
        + &event("4", "cpu-remove", "apic_id = 1");
    assert!(parse(&with_events(2, 4, &readd)).is_ok());

    let twice = event("1", "cpu-add", "apic_id = 3") + &event("2", "cpu-add", "apic_id = 3");
    assert_refused(
        &with_events(1, 4, &twice),
        12,
        &["event 2", "already present"],
    );
}

#[test]
fn for_max_cpus_the_cpus_beyond_boot_cpus_are_absent_after_boot() {
    let base = "[machine]\ncpus = 1\nmaxcpus = 4\nstrategy = \"max-cpus\"\nhotadd_reset = false\n\
                [guest]\nboot_cpus = 2\n";
    let ok = format!("{base}{}", event("1", "cpu-add", "apic_id = 3"));
    assert!(parse(&ok).is_ok(), "{:?}", parse(&ok).err());
    let present = format!("{base}{}", event("1", "cpu-add", "apic_id = 1"));
    assert_refused(&present, 11, &["cpu-add of apic_id 1", "already present"]);
    let absent = format!("{base}{}", event("1", "cpu-remove", "apic_id = 2"));
    assert_refused(&absent, 11, &["cpu-remove of apic_id 2", "not present"]);
}

#[test]
fn each_action_takes_only_its_own_keys() {
    assert_refused(
        &event("1", "reset", "apic_id = 1"),
        4,
        &["event 1: action \"reset\" takes no apic_id"],
    );
    assert_refused(
        &event("1", "cpu-add", ""),
        3,
        &["event 1: action \"cpu-add\" needs an apic_id"],
    );
    assert_refused(
        &with_events(1, 2, &event("1", "cpu-add", "apic_id = 1\nhard = true")),
        9,
        &["\"cpu-add\" takes no `hard`"],
    );
    let soft = parse(&event("1", "reset", "hard = false")).expect("valid");
    assert_eq!(soft.events[0].action, EventAction::Reset { hard: false });
    let hard = parse(&event("1", "reset", "")).expect("valid");
    assert_eq!(hard.events[0].action, EventAction::Reset { hard: true });
}

// ---------------------------------------------------------------------------------------------
// [expect]

#[test]
fn expectations_name_apic_ids_the_machine_can_have() {
    let base = "[machine]\nmaxcpus = 2\n[expect]\n";
    assert_refused(
        &format!("{base}smbase = {{ \"0\" = 0x1000, \"2\" = 0x2000 }}\n"),
        4,
        &["expect.smbase.\"2\"", "APIC ID 2 is not below maxcpus = 2"],
    );
    assert_refused(
        &format!("{base}smbase = {{ bsp = 0x1000 }}\n"),
        4,
        &["\"bsp\" is not an APIC ID"],
    );
    assert_refused(
        &format!("{base}smbase = {{ \"1\" = -1 }}\n"),
        4,
        &["-1 is not an SMBASE"],
    );
    assert_refused(
        &format!("{base}smbase = {{ \"1\" = 1, \"01\" = 2 }}\n"),
        4,
        &["APIC ID 1 is given more than once"],
    );
    assert_refused(
        &format!("{base}smbase = \"unique\"\n"),
        4,
        &["\"unique\"", "unique-in-tseg"],
    );
    assert_refused(
        &format!("{base}online = [0,\n 1,\n 5]\n"),
        6,
        &["expect.online", "APIC ID 5"],
    );
    assert_refused(&format!("{base}status = \"ok\"\n"), 4, &["\"ok\""]);
}

// ---------------------------------------------------------------------------------------------
// The unit parsers

#[test]
fn unit_parsers_on_edge_cases() {
    assert_eq!(units::parse_size("4KiB"), Ok(4096));
    assert_eq!(units::parse_size("0B"), Ok(0));
    assert_eq!(units::parse_size("16 TiB"), Ok(16 << 40));
    assert_eq!(units::parse_size("0.25KiB"), Ok(256));
    assert_eq!(
        units::parse_size("0.1KiB"),
        Err(UnitError::NotWhole { base: "bytes" })
    );
    assert_eq!(
        units::parse_size("17179869184GiB"),
        Err(UnitError::Overflow)
    );
    assert_eq!(units::parse_size("   "), Err(UnitError::Empty));
    assert!(matches!(
        units::parse_size("1e3MiB"),
        Err(UnitError::UnknownUnit { .. })
    ));
    assert!(matches!(
        units::parse_size("+1MiB"),
        Err(UnitError::NotANumber { .. })
    ));

    assert_eq!(units::parse_clock("18446744073709551615Hz"), Ok(u64::MAX));
    assert_eq!(
        units::parse_clock("18446744073709551616Hz"),
        Err(UnitError::Overflow)
    );
    assert_eq!(units::parse_clock("0.001kHz"), Ok(1));
    assert_eq!(units::parse_clock("-2GHz"), Err(UnitError::Negative));

    assert_eq!(units::time_to_cycles("1s", 1), Ok(1));
    assert_eq!(units::time_to_cycles("999ms", 1), Ok(0));
    assert_eq!(units::time_to_cycles("0.000000001s", 1_000_000_000), Ok(1));
    assert_eq!(units::time_to_cycles("250µs", 2_000_000_000), Ok(500_000));
    assert_eq!(
        units::time_to_cycles("9223372036s", 2_000_000_000),
        Ok(18_446_744_072_000_000_000)
    );
    assert_eq!(
        units::time_to_cycles("9223372037s", 2_000_000_000),
        Err(UnitError::Overflow)
    );
    assert_eq!(
        units::parse_time("1.5ms").map(|time| time.whole_nanos()),
        Ok(1_500_000)
    );
    assert!(matches!(
        units::parse_time("1 sec"),
        Err(UnitError::UnknownUnit { .. })
    ));
    assert!(matches!(
        units::parse_time("ms"),
        Err(UnitError::NotANumber { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// No input panics

/// xorshift64: a fixed, dependency-free stream of pseudo-random numbers, so the garbage fed
/// to the parser is the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Parses `text`; any outcome but a panic is fine, and an error must name the file.
fn must_not_panic(text: &str) {
    if let Err(error) = parse(text) {
        assert!(error.to_string().starts_with(ORIGIN), "{error}");
    }
}

#[test]
fn every_truncation_of_a_valid_scenario_is_handled() {
    for (end, _) in FULL.char_indices() {
        must_not_panic(&FULL[..end]);
    }
    for (end, _) in HOTPLUG.char_indices() {
        must_not_panic(&HOTPLUG[..end]);
    }
}

#[test]
fn random_edits_and_garbage_are_handled() {
    const PIECES: &[&str] = &[
        "[",
        "]",
        "[[event]]",
        "[machine]",
        "[expect.smbase]",
        "=",
        "\"",
        "\n",
        " ",
        ".",
        "-",
        "0",
        "1",
        "4096",
        "4097",
        "99999999999999999999",
        "0x7000000",
        "\"3ms\"",
        "\"-1s\"",
        "\"1.5GiB\"",
        "\"µs\"",
        "{",
        "}",
        ",",
        "true",
        "1.5",
        "cpus",
        "maxcpus",
        "apic_id",
        "at",
        "action",
        "\"cpu-add\"",
        "\"reset\"",
        "memory",
        "clock",
        "smbase",
        "timing",
        "#",
        "'",
        "\u{0}",
        "é",
    ];
    let mut rng = XorShift(0x5eed_0f5c_e4a1_0001);
    let sources = [FULL, HOTPLUG];
    for round in 0..3000 {
        let mut text = sources[round % 2].to_owned();
        for _ in 0..1 + rng.below(4) {
            let boundaries: Vec<usize> = text
                .char_indices()
                .map(|(i, _)| i)
                .chain([text.len()])
                .collect();
            let index = rng.below(boundaries.len());
            let at = boundaries[index];
            match rng.below(3) {
                0 => text.insert_str(at, PIECES[rng.below(PIECES.len())]),
                1 => {
                    let end = boundaries[(index + 1 + rng.below(8)).min(boundaries.len() - 1)];
                    text.replace_range(at..end, "");
                }
                _ => text.truncate(at),
            }
        }
        must_not_panic(&text);
    }
    for _ in 0..2000 {
        let text: String = (0..rng.below(12))
            .map(|_| PIECES[rng.below(PIECES.len())])
            .collect();
        must_not_panic(&text);
    }
}

#[test]
fn tseg_mbytes_is_taken_and_checked() {
    let scenario = parse("[machine]\ncpus = 1\ntseg_mbytes = 48\n").expect("valid");
    assert_eq!(scenario.machine.tseg_mbytes, 48);
    assert_eq!(scenario.machine_config().tseg_mbytes, 48);
    let error = parse("[machine]\ncpus = 1\ntseg_mbytes = 5000\n").expect_err("too large");
    let message = error.to_string();
    assert!(
        message.contains(":3:") && message.contains("5000"),
        "{message}"
    );
}
