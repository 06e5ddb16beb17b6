//! Helpers shared by the cross-crate tests in `tests/`: paths into the
//! workspace and compiling the C sources under `tests/c` with the system C
//! compiler.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Compile `tests/c/<source>` into `out` with `args` (e.g. `-shared`, `-D...`).
pub fn compile_c(source: &str, out: &Path, args: &[&str]) {
    let root = workspace();
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .arg("-std=c11")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-D_POSIX_C_SOURCE=200809L")
        .arg("-I")
        .arg(root.join("provider-api/include"))
        .args(args)
        .arg("-o")
        .arg(out)
        .arg(root.join("tests/c").join(source))
        .args(["-ldl", "-lpthread"])
        .status()
        .expect("a C compiler (cc) is needed for the C ABI tests; install gcc");
    assert!(status.success(), "compiling tests/c/{source} failed");
}
