//! AWS SDK errors as the contract's error kinds, each with a message that
//! says what to fix: missing or expired credentials, a denied action (named,
//! so the reader knows which permission to grant), a missing resource,
//! throttling, an unreachable endpoint.

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use polysync_provider_api::error::chain;
use polysync_provider_api::{ErrorKind, ProviderError};

pub(crate) const NO_CREDENTIALS: &str = "no AWS credentials found: set AWS_PROFILE or `profile`, run `aws sso login`, or give the host a role (web identity, ECS task or instance role)";

/// Map an SDK error of `action` (an IAM action such as
/// `eks:DescribeCluster`) met while doing `what`.
pub fn from_sdk<E, R>(err: SdkError<E, R>, action: &str, what: &str) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if let Some(cred) = find_credentials_error(&err) {
        let e = from_credentials(cred);
        return ProviderError::new(e.kind(), format!("{what}: {}", e.message()));
    }
    match err {
        SdkError::ServiceError(context) => {
            let e = context.err();
            from_code(e.code().unwrap_or("Unknown"), e.message().unwrap_or(""), action, what)
        }
        SdkError::TimeoutError(_) => {
            ProviderError::new(ErrorKind::Timeout, format!("{what}: AWS did not answer in time; retry"))
        }
        SdkError::DispatchFailure(e) => ProviderError::new(
            ErrorKind::Unavailable,
            format!(
                "{what}: could not reach AWS ({}); check the network, proxy and `endpoint_url`",
                e.as_connector_error().map(|c| chain(c)).unwrap_or_else(|| "dispatch failed".into())
            ),
        ),
        other => ProviderError::new(ErrorKind::Unavailable, format!("{what}: {}", chain(&other))),
    }
}

/// Map an AWS error code (the `__type` / `Code` of the response).
pub fn from_code(code: &str, message: &str, action: &str, what: &str) -> ProviderError {
    let detail = if message.is_empty() { code.to_owned() } else { format!("{code}: {message}") };
    match code {
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" | "UnauthorizedException" => {
            ProviderError::new(
                ErrorKind::Forbidden,
                format!("{what}: AWS denied {action} ({detail}); allow {action} for this identity in IAM"),
            )
        }
        "ExpiredToken" | "ExpiredTokenException" | "RequestExpired" | "TokenRefreshRequired" => ProviderError::new(
            ErrorKind::Unauthorized,
            format!(
                "{what}: the AWS credentials have expired ({detail}); refresh them (`aws sso login`, a new session token) or use a role"
            ),
        ),
        "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "MissingAuthenticationToken" => ProviderError::new(
            ErrorKind::Unauthorized,
            format!("{what}: AWS does not accept the credentials ({detail}); check the access key and secret in use"),
        ),
        "ResourceNotFoundException" | "ClusterNotFoundException" | "NotFoundException" | "NoSuchEntity" => {
            ProviderError::new(ErrorKind::NotFound, format!("{what}: {detail}"))
        }
        "ThrottlingException" | "Throttling" | "TooManyRequestsException" | "RequestLimitExceeded" => {
            ProviderError::new(ErrorKind::Throttled, format!("{what}: AWS is throttling requests ({detail})"))
        }
        "InvalidParameterException"
        | "InvalidParameterValue"
        | "ValidationException"
        | "ClientException"
        | "InvalidRequestException" => {
            ProviderError::new(ErrorKind::InvalidInput, format!("{what}: AWS rejected the request ({detail})"))
        }
        "ServerException"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "InternalFailure"
        | "InternalServerError" => {
            ProviderError::new(ErrorKind::Unavailable, format!("{what}: AWS failed ({detail}); retry later"))
        }
        _ => ProviderError::new(ErrorKind::Internal, format!("{what}: {detail}")),
    }
}

/// A credential provider's failure.
pub(crate) fn from_credentials(err: &CredentialsError) -> ProviderError {
    match err {
        CredentialsError::CredentialsNotLoaded(_) => ProviderError::new(ErrorKind::Unauthorized, NO_CREDENTIALS),
        CredentialsError::ProviderTimedOut(_) => ProviderError::new(
            ErrorKind::Timeout,
            "the AWS credential provider timed out (instance or container metadata); retry, or check the host's role",
        ),
        CredentialsError::InvalidConfiguration(_) => ProviderError::new(
            ErrorKind::InvalidInput,
            format!(
                "the AWS credential configuration is invalid ({}); check the profile and role settings",
                chain(err)
            ),
        ),
        other => {
            let text = chain(other);
            // STS answers AssumeRole with these when the base identity may
            // not assume the role, or the external id is wrong.
            let (kind, hint) = if text.contains("AccessDenied") {
                (ErrorKind::Forbidden, "; the role's trust policy must allow this identity (and external id)")
            } else if text.contains("ExpiredToken") {
                (ErrorKind::Unauthorized, "; the base credentials have expired, refresh them")
            } else {
                (ErrorKind::Unauthorized, "")
            };
            ProviderError::new(kind, format!("could not get AWS credentials: {text}{hint}"))
        }
    }
}

fn find_credentials_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a CredentialsError> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<CredentialsError>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_names_the_action_to_allow() {
        let e = from_code("AccessDeniedException", "not authorized", "eks:DescribeCluster", "describing cluster prod");
        assert_eq!(e.kind(), ErrorKind::Forbidden);
        assert!(e.message().contains("allow eks:DescribeCluster"), "{e}");
    }

    #[test]
    fn expired_and_unknown_credentials_differ() {
        let expired = from_code("ExpiredTokenException", "", "ecs:RunTask", "running");
        let unknown = from_code("UnrecognizedClientException", "", "ecs:RunTask", "running");
        assert_eq!(expired.kind(), ErrorKind::Unauthorized);
        assert_eq!(unknown.kind(), ErrorKind::Unauthorized);
        assert!(expired.message().contains("expired"));
        assert!(unknown.message().contains("does not accept"));
    }

    #[test]
    fn not_found_and_throttled() {
        assert_eq!(from_code("ResourceNotFoundException", "x", "a", "b").kind(), ErrorKind::NotFound);
        assert_eq!(from_code("ThrottlingException", "x", "a", "b").kind(), ErrorKind::Throttled);
        assert_eq!(from_code("Weird", "x", "a", "b").kind(), ErrorKind::Internal);
    }
}
