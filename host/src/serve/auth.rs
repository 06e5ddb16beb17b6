//! Bearer tokens: the server keeps only their SHA-256 hashes (from the
//! config, from token files, or from `POLYSYNC_API_TOKEN`), compares in
//! constant time, and accepts `?access_token=` as well for what a browser
//! opens directly (the status page and its event streams).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::problem::ApiError;
use crate::config::ServeConfig;
use crate::error::{Error, Result};

/// The accepted tokens, as hashes.
#[derive(Debug, Clone, Default)]
pub struct Tokens(Vec<[u8; 32]>);

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// From the config's hashes, its token files, and `env_token`.
    pub fn load(config: &ServeConfig, env_token: Option<String>) -> Result<Self> {
        let mut hashes = Vec::new();
        for hex in &config.token_hashes {
            let bytes: Vec<u8> =
                (0..32).filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()).collect();
            let hash: [u8; 32] =
                bytes.try_into().map_err(|_| Error::Config(format!("serve.tokens: {hex:?} is not a SHA-256 hash")))?;
            hashes.push(hash);
        }
        for file in &config.token_files {
            let token = std::fs::read_to_string(file)
                .map_err(|e| Error::Config(format!("cannot read serve.token_files {}: {e}", file.display())))?;
            let token = token.trim();
            if token.len() < 16 {
                return Err(Error::Config(format!(
                    "the token in {} is shorter than 16 characters; use a long random one",
                    file.display()
                )));
            }
            hashes.push(digest(token));
        }
        if let Some(token) = env_token.filter(|t| !t.is_empty()) {
            if token.len() < 16 {
                return Err(Error::Config(
                    "POLYSYNC_API_TOKEN is shorter than 16 characters; use a long random one".into(),
                ));
            }
            hashes.push(digest(&token));
        }
        Ok(Self(hashes))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn accepts(&self, token: &str) -> bool {
        let d = digest(token);
        // Every hash is compared in full: no early exit on a match.
        self.0.iter().fold(false, |ok, h| ok | (h.iter().zip(d.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0))
    }
}

/// The token a request carries, if any.
fn presented(request: &Request) -> Option<String> {
    if let Some(value) = request.headers().get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned());
    }
    let query = request.uri().query()?;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "access_token").map(|(_, v)| v.into_owned())
}

/// Refuse requests without an accepted token (when tokens are configured).
pub async fn require(State(tokens): State<std::sync::Arc<Tokens>>, request: Request, next: Next) -> Response {
    if tokens.is_empty() {
        return next.run(request).await;
    }
    match presented(&request) {
        Some(t) if tokens.accepts(&t) => next.run(request).await,
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the bearer token is not accepted; use one of the server's configured tokens",
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "this server needs a bearer token: send `Authorization: Bearer TOKEN`",
        )
        .into_response(),
    }
}
