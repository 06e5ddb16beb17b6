//! The AWS part of a connection's settings.

use aws_credential_types::Credentials;
use polysync_provider_api::ProviderError;

polysync_provider_api::settings! {
    /// Settings every AWS provider takes. Providers split them off their
    /// own settings with [`AwsSettings::split`], so each still rejects
    /// unknown keys. Static keys are never settings: only the names of
    /// environment variables holding them, for hosts that inject secrets so.
    pub struct AwsSettings {
        /// AWS region (default: AWS_REGION or the profile's)
        optional region: String,
        /// AWS shared-config profile (default: AWS_PROFILE, then default)
        optional profile: String,
        /// IAM role to assume with the chain's credentials
        optional role_arn: String,
        /// external id for role_arn
        optional external_id: String,
        /// session name for role_arn (default polysync)
        optional session_name: String,
        /// one endpoint for every AWS API the provider calls (tests, VPC endpoints, LocalStack)
        optional endpoint_url: String,
        /// name of an environment variable holding an access key id
        optional access_key_id_env: String,
        /// name of an environment variable holding the secret key
        optional secret_access_key_env: String,
        /// name of an environment variable holding a session token
        optional session_token_env: String,
        /// a shared credentials file (the format of ~/.aws/credentials) to
        /// read `profile` (default `default`) from, and nothing else: keys
        /// mounted from a secret, one set per connection
        optional credentials_file: String,
    }
}

/// Keys that would put a secret in the catalog.
const SECRET_KEYS: &[(&str, &str)] = &[
    ("access_key_id", "access_key_id_env"),
    ("aws_access_key_id", "access_key_id_env"),
    ("secret_access_key", "secret_access_key_env"),
    ("aws_secret_access_key", "secret_access_key_env"),
    ("session_token", "session_token_env"),
    ("aws_session_token", "session_token_env"),
];

impl AwsSettings {
    /// Take the AWS keys out of a provider's settings object; the rest is
    /// the provider's own. `provider` names it in messages.
    pub fn split(provider: &str, settings: serde_json::Value) -> Result<(Self, serde_json::Value), ProviderError> {
        let serde_json::Value::Object(mut map) = settings else {
            return Err(ProviderError::invalid_input(format!("{provider} connection settings must be an object")));
        };
        for (secret, instead) in SECRET_KEYS {
            if map.contains_key(*secret) {
                return Err(ProviderError::invalid_input(format!(
                    "setting `{secret}`: secrets are never stored in a connection; put the value in an environment variable and set `{instead}` to its name, or use a profile, SSO or a role"
                )));
            }
        }
        let mut aws = serde_json::Map::new();
        for key in Self::KEYS {
            if let Some(v) = map.remove(*key) {
                aws.insert((*key).to_owned(), v);
            }
        }
        let parsed: Self = serde_json::from_value(serde_json::Value::Object(aws.clone())).map_err(|e| {
            // Name the setting: serde's message alone does not.
            let culprit = aws.iter().find(|(k, v)| {
                let one = serde_json::Map::from_iter([((*k).clone(), (*v).clone())]);
                serde_json::from_value::<Self>(serde_json::Value::Object(one)).is_err()
            });
            match culprit {
                Some((k, v)) => ProviderError::invalid_input(format!("{provider} setting `{k}` = {v}: {e}")),
                None => ProviderError::invalid_input(format!("{provider} connection settings: {e}")),
            }
        })?;
        parsed.validate()?;
        Ok((parsed, serde_json::Value::Object(map)))
    }

    fn validate(&self) -> Result<(), ProviderError> {
        if let Some(arn) = &self.role_arn
            && !(arn.starts_with("arn:") && arn.contains(":role/"))
        {
            return Err(ProviderError::invalid_input(format!(
                "setting `role_arn`: {arn:?} is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
            )));
        }
        if self.external_id.is_some() && self.role_arn.is_none() {
            return Err(ProviderError::invalid_input("setting `external_id` needs `role_arn`"));
        }
        if let Some(url) = &self.endpoint_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ProviderError::invalid_input(format!("setting `endpoint_url`: {url:?} is not an http(s) URL")));
        }
        if self.credentials_file.is_some() && self.access_key_id_env.is_some() {
            return Err(ProviderError::invalid_input(
                "set `credentials_file` or `access_key_id_env` and `secret_access_key_env`, not both: each names where the keys are",
            ));
        }
        match (&self.access_key_id_env, &self.secret_access_key_env) {
            (Some(_), None) | (None, Some(_)) => Err(ProviderError::invalid_input(
                "set both `access_key_id_env` and `secret_access_key_env`, or neither",
            )),
            _ => Ok(()),
        }
    }

    /// Static credentials read from the named environment variables, if
    /// the connection names them.
    pub(crate) fn env_credentials(&self) -> Result<Option<Credentials>, ProviderError> {
        let (Some(id_var), Some(secret_var)) = (&self.access_key_id_env, &self.secret_access_key_env) else {
            return Ok(None);
        };
        let read = |var: &str, setting: &str| {
            std::env::var(var).map_err(|_| {
                ProviderError::new(
                    polysync_provider_api::ErrorKind::Unauthorized,
                    format!("setting `{setting}` names the environment variable {var}, which is not set in the host's environment"),
                )
            })
        };
        let id = read(id_var, "access_key_id_env")?;
        let secret = read(secret_var, "secret_access_key_env")?;
        let token = match &self.session_token_env {
            Some(var) => Some(read(var, "session_token_env")?),
            None => None,
        };
        Ok(Some(Credentials::new(id, secret, token, None, "polysync-connection-env")))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn splits_aws_keys_from_the_providers_own() {
        let (aws, rest) =
            AwsSettings::split("eks", json!({"cluster": "prod", "region": "eu-west-1", "profile": "ops"})).unwrap();
        assert_eq!(aws.region.as_deref(), Some("eu-west-1"));
        assert_eq!(aws.profile.as_deref(), Some("ops"));
        assert_eq!(rest, json!({"cluster": "prod"}));
    }

    #[test]
    fn refuses_secrets_and_says_what_to_do_instead() {
        let err = AwsSettings::split("ecs", json!({"secret_access_key": "abc"})).unwrap_err();
        assert!(err.message().contains("secret_access_key_env"), "{err}");
        assert!(!err.message().contains("abc"), "the secret is not echoed");
    }

    #[test]
    fn checks_role_arn_and_key_pairs() {
        assert!(AwsSettings::split("eks", json!({"role_arn": "admin"})).is_err());
        assert!(AwsSettings::split("eks", json!({"external_id": "x"})).is_err());
        assert!(AwsSettings::split("eks", json!({"access_key_id_env": "A"})).is_err());
        let both = json!({"credentials_file": "/k", "access_key_id_env": "A", "secret_access_key_env": "B"});
        let err = AwsSettings::split("eks", both).unwrap_err();
        assert!(err.message().contains("not both"), "{err}");
        assert!(AwsSettings::split("eks", json!({"region": 3})).is_err());
    }
}
