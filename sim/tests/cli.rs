//! The `smmsim` binary on good and bad input: every bad input ends with one line naming the
//! problem and exit status 2, never a panic or a backtrace.

mod common;

use common::{reset_vector_image, smmsim, TempFile};

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_clean_error(output: &std::process::Output, needle: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

#[test]
fn boot_without_arguments_runs_the_builtin_image() {
    let output = smmsim(&["boot"]);
    assert_eq!(output.status.code(), Some(1), "debug exit with v = 0");
    // The default image is `boot`: a line of features and TSEG, then one line per CPU.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("features "), "{stdout}");
    assert!(stdout.contains("cpu 00000000 smbase "), "{stdout}");
    let err = stderr(&output);
    assert!(err.contains("debug exit"), "{err}");
    assert!(err.contains("instructions"), "{err}");
    assert!(err.contains("MIPS"), "{err}");
    assert!(err.contains("#UD"), "{err}");
}

#[test]
fn missing_empty_and_badly_sized_images_are_refused() {
    assert_clean_error(
        &smmsim(&["boot", "--firmware", "/nonexistent/fw.bin"]),
        "/nonexistent/fw.bin",
    );
    let empty = TempFile::with_bytes(".bin", &[]);
    assert_clean_error(
        &smmsim(&["boot", "--firmware", empty.0.to_str().unwrap()]),
        "is empty",
    );
    let odd = TempFile::with_bytes(".bin", &vec![0; 96 * 1024]);
    assert_clean_error(
        &smmsim(&["boot", "--firmware", odd.0.to_str().unwrap()]),
        "98304 bytes",
    );
    let huge = TempFile::with_bytes(".bin", &vec![0; 32 << 20]);
    assert_clean_error(
        &smmsim(&["boot", "--firmware", huge.0.to_str().unwrap()]),
        "power of two",
    );
    assert_clean_error(&smmsim(&["boot", "--builtin", "nope"]), "nope");
}

#[test]
fn bad_timing_files_name_the_file_and_the_value() {
    let unknown = TempFile::with_bytes(".toml", b"divde = 3\n");
    let output = smmsim(&["boot", "--timing", unknown.0.to_str().unwrap()]);
    assert_clean_error(&output, "divde");
    assert!(stderr(&output).contains(unknown.0.to_str().unwrap()));
    let zero = TempFile::with_bytes(".toml", b"load = 0\n");
    assert_clean_error(
        &smmsim(&["boot", "--timing", zero.0.to_str().unwrap()]),
        "load = 0",
    );
    let garbage = TempFile::with_bytes(".toml", b"[[[\n");
    assert_clean_error(
        &smmsim(&["boot", "--timing", garbage.0.to_str().unwrap()]),
        "timing file",
    );
    assert_clean_error(
        &smmsim(&["boot", "--timing", "/nonexistent/t.toml"]),
        "/nonexistent/t.toml",
    );
}

#[test]
fn a_runaway_guest_ends_at_the_cycle_limit_with_its_own_status() {
    let spin = TempFile::with_bytes(".bin", &reset_vector_image(&[0xEB, 0xFE])); // jmp $
    let output = smmsim(&[
        "boot",
        "--firmware",
        spin.0.to_str().unwrap(),
        "--max-cycles",
        "100000",
    ]);
    assert_eq!(output.status.code(), Some(8));
    let err = stderr(&output);
    let first = err.lines().next().unwrap_or("");
    assert!(first.contains("did not stop within 100000 cycles"), "{err}");
}

#[test]
fn a_halted_guest_ends_with_its_own_status() {
    let halt = TempFile::with_bytes(".bin", &reset_vector_image(&[0xFA, 0xF4])); // cli; hlt
    let output = smmsim(&["boot", "--firmware", halt.0.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(4));
    assert!(
        stderr(&output).contains("halted with interrupts disabled"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn help_explains_exit_statuses() {
    let output = smmsim(&["boot", "--help"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    for needle in [
        "--firmware",
        "--max-cycles",
        "--timing",
        "Exit status",
        "isa-debug-exit",
    ] {
        assert!(text.contains(needle), "{needle} missing from --help");
    }
}

#[test]
fn a_bad_scenario_is_refused_with_its_file_and_line_before_anything_runs() {
    let scenario = TempFile::with_bytes(
        ".toml",
        b"[machine]\ncpus = 1\nmaxcpus = 4\n\n[[event]]\nat = \"1ms\"\naction = \"cpu-add\"\napic_id = 9\n",
    );
    let output = smmsim(&["run", scenario.0.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    let expected = format!(
        "{}:8: event 1: apic_id 9 is not below maxcpus = 4",
        scenario.0.display()
    );
    assert!(err.contains(&expected), "{err}");
    assert!(output.stdout.is_empty(), "nothing ran");
}

#[test]
fn run_reports_failed_expectations_with_status_1_and_json_on_request() {
    // The boot image without hot-plug work finishes at once; the expected line never comes.
    let scenario = TempFile::with_bytes(
        ".toml",
        b"[machine]\ncpus = 1\n\n[expect]\nconsole = [\"no such line\"]\nstatus = 1\n",
    );
    let output = smmsim(&["run", scenario.0.to_str().unwrap(), "--json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the report is JSON");
    assert_eq!(report["passed"], false);
    assert_eq!(report["status"], 1);
    let expectations = report["expectations"].as_array().expect("a list");
    assert_eq!(expectations.len(), 2);
    assert_eq!(expectations[1]["passed"], false);
}
