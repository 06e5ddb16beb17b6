//! Find (building if needed) a workspace crate's dynamic library.
//!
//! Cargo builds a `cdylib` only for the package being built, not for a
//! dependency, so tests that load plugins ask cargo for them: `cargo build
//! -p NAME --message-format=json` is a no-op when up to date and reports the
//! exact artifact path.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// Path of the `cdylib` of workspace package `package`, built with the same
/// profile as the running test binary.
pub fn cdylib(package: &str) -> PathBuf {
    build(package, None)
}

/// Path of executable `bin` of workspace package `package`.
pub fn executable(package: &str, bin: &str) -> PathBuf {
    build(package, Some(bin))
}

fn build(package: &str, bin: Option<&str>) -> PathBuf {
    static CACHE: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let cache_key = format!("{package}/{}", bin.unwrap_or("cdylib"));
    if let Some(path) = cache.get_or_insert_with(HashMap::new).get(&cache_key) {
        return path.clone();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    // The variables cargo sets for the running test crate would look like a
    // changed environment to build scripts (ring tracks CARGO_MANIFEST_DIR)
    // and force a rebuild on every call.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let per_crate = key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_")
            || matches!(
                &*key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            );
        if per_crate {
            cmd.env_remove(&*key);
        }
    }
    cmd.args(["build", "--quiet", "--message-format=json", "-p", package]);
    if let Some(bin) = bin {
        cmd.args(["--bin", bin]);
    }
    if is_release() {
        cmd.arg("--release");
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("could not run cargo to build {package}: {e}"));
    let messages: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    if !out.status.success() {
        // With --message-format=json the compiler's own errors (a full disk,
        // a type error) are on stdout; stderr only says that it failed.
        let errors: Vec<&str> = messages
            .iter()
            .filter(|m| m["reason"] == "compiler-message" && m["message"]["level"] == "error")
            .filter_map(|m| m["message"]["rendered"].as_str())
            .collect();
        panic!("cargo build -p {package} failed:\n{}{}", errors.join(""), String::from_utf8_lossy(&out.stderr));
    }
    if bin.is_some() {
        let exe = messages
            .iter()
            .filter(|m| m["reason"] == "compiler-artifact")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .unwrap_or_else(|| panic!("cargo built {package} but reported no executable"));
        cache.get_or_insert_with(HashMap::new).insert(cache_key, exe.clone());
        return exe;
    }
    let path = messages
        .iter()
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| m["target"]["crate_types"].as_array().is_some_and(|t| t.iter().any(|t| t == "cdylib")))
        .find_map(|m| {
            m["filenames"]
                .as_array()?
                .iter()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(&format!(".{}", std::env::consts::DLL_EXTENSION)))
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| panic!("cargo built {package} but reported no cdylib"));
    cache.get_or_insert_with(HashMap::new).insert(cache_key, path.clone());
    path
}

fn is_release() -> bool {
    std::env::current_exe().is_ok_and(|exe| exe.components().any(|c| c.as_os_str() == "release"))
}
