//! CPU hot-add of the `boot` image under QEMU, the reference machine: the image is booted with
//! one CPU of four (`-smp 1,sockets=4,cores=1,threads=1,maxcpus=4`), told through fw_cfg to
//! serve hot-plug events with the `redirect` handshake (the variant QEMU TCG completes; see
//! boot.asm's header), and once its console says "ready for hot-plug" CPUs are added through
//! QMP `device_add`. The console and exit status must equal the recordings in
//! `firmware-images/expected/boot-hotplug-redirect-N.txt` / `.status`.
//!
//! 1. Start QEMU with a QMP socket and the `opt/smmsim/*` fw_cfg files.
//! 2. Wait for "ready for hot-plug" in the console file.
//! 3. `qmp_capabilities`, then `query-hotpluggable-cpus` names the CPU driver and the free
//!    sockets; `device_add` the lowest N of them back to back (two adds can land within one
//!    SMI window: the edk2 bug 2929 case).
//! 4. Wait for the debug-exit, compare.
//! 5. Run smmsim's equivalent scenario (`scenarios/smbase-smram-qemu-redirect.toml`, the
//!    `qemu` profile, 128 MiB as QEMU's default) with the same number of adds and require the
//!    same console lines and status. smmsim's guest side gets `opt/smmsim/strategy`, so it
//!    prints one line QEMU's run does not: the `strategy …` line, which is left out.
//!
//! QEMU is required: without it these tests fail and say what to install.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{firmware_dir, qemu_q35, Captured, TempFile};
use serde_json::{json, Value};
use smmsim::scenario::Scenario;
use smmsim::scenario_run::run_scenario;

/// Longest the boot may take to print "ready for hot-plug".
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest the run may take after the last `device_add` before the test calls it hung.
const FINISH_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the console file and the QEMU process are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// The line after which the image serves hot-plug events.
const READY_LINE: &str = "ready for hot-plug";
/// `-smp` for every run: one boot CPU, room for three more, one CPU per socket.
const SMP: &str = "1,sockets=4,cores=1,threads=1,maxcpus=4";

/// A QEMU process that is killed when the test ends, however it ends.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A path for QEMU's QMP socket, removed when dropped (QEMU creates the socket itself).
struct SocketPath(PathBuf);

impl SocketPath {
    fn new(tag: &str) -> SocketPath {
        SocketPath(
            std::env::temp_dir().join(format!("smmsim-qmp-{}-{tag}.sock", std::process::id())),
        )
    }
}

impl Drop for SocketPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A QMP connection: one JSON object per line each way.
struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects, reads the greeting and leaves capabilities negotiation mode.
    fn connect(path: &PathBuf) -> Qmp {
        let stream = UnixStream::connect(path).expect("QEMU's QMP socket accepts a connection");
        stream
            .set_read_timeout(Some(FINISH_TIMEOUT))
            .expect("a read timeout can be set");
        let writer = stream.try_clone().expect("the QMP socket can be cloned");
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message();
        assert!(
            greeting.get("QMP").is_some(),
            "QMP greeting, got {greeting}"
        );
        qmp.execute("qmp_capabilities", json!({}));
        qmp
    }

    fn read_message(&mut self) -> Value {
        let mut line = String::new();
        let read = self
            .reader
            .read_line(&mut line)
            .expect("QEMU answers on the QMP socket");
        assert!(read > 0, "QEMU closed the QMP socket");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("QMP sent bad JSON {line:?}: {e}"))
    }

    /// Runs `command`; returns its `return` value, skipping asynchronous events. An `error`
    /// reply fails the test.
    fn execute(&mut self, command: &str, arguments: Value) -> Value {
        let request = json!({ "execute": command, "arguments": arguments });
        writeln!(self.writer, "{request}").expect("QMP request is sent");
        loop {
            let message = self.read_message();
            if let Some(value) = message.get("return") {
                return value.clone();
            }
            if let Some(error) = message.get("error") {
                panic!("QMP {command} failed: {error}");
            }
        }
    }
}

/// Reads the console file; a missing file (QEMU not started yet) reads empty.
fn console_text(path: &PathBuf) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// Boots `boot` with `events` hot-plug events and the `redirect` handshake, adds `adds` CPUs
/// back to back once it is ready, and returns the console and QEMU's exit status.
fn run_hot_add(adds: usize) -> (String, i32) {
    let image = smmsim_firmware::find("boot")
        .expect("built-in boot image")
        .bytes;
    let bios = TempFile::with_bytes(".bin", image);
    let console = TempFile::with_bytes(".out", &[]);
    let socket = SocketPath::new(&format!("add{adds}"));
    let mut command = qemu_q35(&bios.0, &console.0);
    command
        .args([
            "-smp",
            SMP,
            "-fw_cfg",
            &format!("name=opt/smmsim/hotplug-events,string={adds}"),
            "-fw_cfg",
            "name=opt/smmsim/handshake,string=redirect",
            "-qmp",
        ])
        .arg(format!("unix:{},server=on,wait=off", socket.0.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut qemu = Qemu(command.spawn().expect("QEMU starts"));

    let started = Instant::now();
    while !console_text(&console.0).contains(READY_LINE) {
        if let Some(status) = qemu.0.try_wait().expect("QEMU can be waited for") {
            panic!(
                "QEMU ended ({status}) before \"{READY_LINE}\"; console:\n{}",
                console_text(&console.0)
            );
        }
        assert!(
            started.elapsed() < READY_TIMEOUT,
            "no \"{READY_LINE}\" within {READY_TIMEOUT:?}; console:\n{}",
            console_text(&console.0)
        );
        std::thread::sleep(POLL_INTERVAL);
    }

    let mut qmp = Qmp::connect(&socket.0);
    let hotpluggable = qmp.execute("query-hotpluggable-cpus", json!({}));
    // Free slots have no "qom-path"; each names its driver and socket/core/thread props.
    let mut free: Vec<&Value> = hotpluggable
        .as_array()
        .expect("query-hotpluggable-cpus returns a list")
        .iter()
        .filter(|cpu| cpu.get("qom-path").is_none())
        .collect();
    free.sort_by_key(|cpu| cpu["props"]["socket-id"].as_u64());
    assert!(
        free.len() >= adds,
        "QEMU offers {} free CPU slots, the test adds {adds}",
        free.len()
    );
    for (n, cpu) in free.iter().take(adds).enumerate() {
        let mut arguments = cpu["props"].clone();
        arguments["driver"] = cpu["type"].clone();
        arguments["id"] = json!(format!("hotcpu{n}"));
        qmp.execute("device_add", arguments);
    }

    let added = Instant::now();
    let status = loop {
        if let Some(status) = qemu.0.try_wait().expect("QEMU can be waited for") {
            break status;
        }
        assert!(
            added.elapsed() < FINISH_TIMEOUT,
            "QEMU did not finish within {FINISH_TIMEOUT:?} after {adds} device_add; console:\n{}",
            console_text(&console.0)
        );
        std::thread::sleep(POLL_INTERVAL);
    };
    (
        console_text(&console.0),
        status.code().expect("QEMU exited normally"),
    )
}

/// Compares a run with `expected/NAME.txt` and `expected/NAME.status`.
fn check_against_recording(name: &str, console: &str, status: i32) {
    let dir = firmware_dir().join("expected");
    let expected = std::fs::read_to_string(dir.join(format!("{name}.txt")))
        .unwrap_or_else(|e| panic!("expected/{name}.txt is readable: {e}"));
    let expected_status: i32 = std::fs::read_to_string(dir.join(format!("{name}.status")))
        .unwrap_or_else(|e| panic!("expected/{name}.status is readable: {e}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("expected/{name}.status holds a number: {e}"));
    assert_eq!(
        console, expected,
        "{name}: QEMU's console differs from the recording"
    );
    assert_eq!(status, expected_status, "{name}: QEMU's exit status");
}

/// Runs smmsim's equivalent of a QEMU run with `adds` CPUs added back to back (APIC IDs 1,
/// 2, …), returning its console without the `strategy` line, and its exit status.
fn run_smmsim_equivalent(adds: u32) -> (String, i32) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scenarios")
        .join("smbase-smram-qemu-redirect.toml");
    let text = std::fs::read_to_string(&path).expect("the shipped scenario is readable");
    let mut text = text.replace("console = [\"cpu 00000001 online\"]\n", "");
    text = text.replace("online = [0, 1]\n", "");
    for apic_id in 2..=adds {
        let event =
            format!("[[event]]\nat = \"3.001ms\"\naction = \"cpu-add\"\napic_id = {apic_id}\n\n");
        text = text.replace("[expect]", &format!("{event}[expect]"));
    }
    let scenario = Scenario::from_str(&text, &path).unwrap_or_else(|e| panic!("{e}"));
    let console = Captured::default();
    let report = run_scenario(&scenario, Box::new(console.clone()), None, false)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.passed, "{}", report.render());
    let bytes = console.0.lock().expect("console lock").clone();
    let text: String = String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|line| !line.starts_with("strategy "))
        .map(|line| format!("{line}\n"))
        .collect();
    (text, report.status)
}

#[test]
fn one_cpu_hot_added_with_the_redirect_handshake() {
    let (console, status) = run_hot_add(1);
    check_against_recording("boot-hotplug-redirect-1", &console, status);
    let (smmsim_console, smmsim_status) = run_smmsim_equivalent(1);
    assert_eq!(
        smmsim_console, console,
        "smmsim's console differs from QEMU's"
    );
    assert_eq!(smmsim_status, status);
}

#[test]
fn two_cpus_hot_added_back_to_back_are_relocated_one_at_a_time() {
    let (console, status) = run_hot_add(2);
    check_against_recording("boot-hotplug-redirect-2", &console, status);
    let (smmsim_console, smmsim_status) = run_smmsim_equivalent(2);
    assert_eq!(
        smmsim_console, console,
        "smmsim's console differs from QEMU's"
    );
    assert_eq!(smmsim_status, status);
}
