//! The eks provider's own behaviour against moto and the sandbox: the
//! token is replaced after a 401, role assumption signs as the role, each
//! failure says what to fix, ListClusters pages, and the CLI exits 2 when
//! there are no credentials at all.

use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use polysync::plugins::Registry;
use polysync_conformance::artifacts;
use polysync_provider_api::abi::host::PluginProvider;
use polysync_provider_api::{ClustersRequest, DiscoverRequest, ErrorKind, Provider};
use polysync_tests::Flavor;
use polysync_tests::eks::EksWorld;
use polysync_tests::moto::{ACCESS_KEY, REGION, SECRET_KEY};
use serde_json::json;

const NS: &str = "eks-e2e";

fn world() -> &'static EksWorld {
    static WORLD: OnceLock<EksWorld> = OnceLock::new();
    WORLD.get_or_init(|| EksWorld::start(Flavor::Sandbox, "e2e-cluster", NS, 3, 0))
}

fn connect(settings: serde_json::Value) -> PluginProvider {
    let mut registry = Registry::default();
    registry.add(artifacts::cdylib("polysync-provider-eks"));
    registry.connect("eks", &settings).unwrap_or_else(|e| panic!("{e}"))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

fn discover(p: &PluginProvider) -> polysync_provider_api::Result<usize> {
    rt().block_on(p.discover(DiscoverRequest { page_token: None, page_size: Some(50) })).map(|page| page.entries.len())
}

fn with(extra: serde_json::Value) -> serde_json::Value {
    let mut settings = world().settings(NS);
    for (k, v) in extra.as_object().unwrap() {
        settings[k] = v.clone();
    }
    settings
}

#[test]
fn tokens_are_signed_for_the_cluster_and_checked_by_the_sandbox() {
    let w = world();
    assert_eq!(discover(&connect(w.settings(NS))).unwrap(), 3);
    let callers = w.tokens.callers.lock().unwrap().clone();
    assert!(callers.iter().any(|c| c.contains(":user/") || c.contains("moto")), "{callers:?}");
}

/// A world of its own, for tests that make the cluster refuse tokens.
fn own_world(name: &str) -> EksWorld {
    EksWorld::start(Flavor::Sandbox, name, NS, 3, 0)
}

#[test]
fn a_refused_token_is_replaced_and_the_call_repeated() {
    let w = &own_world("refuses-once");
    let p = connect(w.settings(NS));
    assert_eq!(discover(&p).unwrap(), 3, "connected");
    let refused_before = w.tokens.refused.lock().unwrap().len();
    // The cluster refuses the next token once, as after a revocation.
    w.tokens.refuse_next.store(1, Ordering::SeqCst);
    assert_eq!(discover(&p).unwrap(), 3, "the call succeeds after one 401");
    let refused = w.tokens.refused.lock().unwrap()[refused_before..].to_vec();
    assert!(refused.iter().any(|r| r == "revoked by the test"), "{refused:?}");
}

#[test]
fn a_cluster_that_keeps_refusing_is_unauthorized_with_the_eks_fix() {
    let w = &own_world("refuses-always");
    let p = connect(w.settings(NS));
    w.tokens.refuse_next.store(2, Ordering::SeqCst);
    let err = discover(&p).unwrap_err();
    w.tokens.refuse_next.store(0, Ordering::SeqCst);
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(err.message().contains("access entry"), "{err}");
}

#[test]
fn role_assumption_signs_the_token_as_the_role() {
    let w = world();
    let p = connect(with(json!({"role_arn": "arn:aws:iam::123456789012:role/batch-runner", "external_id": "x-1"})));
    assert_eq!(discover(&p).unwrap(), 3);
    let callers = w.tokens.callers.lock().unwrap().clone();
    assert!(
        callers.iter().any(|c| c.ends_with(":assumed-role/batch-runner/polysync")),
        "the sandbox saw the assumed role: {callers:?}"
    );
}

#[test]
fn rbac_refusal_in_the_cluster_is_forbidden() {
    let p = connect(with(json!({"namespace": "not-granted"})));
    let err = discover(&p).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden, "{err}");
    assert!(err.message().contains("RBAC"), "{err}");
}

#[test]
fn an_unknown_cluster_is_not_found_and_names_the_fix() {
    let p = connect(with(json!({"cluster": "no-such-cluster"})));
    let err = discover(&p).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.message().contains("no EKS cluster \"no-such-cluster\""), "{err}");
}

#[test]
fn bad_settings_are_refused_before_any_call() {
    let mut registry = Registry::default();
    registry.add(artifacts::cdylib("polysync-provider-eks"));
    for (settings, says) in [
        (json!({}), "`cluster` is required"),
        (json!({"cluster": "a b"}), "not an EKS cluster name"),
        (json!({"cluster": "c", "secret_access_key": "shh"}), "secret_access_key_env"),
        (json!({"cluster": "c", "role_arn": "admin"}), "not a role ARN"),
        (json!({"cluster": "c", "clustr": "x"}), "unknown field"),
    ] {
        let err = registry.connect("eks", &settings).err().unwrap_or_else(|| panic!("{settings} was accepted"));
        assert!(err.to_string().contains(says), "{settings}: {err}");
        assert!(!err.to_string().contains("shh"), "a secret is never echoed");
    }
}

#[test]
fn list_clusters_follows_every_page() {
    let w = world();
    for i in 0..4 {
        w.moto.create_eks_cluster(&format!("extra-{i}"), "https://127.0.0.1:1", "QQ==");
    }
    let p = connect(w.settings(NS));
    let rt = rt();
    let mut names = Vec::new();
    let mut request = ClustersRequest { page_token: None, page_size: Some(2) };
    let mut pages = 0;
    loop {
        let page = rt.block_on(p.list_clusters(request.clone())).unwrap();
        pages += 1;
        assert!(page.clusters.len() <= 2);
        names.extend(page.clusters.into_iter().map(|c| c.name));
        match page.next_page_token {
            Some(t) => request.page_token = Some(t),
            None => break,
        }
    }
    for name in ["e2e-cluster", "extra-0", "extra-3"] {
        assert!(names.contains(&name.to_owned()), "{name} in {names:?}");
    }
    assert!(pages >= 3, "{pages} pages");
}

/// A config file with one eks connection `prod` to the world's cluster.
fn cli_config(w: &EksWorld, dir: &std::path::Path) -> std::path::PathBuf {
    let connection = format!(
        "provider = \"eks\"\ncluster = {:?}\nnamespace = {NS:?}\n{}",
        w.name,
        polysync_tests::moto::aws_toml(&w.moto.url)
    );
    polysync_tests::write_config(dir, "polysync-provider-eks", None, "", "prod", &connection)
}

#[test]
fn the_cli_lists_the_clusters_a_connection_reaches() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(artifacts::executable("polysync", "polysync"))
        .arg("--config")
        .arg(cli_config(w, dir.path()))
        .args(["--output", "json", "connections", "clusters", "prod"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v["clusters"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"e2e-cluster"), "{names:?}");
    assert!(v["clusters"][0]["location"] == "eu-west-1", "{v}");
}

/// Without `credentials_file` a connection takes the standard chain; here
/// the environment of a `polysync` process, then nothing.
#[test]
fn the_standard_chain_reads_the_environment_and_without_keys_the_cli_exits_2() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let connection = format!(
        "provider = \"eks\"\ncluster = {:?}\nnamespace = {NS:?}\nregion = {REGION:?}\nendpoint_url = {:?}\n",
        w.name, w.moto.url
    );
    let config = polysync_tests::write_config(dir.path(), "polysync-provider-eks", None, "", "prod", &connection);
    let test = |keys: bool| {
        let mut cmd = polysync_tests::polysync_command(&config);
        cmd.args(["connections", "test", "prod"]).env("HOME", dir.path());
        // No developer's keys, files or profile; never instance metadata.
        for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"] {
            cmd.env_remove(var);
        }
        cmd.env("AWS_CONFIG_FILE", "/dev/null").env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
        cmd.env("AWS_EC2_METADATA_DISABLED", "true");
        if keys {
            cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY).env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
        }
        cmd.output().unwrap()
    };
    let out = test(true);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = test(false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no AWS credentials"), "{stderr}");
}

/// A `credentials_file` is used alone: a file that is not there, or one
/// without the connection's `profile`, is named (InvalidInput), never
/// read as "no credentials" or replaced by the host's own identity.
#[test]
fn a_credentials_file_without_the_profile_or_missing_is_named() {
    let mut settings = world().settings(NS);
    settings["profile"] = json!("nope");
    let err = discover(&connect(settings.clone())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("has no profile \"nope\" (it has polysync-test)"), "{err}");
    settings["credentials_file"] = json!("/nonexistent/credentials");
    let err = discover(&connect(settings)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("/nonexistent/credentials is not a readable file"), "{err}");
}
