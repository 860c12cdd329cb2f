//! The committed `.bin` images must be exactly what `build.sh` assembles from `src/`.
//!
//! Why: the crate embeds the committed binaries (so building smmsim needs no assembler), and
//! a source edit without a rebuild would otherwise test stale firmware without anyone noticing.
//! This test needs NASM and fails, rather than skips, when it is missing.

use std::path::Path;
use std::process::Command;

#[test]
fn committed_images_match_their_sources() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));

    let nasm = Command::new("nasm").arg("-v").output();
    match nasm {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "`nasm -v` failed ({}); install NASM with `apt-get install -y nasm`",
            output.status
        ),
        Err(err) => panic!(
            "NASM is not installed ({err}); it is needed to check the firmware images: \
             run `apt-get install -y nasm`"
        ),
    }

    let output = Command::new("bash")
        .arg(crate_dir.join("build.sh"))
        .arg("--check")
        .output()
        .expect("run bash build.sh --check");
    assert!(
        output.status.success(),
        "build.sh --check failed ({}); run firmware-images/build.sh and commit the images\n\
         stdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}
