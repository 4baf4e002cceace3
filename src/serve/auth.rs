//! The bearer token (`--serve-token-file`): every endpoint but `/healthz`
//! wants `Authorization: Bearer <token>`. Browsers' `EventSource` cannot
//! send that header, so the subscription stream also takes the token as an
//! `access_token` query parameter. Tokens are compared in constant time and
//! never written anywhere.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use subtle::ConstantTimeEq;

/// The token the API wants.
pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// Reads the token from `path`: its content less surrounding
    /// whitespace. An unreadable or empty file is an error naming it.
    pub fn load(path: &Path) -> std::io::Result<Token> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            std::io::Error::new(e.kind(), format!("token file {}: {e}", path.display()))
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("token file {}: empty", path.display()),
            ));
        }
        Ok(Token(token.as_bytes().to_vec()))
    }

    /// Whether `presented` is the token, in time independent of where they
    /// differ.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_slice().ct_eq(presented.as_bytes()).into()
    }
}

/// The token of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The `access_token` query parameter, which only the subscription stream
/// takes.
fn query_token(req: &Request) -> Option<String> {
    if req.uri().path() != "/v1/subscribe" {
        return None;
    }
    let Query(q) =
        Query::<std::collections::HashMap<String, String>>::try_from_uri(req.uri()).ok()?;
    q.get("access_token").cloned()
}

/// The middleware: lets through `/healthz` and requests with the token;
/// answers 401 to the others (to a browser asking for the page: the page,
/// which asks for the token).
pub async fn require(State(token): State<Arc<Token>>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let ok = match bearer(req.headers()) {
        Some(t) => token.matches(t),
        None => query_token(&req).is_some_and(|t| token.matches(&t)),
    };
    if ok {
        return next.run(req).await;
    }
    let challenge = [(header::WWW_AUTHENTICATE, "Bearer realm=\"huntflow\"")];
    let wants_page = req.uri().path() == "/"
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    if wants_page {
        return (StatusCode::UNAUTHORIZED, challenge, super::map::page()).into_response();
    }
    let body = Json(
        serde_json::json!({"error": "a bearer token is required (Authorization: Bearer TOKEN)"}),
    );
    (StatusCode::UNAUTHORIZED, challenge, body).into_response()
}
