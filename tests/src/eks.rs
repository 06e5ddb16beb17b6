//! An EKS world for the eks tests: moto (EKS + STS) whose clusters point at
//! a cluster — the sandbox or the real control plane — that authenticates
//! `k8s-aws-v1.` tokens the way EKS does (the real one through a
//! token-review webhook).
//!
//! The token check is independent of the code under test: it parses the
//! presigned URL, requires a `GetCallerIdentity` signed for the expected
//! region with `host;x-k8s-aws-id` and `X-Amz-Expires=60`, recomputes the
//! SigV4 signature (hmac + sha2, written here from the specification) when
//! it knows the secret, and asks moto's STS who the signer is, as EKS asks
//! STS. The caller's ARN becomes the sandbox user.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use polysync_sandbox::{Access, Identity};
use sha2::{Digest, Sha256};

use crate::moto::{ACCESS_KEY, Moto, REGION, SECRET_KEY};
use crate::{Cluster, Flavor, TIME_SCALE};

/// What the sandbox saw of EKS tokens.
#[derive(Debug, Default)]
pub struct TokenLog {
    /// Caller ARNs of accepted tokens, in order.
    pub callers: Mutex<Vec<String>>,
    /// Why tokens were refused.
    pub refused: Mutex<Vec<String>>,
    /// Refuse this many of the next tokens (a revoked token, say).
    pub refuse_next: AtomicUsize,
}

/// moto + a cluster + one EKS cluster in moto pointing at it.
#[derive(Debug)]
pub struct EksWorld {
    pub moto: &'static Moto,
    pub cluster: Cluster,
    pub name: String,
    pub tokens: Arc<TokenLog>,
}

impl EksWorld {
    /// `jobs` source Jobs and `cronjobs` CronJobs in `namespace`.
    pub fn start(flavor: Flavor, name: &str, namespace: &str, jobs: usize, cronjobs: usize) -> Self {
        let moto = crate::moto::shared();
        let tokens = Arc::new(TokenLog::default());
        let (log, cluster_name, sts) = (tokens.clone(), name.to_owned(), moto.url.clone());
        let ns = namespace.to_owned();
        let validator = Arc::new(move |token: &str| match check(token, &cluster_name, &sts) {
            Ok(arn) if log.refuse_next.load(Ordering::SeqCst) == 0 => {
                log.callers.lock().unwrap().push(arn.clone());
                Some(Identity { user: arn, access: Access::Namespaces(vec![ns.clone()]) })
            }
            Ok(_) => {
                log.refuse_next.fetch_sub(1, Ordering::SeqCst);
                log.refused.lock().unwrap().push("revoked by the test".into());
                None
            }
            Err(why) => {
                log.refused.lock().unwrap().push(why);
                None
            }
        });
        let cluster = Cluster::with_token_validator(flavor, TIME_SCALE, validator)
            .unwrap_or_else(|e| panic!("the {} cluster did not start: {e}", flavor.name()));
        cluster.grant_namespace(namespace);
        polysync_clusters::seed::seed_blocking(&cluster, namespace, jobs, cronjobs);
        let ca = base64::engine::general_purpose::STANDARD.encode(cluster.ca_pem().expect("https cluster"));
        moto.create_eks_cluster(name, cluster.url(), &ca);
        Self { moto, cluster, name: name.to_owned(), tokens }
    }

    /// Settings of the `eks` provider for this world's cluster.
    pub fn settings(&self, namespace: &str) -> serde_json::Value {
        crate::moto::with_aws(
            serde_json::json!({
                "cluster": self.name,
                "namespace": namespace,
            }),
            &self.moto.url,
        )
    }
}

/// The caller ARN behind a valid token for `cluster`, or why it is not one.
pub fn check(token: &str, cluster: &str, sts: &str) -> Result<String, String> {
    let body = token.strip_prefix("k8s-aws-v1.").ok_or("no k8s-aws-v1. prefix")?;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body).map_err(|e| format!("base64url: {e}"))?;
    let url = String::from_utf8(url).map_err(|_| "not UTF-8")?;
    let rest = url.strip_prefix(sts).ok_or_else(|| format!("not an STS URL of {sts}: {url}"))?;
    let query = rest.strip_prefix("/?").ok_or("no query")?;
    let q: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let get = |k: &str| q.get(k).map(String::as_str).ok_or_else(|| format!("no {k}"));
    if get("Action")? != "GetCallerIdentity" || get("Version")? != "2011-06-15" {
        return Err("not GetCallerIdentity".into());
    }
    if get("X-Amz-Expires")? != "60" || get("X-Amz-Algorithm")? != "AWS4-HMAC-SHA256" {
        return Err("wrong expiry or algorithm".into());
    }
    if get("X-Amz-SignedHeaders")? != "host;x-k8s-aws-id" {
        return Err("x-k8s-aws-id is not signed".into());
    }
    let credential = get("X-Amz-Credential")?;
    let parts: Vec<&str> = credential.split('/').collect();
    let [key, date, region, "sts", "aws4_request"] = parts[..] else { return Err(format!("scope {credential}")) };
    if region != REGION {
        return Err(format!("signed for region {region}"));
    }
    let amz_date = get("X-Amz-Date")?;
    let signed_at = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", amz_date)
        .map_err(|e| format!("X-Amz-Date: {e}"))?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map_err(|e| e.to_string())?
        .timestamp();
    let age = jiff::Timestamp::now().duration_since(signed_at);
    if age > jiff::SignedDuration::from_mins(15) || age < jiff::SignedDuration::from_mins(-1) {
        return Err(format!("signed {age:?} ago: expired"));
    }
    if key == ACCESS_KEY {
        let host = sts.split("://").nth(1).unwrap_or_default();
        let expected = signature(&q, host, cluster, date, amz_date, SECRET_KEY, region);
        if get("X-Amz-Signature")? != expected {
            return Err("signature does not match (wrong cluster, host or secret)".into());
        }
    } else if !q.contains_key("X-Amz-Security-Token") {
        // Only temporary (assumed-role) keys are not known to the test.
        return Err(format!("unknown long-term key {key}"));
    }
    caller_arn(sts, key)
}

/// SigV4 query signing, from the specification.
fn signature(
    q: &BTreeMap<String, String>,
    host: &str,
    cluster: &str,
    date: &str,
    amz_date: &str,
    secret: &str,
    region: &str,
) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let canonical_query = q
        .iter()
        .filter(|(k, _)| k.as_str() != "X-Amz-Signature")
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let empty = hex(&Sha256::digest(b""));
    let canonical =
        format!("GET\n/\n{canonical_query}\nhost:{host}\nx-k8s-aws-id:{cluster}\n\nhost;x-k8s-aws-id\n{empty}");
    let scope = format!("{date}/{region}/sts/aws4_request");
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(canonical.as_bytes())));
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, "sts", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    hex(&hmac(&key, to_sign.as_bytes()))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Ask moto's STS who owns `access_key`, as EKS asks STS who signed.
fn caller_arn(sts: &str, access_key: &str) -> Result<String, String> {
    let addr = sts.strip_prefix("http://").ok_or("moto speaks http")?;
    let body = "Action=GetCallerIdentity&Version=2011-06-15";
    let date = jiff::Timestamp::now().strftime("%Y%m%d").to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential={access_key}/{date}/{REGION}/sts/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = std::net::TcpStream::connect(addr).map_err(|e| format!("moto: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| e.to_string())?;
    let arn = response.split("<Arn>").nth(1).and_then(|r| r.split("</Arn>").next());
    arn.map(str::to_owned).ok_or_else(|| format!("STS did not name the caller: {response}"))
}

/// Seconds since the epoch, for tests that compare.
pub fn now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs()
}
