//! The bearer token `aws eks get-token` makes, without shelling out to it.
//!
//! EKS authenticates a caller by replaying a presigned STS
//! `GetCallerIdentity` URL: the token is `k8s-aws-v1.` followed by that URL
//! in unpadded base64url. The URL is signed with the header
//! `x-k8s-aws-id: <cluster>`, so a token for one cluster is refused by
//! every other, and carries `X-Amz-Expires=60` as the AWS CLI's does. EKS
//! accepts a token for 15 minutes after signing; [`TOKEN_LIFETIME`] says
//! so to the cache, which fetches a fresh one a minute before.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine;
use polysync_kube_jobs::bearer::{Token, TokenSource};
use polysync_provider_api::{ErrorKind, ProviderError};

/// How long EKS accepts a token after it was signed.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// How long before that the cache replaces it (the AWS CLI's 14 minutes).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// The presigned URL's own expiry, as `aws eks get-token` sets it.
const URL_EXPIRES: Duration = Duration::from_secs(60);
const PREFIX: &str = "k8s-aws-v1.";

/// The regional STS endpoint for `region` (the partition decides the
/// domain).
pub fn sts_endpoint(region: &str) -> String {
    let domain = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("https://sts.{region}.{domain}/")
}

/// The token for `cluster`, signed with `credentials` at `time` for STS at
/// `sts_endpoint` in `region`.
pub fn presign(
    credentials: &Credentials,
    region: &str,
    cluster: &str,
    sts_endpoint: &str,
    time: SystemTime,
) -> Result<String, ProviderError> {
    let url = presigned_url(credentials, region, cluster, sts_endpoint, time)?;
    Ok(format!("{PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)))
}

/// The presigned `GetCallerIdentity` URL inside a token.
pub fn presigned_url(
    credentials: &Credentials,
    region: &str,
    cluster: &str,
    sts_endpoint: &str,
    time: SystemTime,
) -> Result<String, ProviderError> {
    let base = sts_endpoint.trim_end_matches('/');
    let url = format!("{base}/?Action=GetCallerIdentity&Version=2011-06-15");
    let uri: http::Uri = url
        .parse()
        .map_err(|e| ProviderError::invalid_input(format!("the STS endpoint {sts_endpoint:?} is not a URL: {e}")))?;
    let host = uri.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(URL_EXPIRES);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| ProviderError::internal(format!("could not set up request signing: {e}")))?
        .into();
    let headers = [("host", host.as_str()), ("x-k8s-aws-id", cluster)];
    let signable = SignableRequest::new("GET", &url, headers.into_iter(), SignableBody::Bytes(&[]))
        .map_err(|e| ProviderError::internal(format!("could not sign the EKS token: {e}")))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| ProviderError::internal(format!("could not sign the EKS token: {e}")))?
        .into_parts();
    let mut request = http::Request::builder().method("GET").uri(&url).body(()).expect("a parsed URI");
    instructions.apply_to_request_http1x(&mut request);
    Ok(request.uri().to_string())
}

/// Fresh tokens from the connection's credential chain.
#[derive(Debug)]
pub struct StsTokens {
    pub config: aws_config::SdkConfig,
    pub region: String,
    pub cluster: String,
    pub sts_endpoint: String,
}

#[async_trait]
impl TokenSource for StsTokens {
    async fn fetch(&self) -> Result<Token, ProviderError> {
        let credentials = polysync_aws::credentials(&self.config).await.map_err(|e| {
            ProviderError::new(e.kind(), format!("signing the token for EKS cluster {}: {}", self.cluster, e.message()))
        })?;
        let now = SystemTime::now();
        if credentials.expiry().is_some_and(|at| at <= now) {
            return Err(ProviderError::new(
                ErrorKind::Unauthorized,
                "the AWS credentials have expired; refresh them (`aws sso login`, a new session token) or use a role",
            ));
        }
        let secret = presign(&credentials, &self.region, &self.cluster, &self.sts_endpoint, now)?;
        // Short-lived credentials end the token's life early.
        let expires_at = credentials.expiry().map_or(now + TOKEN_LIFETIME, |at| at.min(now + TOKEN_LIFETIME));
        Ok(Token { secret, expires_at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(url: &str) -> Vec<(String, String)> {
        let q = url.split_once('?').unwrap().1;
        form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }

    fn fixed() -> (Credentials, SystemTime) {
        let creds = Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            Some("session-token/with+chars=".into()),
            None,
            "test",
        );
        // 2024-01-02T03:04:05Z
        (creds, SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_164_645))
    }

    /// The expected signature was computed independently with botocore's
    /// `SigV4QueryAuth` (what `aws eks get-token` uses) for the same
    /// credentials, time, URL and headers.
    #[test]
    fn the_presigned_url_matches_what_botocore_signs() {
        let (creds, time) = fixed();
        let url = presigned_url(&creds, "eu-west-1", "prod-batch", &sts_endpoint("eu-west-1"), time).unwrap();
        assert!(url.starts_with("https://sts.eu-west-1.amazonaws.com/?"), "{url}");
        let q = query(&url);
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("{k}"));
        assert_eq!(get("Action"), "GetCallerIdentity");
        assert_eq!(get("Version"), "2011-06-15");
        assert_eq!(get("X-Amz-Algorithm"), "AWS4-HMAC-SHA256");
        assert_eq!(get("X-Amz-Credential"), "AKIAIOSFODNN7EXAMPLE/20240102/eu-west-1/sts/aws4_request");
        assert_eq!(get("X-Amz-Date"), "20240102T030405Z");
        assert_eq!(get("X-Amz-Expires"), "60");
        assert_eq!(get("X-Amz-SignedHeaders"), "host;x-k8s-aws-id");
        assert_eq!(get("X-Amz-Security-Token"), "session-token/with+chars=");
        assert_eq!(get("X-Amz-Signature"), BOTOCORE_SIGNATURE);
    }

    const BOTOCORE_SIGNATURE: &str = "0a0db7c029c0947e15f22573df5d8241d1dc00bfcd6e7b5f1042b97f03922b36";

    #[test]
    fn the_token_is_the_url_in_unpadded_base64url() {
        let (creds, time) = fixed();
        let token = presign(&creds, "eu-west-1", "prod-batch", &sts_endpoint("eu-west-1"), time).unwrap();
        let body = token.strip_prefix("k8s-aws-v1.").unwrap();
        assert!(!body.contains('=') && !body.contains('+') && !body.contains('/'));
        let url = String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
        assert_eq!(url, presigned_url(&creds, "eu-west-1", "prod-batch", &sts_endpoint("eu-west-1"), time).unwrap());
    }

    #[test]
    fn another_cluster_or_region_signs_differently() {
        let (creds, time) = fixed();
        let sig = |cluster: &str, region: &str| {
            let url = presigned_url(&creds, region, cluster, &sts_endpoint(region), time).unwrap();
            query(&url).into_iter().find(|(k, _)| k == "X-Amz-Signature").unwrap().1
        };
        assert_ne!(sig("prod-batch", "eu-west-1"), sig("other", "eu-west-1"));
        assert_ne!(sig("prod-batch", "eu-west-1"), sig("prod-batch", "us-east-1"));
        assert_eq!(sts_endpoint("cn-north-1"), "https://sts.cn-north-1.amazonaws.com.cn/");
    }
}
