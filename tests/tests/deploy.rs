//! What an operations team installs, checked as they would use it: the
//! release archive of `scripts/release`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use polysync_clusters::process::Child;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Run `program args` in `dir` to its success (at most `limit`); its output.
fn run(program: &str, args: &[&str], dir: &Path, limit: Duration) -> String {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    Child::run_to_end(program, Path::new(program), &args, &[], dir, limit).unwrap_or_else(|e| panic!("{e}"))
}

/// `bin/polysync args` of the unpacked archive, with nothing of this
/// machine's but a fresh HOME and the system's PATH (no config, no plugin
/// directory given: only what the archive holds).
fn polysync(root: &Path, home: &Path, args: &[&str]) -> String {
    let home = format!("HOME={}", home.display());
    let bin = root.join("bin/polysync").display().to_string();
    let mut all = vec!["-i", home.as_str(), "PATH=/usr/bin:/bin", bin.as_str()];
    all.extend_from_slice(args);
    run("env", &all, root, Duration::from_secs(300))
}

#[test]
fn the_release_archive_runs_from_wherever_it_is_unpacked() {
    let dist = tempfile::tempdir().unwrap();
    let made = run(
        "bash",
        &["scripts/release", "--profile", "dev", "--out", &dist.path().display().to_string()],
        &workspace(),
        Duration::from_secs(1200),
    );
    let archive = PathBuf::from(made.lines().last().unwrap().trim());
    let name = archive.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("polysync-") && name.ends_with("-x86_64-linux-gnu.tar.gz"), "{name}");
    assert!(run("sha256sum", &["-c", "SHA256SUMS"], dist.path(), Duration::from_secs(60)).contains(": OK"));

    let unpacked = tempfile::tempdir().unwrap();
    run("tar", &["-xzf", &archive.display().to_string()], unpacked.path(), Duration::from_secs(60));
    let root = unpacked.path().join(name.trim_end_matches(".tar.gz"));
    for file in [
        "bin/polysync",
        "lib/polysync/plugins/libpolysync_provider_kubernetes.so",
        "lib/polysync/plugins/libpolysync_provider_aks.so",
        "lib/polysync/plugins/libpolysync_provider_eks.so",
        "lib/polysync/plugins/libpolysync_provider_ecs.so",
        "include/polysync_provider.h",
        "share/man/man1/polysync.1",
        "share/man/man1/polysync-serve.1",
        "share/bash-completion/completions/polysync",
        "share/zsh/site-functions/_polysync",
        "share/fish/vendor_completions.d/polysync.fish",
        "etc/polysync/config.example.toml",
        "lib/systemd/system/polysync.service",
    ] {
        assert!(root.join(file).is_file(), "the archive has no {file}");
    }
    let home = tempfile::tempdir().unwrap();
    let plugins = polysync(&root, home.path(), &["plugins"]);
    for provider in ["kubernetes", "aks", "eks", "ecs"] {
        assert!(
            plugins.lines().any(|l| l.starts_with(provider) && l.contains(polysync_provider_api::API_VERSION)),
            "{provider} did not load from the archive:\n{plugins}"
        );
    }
    let demo = polysync(&root, home.path(), &["demo"]);
    assert!(demo.contains("Demo finished"), "{demo}");
    let plugin_dir = root.join("lib/polysync/plugins").canonicalize().unwrap();
    assert!(demo.contains(&plugin_dir.display().to_string()), "{demo}");
    let example = root.join("etc/polysync/config.example.toml").display().to_string();
    assert!(polysync(&root, home.path(), &["--config", &example, "connections"]).contains("batch  kubernetes"));

    // The unit, pointed at where the archive is: valid, and hardened.
    let unit_text = std::fs::read_to_string(root.join("lib/systemd/system/polysync.service")).unwrap();
    let unit = unpacked.path().join("polysync.service");
    std::fs::write(&unit, unit_text.replace("/opt/polysync", &root.display().to_string())).unwrap();
    let u = unit.display().to_string();
    run("systemd-analyze", &["verify", &u], unpacked.path(), Duration::from_secs(60));
    let security = run(
        "systemd-analyze",
        &["security", "--offline=yes", "--no-pager", &u],
        unpacked.path(),
        Duration::from_secs(60),
    );
    let exposure: f64 = security
        .lines()
        .find_map(|l| l.split("Overall exposure level for polysync.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level:\n{security}"));
    assert!(exposure <= 2.0, "the unit's exposure is {exposure} (systemd's OK is below 2.0):\n{security}");
}
