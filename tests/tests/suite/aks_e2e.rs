//! The aks provider's own behaviour against the Azure fake and the
//! sandbox: the ARM call (path, api-version, bearer token), admin
//! credentials, ARM's 403 and 404, Entra token refresh before expiry and
//! after a 401, the portal URL, and cluster listing.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use polysync::plugins::Registry;
use polysync_conformance::artifacts;
use polysync_provider_api::abi::host::PluginProvider;
use polysync_provider_api::{ClustersRequest, DiscoverRequest, ErrorKind, Provider, UrlRequest};
use polysync_tests::Flavor;
use polysync_tests::aks::AksWorld;
use polysync_tests::azure_fake::{AKS_APP, CLIENT_ID, CLIENT_SECRET, RESOURCE_GROUP, SUBSCRIPTION, TENANT};
use serde_json::json;

const NS: &str = "aks-e2e";

fn world() -> &'static AksWorld {
    static WORLD: OnceLock<AksWorld> = OnceLock::new();
    WORLD.get_or_init(|| AksWorld::start(Flavor::Sandbox, NS, 3, 0))
}

/// A world of its own, for tests that change the fake's behaviour.
fn own_world() -> AksWorld {
    AksWorld::start(Flavor::Sandbox, NS, 3, 0)
}

fn connect(settings: &serde_json::Value) -> PluginProvider {
    let mut registry = Registry::default();
    registry.add(artifacts::cdylib("polysync-provider-aks"));
    registry.connect("aks", settings).unwrap_or_else(|e| panic!("{e}"))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

fn discover(p: &PluginProvider) -> polysync_provider_api::Result<usize> {
    rt().block_on(p.discover(DiscoverRequest { page_token: None, page_size: Some(50) })).map(|page| page.entries.len())
}

fn with(w: &AksWorld, cluster: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut s = w.settings(cluster);
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

#[test]
fn the_arm_call_has_the_path_api_version_and_an_arm_token() {
    let w = own_world();
    assert_eq!(discover(&connect(&w.settings("entra-cluster"))).unwrap(), 3);
    let requests = w.fake.arm_requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.path,
        format!(
            "/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.ContainerService/managedClusters/entra-cluster/listClusterUserCredential"
        )
    );
    assert_eq!(r.query, "api-version=2024-09-01");
    let token = r.authorization.strip_prefix("Bearer ").expect("a bearer token");
    let issued = w.fake.state.tokens.lock().unwrap().get(token).cloned().expect("a token the fake issued");
    assert_eq!(issued.scope, format!("{}/.default", w.fake.url), "an ARM token, not the cluster's");
    // And the cluster got a token for the AKS server application.
    assert_eq!(w.fake.state.token_requests_for(&format!("{AKS_APP}/.default")), 1);
}

#[test]
fn admin_credentials_come_from_list_cluster_admin_credential() {
    let w = own_world();
    assert_eq!(discover(&connect(&with(&w, "cert-cluster", json!({"admin": true})))).unwrap(), 3);
    assert!(w.fake.arm_requests()[0].path.ends_with("/cert-cluster/listClusterAdminCredential"));
}

#[test]
fn an_arm_403_is_forbidden_with_arms_code_message_and_the_role_to_assign() {
    let w = own_world();
    w.fake.state.forbid.store(true, Ordering::SeqCst);
    let err = discover(&connect(&w.settings("entra-cluster"))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden, "{err}");
    let m = err.message();
    assert!(m.contains("AuthorizationFailed"), "{m}");
    assert!(m.contains("does not have authorization to perform action"), "{m}");
    assert!(m.contains("Azure Kubernetes Service Cluster User Role"), "{m}");
}

#[test]
fn an_unknown_cluster_is_not_found() {
    let err = discover(&connect(&world().settings("no-such-cluster"))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.message().contains("ResourceNotFound"), "{err}");
}

/// The world's settings with the service principal taken out, for the
/// credentials that find theirs elsewhere.
fn without_principal(w: &AksWorld, cluster: &str, credential: &str) -> serde_json::Value {
    let mut s = with(w, cluster, json!({"credential": credential}));
    for key in ["tenant_id", "client_id", "client_secret_file"] {
        s.as_object_mut().unwrap().remove(key);
    }
    s
}

#[test]
fn a_credential_that_is_not_configured_says_what_is_missing() {
    // No AZURE_FEDERATED_TOKEN_FILE in this environment.
    let err = discover(&connect(&without_principal(world(), "entra-cluster", "workload_identity"))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(err.message().contains("needs AZURE_FEDERATED_TOKEN_FILE"), "{err}");
    // A secret file that is gone, or empty, is named.
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("gone");
    let err = discover(&connect(&with(world(), "entra-cluster", json!({"client_secret_file": gone})))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(err.message().contains("cannot read") && err.message().contains("client_secret_file"), "{err}");
    std::fs::write(&gone, "\n").unwrap();
    let err = discover(&connect(&with(world(), "entra-cluster", json!({"client_secret_file": gone})))).unwrap_err();
    assert!(err.message().contains("is empty"), "{err}");
}

/// `credential = "environment"` reads the service principal from the
/// host's environment: here the environment of a `polysync` process.
#[test]
fn the_environment_credential_reads_the_hosts_variables() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let settings = without_principal(w, "entra-cluster", "environment");
    let settings: String = settings.as_object().unwrap().iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    let connection = format!("provider = \"aks\"\n{settings}");
    let config = polysync_tests::write_config(dir.path(), "polysync-provider-aks", None, "", "azure", &connection);
    let test = |env: &[(&str, &str)]| {
        let mut cmd = polysync_tests::polysync_command(&config);
        cmd.args(["connections", "test", "azure"]);
        for var in ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"] {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let (tenant, client, secret) = (TENANT, CLIENT_ID, CLIENT_SECRET);
    let out = test(&[("AZURE_TENANT_ID", tenant), ("AZURE_CLIENT_ID", client), ("AZURE_CLIENT_SECRET", secret)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = test(&[("AZURE_TENANT_ID", tenant), ("AZURE_CLIENT_ID", client)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("set AZURE_CLIENT_SECRET"), "{stderr}");
}

#[test]
fn an_unreachable_authority_is_reported_as_such() {
    let err = discover(&connect(&with(world(), "entra-cluster", json!({"authority_host": "https://127.0.0.1:1"}))))
        .unwrap_err();
    assert!(err.message().contains("Entra ID token"), "{err}");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains("could not reach 127.0.0.1"), "{err}");
}

#[test]
fn a_revoked_cluster_token_is_replaced_after_the_401() {
    let w = own_world();
    let p = connect(&w.settings("entra-cluster"));
    assert_eq!(discover(&p).unwrap(), 3);
    let scope = format!("{AKS_APP}/.default");
    assert_eq!(w.fake.state.token_requests_for(&scope), 1);
    w.fake.state.revoke_all(&scope);
    assert_eq!(discover(&p).unwrap(), 3, "the call succeeds after one 401");
    assert_eq!(w.fake.state.token_requests_for(&scope), 2, "a new token was asked for");
}

#[test]
fn tokens_are_replaced_before_they_expire() {
    let w = own_world();
    // 300 s left is inside the 5-minute margin: every use asks anew, while
    // the old token is still valid.
    w.fake.state.lifetime.store(300, Ordering::SeqCst);
    let p = connect(&w.settings("entra-cluster"));
    assert_eq!(discover(&p).unwrap(), 3);
    assert_eq!(discover(&p).unwrap(), 3);
    let scope = format!("{AKS_APP}/.default");
    assert!(w.fake.state.token_requests_for(&scope) >= 2, "{:?}", w.fake.state.token_requests.lock().unwrap());
    assert!(w.fake.state.revoked.lock().unwrap().is_empty(), "no token had to be refused");
}

#[test]
fn the_monitor_url_is_the_portal_workloads_blade() {
    let p = connect(&world().settings("entra-cluster"));
    let want = format!(
        "https://portal.azure.com/#resource/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.ContainerService/managedClusters/entra-cluster/workloads"
    );
    let rt = rt();
    for request in
        [UrlRequest::Entry { external_id: "batch-00001".into() }, UrlRequest::Run { run_id: "batch-00001-x".into() }]
    {
        assert_eq!(rt.block_on(p.monitor_url(request)).unwrap().url.as_deref(), Some(want.as_str()));
    }
}

#[test]
fn clusters_are_listed_across_next_links() {
    let w = own_world();
    for n in ["a-extra", "b-extra", "c-extra"] {
        w.fake.state.clusters.lock().unwrap().insert(n.into(), String::new());
    }
    let p = connect(&w.settings("entra-cluster"));
    let rt = rt();
    let mut names = Vec::new();
    let mut request = ClustersRequest::default();
    let mut pages = 0;
    loop {
        let page = rt.block_on(p.list_clusters(request.clone())).unwrap();
        pages += 1;
        names.extend(page.clusters.into_iter().map(|c| c.name));
        match page.next_page_token {
            Some(t) => request.page_token = Some(t),
            None => break,
        }
    }
    assert_eq!(names, ["a-extra", "b-extra", "c-extra", "cert-cluster", "entra-cluster"]);
    assert_eq!(pages, 3);
}

#[test]
fn bad_settings_are_refused_before_any_call() {
    let mut registry = Registry::default();
    registry.add(artifacts::cdylib("polysync-provider-aks"));
    let base = json!({"subscription_id": "s", "resource_group": "r", "cluster": "c"});
    let with = |k: &str, v: serde_json::Value| {
        let mut s = base.clone();
        s[k] = v;
        s
    };
    for (settings, says) in [
        (json!({"resource_group": "r", "cluster": "c"}), "`subscription_id` is required"),
        (with("credential", json!("password")), "not one of environment"),
        (with("tenant_id", json!("t")), "is for credential = \"client_secret\""),
        (with("credential", json!("client_secret")), "needs `tenant_id`"),
        (with("arm_endpoint", json!("http://arm")), "must be an https URL"),
        (with("ca_file", json!("/nonexistent.pem")), "cannot read"),
        (with("clster", json!("x")), "unknown field"),
    ] {
        let err = registry.connect("aks", &settings).err().unwrap_or_else(|| panic!("{settings} was accepted"));
        assert!(err.to_string().contains(says), "{settings}: {err}");
    }
}
