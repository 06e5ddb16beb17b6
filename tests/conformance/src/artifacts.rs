//! Find (building if needed) a workspace crate's dynamic library.
//!
//! Cargo builds a `cdylib` only for the package being built, not for a
//! dependency, so tests that load plugins ask cargo for them: `cargo build
//! -p NAME --message-format=json` is a no-op when up to date and reports the
//! exact artifact path.
//!
//! In the test suite the plugins and the `polysync` binary are built by one
//! cargo call, the first time a test asks for any of them. Cargo unifies dependency features
//! over the packages of one call: built one package at a time, each plugin
//! got its own copy of tokio, hyper, kube and the AWS SDK, compiled again.

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

/// What the test suite loads: built together (see the module docs).
const PLUGINS: [&str; 5] = [
    "polysync-provider-kubernetes",
    "polysync-provider-aks",
    "polysync-provider-eks",
    "polysync-provider-ecs",
    "polysync-fake-provider",
];
const HOST: (&str, &str) = ("polysync", "polysync");

fn build(package: &str, bin: Option<&str>) -> PathBuf {
    static CACHE: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    let cache_key = format!("{package}/{}", bin.unwrap_or("cdylib"));
    if let Some(path) = cache.get(&cache_key) {
        return path.clone();
    }
    // Benchmarks (release) load one plugin or two: building every plugin
    // there would cost minutes of release builds of the AWS SDK for nothing.
    let together = !is_release()
        && match bin {
            None => PLUGINS.contains(&package),
            Some(bin) => (package, bin) == HOST,
        };
    let messages = if together {
        let mut args: Vec<&str> = PLUGINS.iter().flat_map(|p| ["-p", p]).collect();
        args.extend(["-p", HOST.0, "--lib", "--bin", HOST.1]);
        cargo_build(&args, "the plugins and the polysync binary")
    } else {
        let mut args = vec!["-p", package];
        if let Some(bin) = bin {
            args.extend(["--bin", bin]);
        }
        cargo_build(&args, package)
    };
    for m in messages.iter().filter(|m| m["reason"] == "compiler-artifact") {
        let Some(name) = m["package_id"].as_str().and_then(package_name) else { continue };
        let is_bin = m["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin"));
        if is_bin && let Some(exe) = m["executable"].as_str() {
            let bin = m["target"]["name"].as_str().unwrap_or_default();
            cache.insert(format!("{name}/{bin}"), PathBuf::from(exe));
        }
        let is_cdylib = m["target"]["crate_types"].as_array().is_some_and(|t| t.iter().any(|t| t == "cdylib"));
        let library = m["filenames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str())
            .find(|f| f.ends_with(&format!(".{}", std::env::consts::DLL_EXTENSION)));
        if is_cdylib && let Some(library) = library {
            cache.insert(format!("{name}/cdylib"), PathBuf::from(library));
        }
    }
    cache.get(&cache_key).cloned().unwrap_or_else(|| match bin {
        Some(bin) => panic!("cargo built {package} but reported no executable {bin}"),
        None => panic!("cargo built {package} but reported no cdylib"),
    })
}

/// The package name in a cargo package id: `path+file:///…/host#polysync@0.1.0`
/// or `path+file:///…/polysync-sandbox#0.1.0` (the name is the directory's).
fn package_name(id: &str) -> Option<String> {
    let (url, fragment) = id.rsplit_once('#')?;
    Some(match fragment.split_once('@') {
        Some((name, _)) => name.to_owned(),
        None => url.rsplit('/').next()?.to_owned(),
    })
}

/// `cargo build ARGS` with the test's profile; the JSON messages.
fn cargo_build(args: &[&str], what: &str) -> Vec<serde_json::Value> {
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
    cmd.args(["build", "--quiet", "--message-format=json"]).args(args);
    if is_release() {
        cmd.arg("--release");
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("could not run cargo to build {what}: {e}"));
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
        panic!("cargo build {} failed:\n{}{}", args.join(" "), errors.join(""), String::from_utf8_lossy(&out.stderr));
    }
    messages
}

fn is_release() -> bool {
    std::env::current_exe().is_ok_and(|exe| exe.components().any(|c| c.as_os_str() == "release"))
}
