//! Bearer-token authentication and a small authorization model: admin,
//! read-only, or admin within a list of namespaces. A validator hook lets a
//! test accept tokens it computes (EKS's `k8s-aws-v1.` tokens) without the
//! sandbox knowing their format.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::ApiError;
use crate::resources::Kind;

/// What a token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Admin,
    ReadOnly,
    Namespaces(Vec<String>),
    /// Everything but `watch` (RBAC that grants list without watch).
    AllButWatch,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub access: Access,
}

/// Decides who a bearer token belongs to, if anyone.
pub type TokenValidator = Arc<dyn Fn(&str) -> Option<Identity> + Send + Sync>;

/// The sandbox's tokens.
#[derive(Clone, Default)]
pub struct Auth {
    tokens: HashMap<String, Identity>,
    validator: Option<TokenValidator>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the tokens themselves.
        f.debug_struct("Auth")
            .field("tokens", &self.tokens.len())
            .field("validator", &self.validator.is_some())
            .finish()
    }
}

impl Auth {
    pub fn add(&mut self, token: impl Into<String>, identity: Identity) {
        self.tokens.insert(token.into(), identity);
    }

    pub fn set_validator(&mut self, validator: TokenValidator) {
        self.validator = Some(validator);
    }

    /// The caller behind an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Identity, ApiError> {
        let token = header.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim).filter(|t| !t.is_empty());
        let token = token.ok_or_else(ApiError::unauthorized)?;
        if let Some(identity) = self.tokens.get(token) {
            return Ok(identity.clone());
        }
        self.validator.as_ref().and_then(|v| v(token)).ok_or_else(ApiError::unauthorized)
    }
}

/// Whether `identity` may `verb` `kind` in `namespace`.
pub fn authorize(identity: &Identity, verb: &str, kind: Kind, namespace: Option<&str>) -> Result<(), ApiError> {
    let read = matches!(verb, "get" | "list" | "watch");
    let allowed = match &identity.access {
        Access::Admin => true,
        Access::ReadOnly => read,
        Access::Namespaces(list) => namespace.is_some_and(|ns| list.iter().any(|n| n == ns)),
        Access::AllButWatch => verb != "watch",
    };
    if allowed { Ok(()) } else { Err(ApiError::forbidden(&identity.user, verb, kind, namespace)) }
}
