//! The host's loader refuses broken libraries with a one-line reason and
//! still loads the good ones beside them.

use polysync::plugins::Registry;
use polysync_conformance::artifacts;
use polysync_tests::compile_c;

#[test]
fn bad_libraries_are_refused_and_good_ones_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let so = |name: &str| dir.path().join(format!("{name}.{}", std::env::consts::DLL_EXTENSION));
    compile_c("bad_plugins.c", &so("wrong_table_abi"), &["-shared", "-fPIC", "-DWRONG_TABLE_ABI", "-DNAME=\"w\""]);
    compile_c("bad_plugins.c", &so("v2_only"), &["-shared", "-fPIC", "-DV2_ONLY", "-DNAME=\"v2\""]);
    compile_c("bad_plugins.c", &so("no_symbol"), &["-shared", "-fPIC", "-DNO_SYMBOL"]);
    compile_c("bad_plugins.c", &so("api_2"), &["-shared", "-fPIC", "-DAPI_2", "-DNAME=\"future\""]);
    compile_c("bad_plugins.c", &so("api_1_2"), &["-shared", "-fPIC", "-DAPI_1_2", "-DNAME=\"older\""]);
    compile_c("bad_plugins.c", &so("bad_manifest"), &["-shared", "-fPIC", "-DBAD_MANIFEST", "-DNAME=\"x\""]);
    std::fs::write(so("not_a_library"), "#!/bin/sh\necho this is a text file\n").unwrap();
    std::fs::write(dir.path().join("README.txt"), "not a library name: ignored").unwrap();
    let fake = artifacts::cdylib("polysync-fake-provider");
    std::fs::copy(&fake, so("libpolysync_fake_provider")).unwrap();
    // A second copy of the same plugin is refused as a duplicate.
    std::fs::copy(&fake, so("zz_second_copy")).unwrap();

    let registry = Registry::scan(dir.path()).unwrap();
    let names: Vec<_> = registry.manifests().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["fake", "older"], "only the good plugins load, an API 1.2 one among them");

    let refused: Vec<_> = registry
        .refused()
        .iter()
        .map(|r| (r.path.file_stem().unwrap().to_string_lossy().into_owned(), r.kind, r.reason.clone()))
        .collect();
    for (_, _, reason) in &refused {
        assert!(!reason.contains('\n'), "a reason is one line: {reason:?}");
    }
    let reason_of = |stem: &str| {
        refused.iter().find(|(s, _, _)| s == stem).unwrap_or_else(|| panic!("{stem} was not refused: {refused:?}"))
    };
    let (_, kind, reason) = reason_of("wrong_table_abi");
    assert_eq!(*kind, "abi_mismatch");
    assert!(reason.contains("ABI 2") && reason.contains("ABI 1"), "{reason}");
    let (_, kind, reason) = reason_of("v2_only");
    assert_eq!(*kind, "abi_mismatch");
    assert!(reason.contains("ABI 2"), "{reason}");
    let (_, kind, reason) = reason_of("no_symbol");
    assert_eq!(*kind, "no_entry_point");
    assert!(reason.contains("polysync_provider_v1"), "{reason}");
    let (_, kind, reason) = reason_of("api_2");
    assert_eq!(*kind, "api_mismatch");
    assert!(reason.contains("2.0.0") && reason.contains(">=1.0.0"), "{reason}");
    let (_, kind, _) = reason_of("bad_manifest");
    assert_eq!(*kind, "bad_manifest");
    let (_, kind, reason) = reason_of("not_a_library");
    assert_eq!(*kind, "not_a_library");
    assert!(reason.contains("remove it"), "{reason}");
    let (_, kind, _) = reason_of("zz_second_copy");
    assert_eq!(*kind, "duplicate");
    assert_eq!(refused.len(), 7, "README.txt is not a library name and is ignored: {refused:?}");

    // The good plugin works after its neighbours were refused.
    let provider = registry.connect("fake", &serde_json::json!({"entries": 3})).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let page = rt.block_on(polysync_provider_api::Provider::discover(&provider, Default::default())).unwrap();
    assert_eq!(page.entries.len(), 3);
}

#[test]
fn connection_settings_errors_name_the_setting() {
    let mut registry = Registry::default();
    registry.add(artifacts::cdylib("polysync-fake-provider"));
    let err = registry.connect("fake", &serde_json::json!({"entries": 3, "namepsace": "x"})).unwrap_err();
    assert_eq!(err.kind(), polysync_provider_api::ErrorKind::InvalidInput);
    assert!(err.message().contains("namepsace"), "{err}");
    let err = registry.connect("fake", &serde_json::json!({"tick_ms": 0})).unwrap_err();
    assert!(err.message().contains("tick_ms"), "{err}");
    let err = registry.connect("nope", &serde_json::json!({})).unwrap_err();
    assert!(err.message().contains("fake"), "lists the loaded plugins: {err}");
}

/// The ABI promises no callback with an instance's `ctx` once `destroy`
/// returned; the host frees it right after. Another instance keeps the
/// plugin busy (and logging) after the first is gone.
#[test]
fn no_log_callback_reaches_a_destroyed_instance() {
    use polysync_conformance::raw::RawInstance;
    use polysync_provider_api::abi::Op;
    use serde_json::json;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    let plugin = artifacts::cdylib("polysync-fake-provider");
    // An instance that outlives the logging one (created before it).
    let survivor = RawInstance::open(&plugin, &json!({"namespace": "log-survivor"}));
    let (first, logs) = RawInstance::open_with_log(&plugin, &json!({"namespace": "log-first"}));
    let run = json!({"external_id": "job-0001", "parameters": {}, "idempotency_key": "log-1"});
    first.call(Op::Run as u32, &run, Duration::from_secs(10)).unwrap();
    assert!(logs.before_destroy.load(Ordering::SeqCst) > 0, "the plugin's debug log reached the host");
    drop(first);
    for i in 0..20 {
        let run = json!({"external_id": "job-0002", "parameters": {}, "idempotency_key": format!("log-{i}")});
        survivor.call(Op::Run as u32, &run, Duration::from_secs(10)).unwrap();
    }
    assert_eq!(logs.after_destroy.load(Ordering::SeqCst), 0, "a destroyed instance's log callback was called");
}
