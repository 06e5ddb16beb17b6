//! Turning a request line into what it addresses: resource paths of both
//! API groups, the verb, and the query parameters the server understands.

use std::collections::HashMap;

use crate::error::ApiError;
use crate::resources::Kind;

/// A parsed resource path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parse `/api/v1/...` or `/apis/batch/v1/...`. `Ok(None)` for paths that
/// are not resource paths (discovery and the like).
pub fn parse_path(path: &str) -> Result<Option<Target>, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", "batch", "v1", rest @ ..] if !rest.is_empty() => ("batch", rest),
        _ => return Ok(None),
    };
    let unknown = || ApiError::not_found_path(path);
    // `/namespaces/{ns}/{resource}/...` addresses a namespaced resource,
    // except the Namespace's own subresources (`/api/v1/namespaces/{ns}/status`).
    let own_subresource = group.is_empty() && rest.len() == 3 && matches!(rest[2], "status" | "finalize");
    let (namespace, rest): (Option<String>, &[&str]) = if rest[0] == "namespaces" && rest.len() >= 3 && !own_subresource
    {
        (Some(rest[1].to_owned()), &rest[2..])
    } else {
        (None, rest)
    };
    let kind = Kind::from_group_plural(group, rest[0]).ok_or_else(unknown)?;
    let misplaced = match &namespace {
        Some(_) => !kind.namespaced(),
        None => kind.namespaced() && rest.len() > 1,
    };
    if misplaced {
        return Err(unknown());
    }
    let name = rest.get(1).map(|s| (*s).to_owned());
    let subresource = rest.get(2).map(|s| (*s).to_owned());
    if rest.len() > 3 {
        return Err(unknown());
    }
    if let Some(sub) = &subresource
        && !kind.subresources().contains(&sub.as_str())
    {
        return Err(unknown());
    }
    Ok(Some(Target { kind, namespace, name, subresource }))
}

/// Query parameters (the last value wins).
#[derive(Debug, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(query: Option<&str>) -> Self {
        Self(form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    pub fn number(&self, key: &str) -> Result<Option<u64>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid value for {key}: {v:?}; expected a whole number"))
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(path: &str) -> Target {
        parse_path(path).unwrap().unwrap()
    }

    #[test]
    fn paths() {
        assert_eq!(t("/api/v1/namespaces").kind, Kind::Namespace);
        let ns = t("/api/v1/namespaces/default");
        assert_eq!((ns.kind, ns.name.as_deref(), ns.namespace), (Kind::Namespace, Some("default"), None));
        let jobs = t("/apis/batch/v1/namespaces/default/jobs");
        assert_eq!((jobs.kind, jobs.namespace.as_deref(), jobs.name), (Kind::Job, Some("default"), None));
        let status = t("/apis/batch/v1/namespaces/default/jobs/a/status");
        assert_eq!(status.subresource.as_deref(), Some("status"));
        let log = t("/api/v1/namespaces/x/pods/p/log");
        assert_eq!((log.kind, log.subresource.as_deref()), (Kind::Pod, Some("log")));
        assert_eq!(t("/apis/batch/v1/jobs").namespace, None);
        assert_eq!(t("/api/v1/pods").kind, Kind::Pod);
        assert!(parse_path("/apis/batch/v1/namespaces/default/widgets").is_err());
        assert!(parse_path("/api/v1/namespaces/default/pods/p/exec").is_err());
        assert_eq!(parse_path("/version").unwrap(), None);
    }
}
