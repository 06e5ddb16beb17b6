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

/// The container image of `scripts/image` (mmdebstrap and buildah, no
/// daemon), unpacked layer by layer as a runtime would, runs `plugins` and
/// the demo under chroot as the unprivileged user its config names.
/// (Containers cannot run on these machines: crun refuses their cgroups.)
#[test]
fn the_image_runs_as_its_unprivileged_user() {
    let dist = tempfile::tempdir().unwrap();
    let made = run(
        "bash",
        &["scripts/image", "--profile", "dev", "--out", &dist.path().display().to_string()],
        &workspace(),
        Duration::from_secs(1200),
    );
    let image = PathBuf::from(made.lines().last().unwrap().trim());
    let layout = tempfile::tempdir().unwrap();
    run("tar", &["-xf", &image.display().to_string()], layout.path(), Duration::from_secs(120));
    let blob = |digest: &str| layout.path().join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let json = |path: PathBuf| -> serde_json::Value { serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap() };
    let index = json(layout.path().join("index.json"));
    let manifest = json(blob(index["manifests"][0]["digest"].as_str().unwrap()));
    let config = json(blob(manifest["config"]["digest"].as_str().unwrap()));
    assert_eq!(config["config"]["User"], "10001:10001", "{config}");
    assert_eq!(config["config"]["Entrypoint"][0], "/opt/polysync/bin/polysync", "{config}");
    let env: Vec<String> =
        config["config"]["Env"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_owned()).collect();

    let root = tempfile::tempdir().unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let file = blob(layer["digest"].as_str().unwrap()).display().to_string();
        run("tar", &["-xf", &file], root.path(), Duration::from_secs(300));
    }
    // As a runtime does: /proc mounted (in a mount namespace of the
    // command's own), then the entrypoint as the image's user.
    let in_image = |args: &str| {
        let script = format!(
            "mount -t proc proc {r}/proc && exec chroot --userspec=10001:10001 {r} /usr/bin/env -i {env} {args}",
            r = root.path().display(),
            env = env.join(" "),
        );
        run("unshare", &["--mount", "--fork", "sh", "-c", &script], root.path(), Duration::from_secs(300))
    };
    assert_eq!(in_image("/usr/bin/id -u").trim(), "10001");
    let plugins = in_image("/opt/polysync/bin/polysync plugins");
    for provider in ["kubernetes", "aks", "eks", "ecs"] {
        assert!(plugins.lines().any(|l| l.starts_with(provider)), "{provider} did not load in the image:\n{plugins}");
    }
    let demo = in_image("/opt/polysync/bin/polysync demo");
    assert!(demo.contains("Demo finished"), "{demo}");
}
