//! The bearer token every API call must carry.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The domain's token, kept as its SHA-256 so that comparing is constant
/// time whatever the presented token's length.
#[derive(Clone)]
pub struct Token([u8; 32]);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    pub fn new(secret: &str) -> Token {
        Token(Sha256::digest(secret.trim().as_bytes()).into())
    }

    pub fn matches(&self, presented: &str) -> bool {
        let p: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        bool::from(self.0.ct_eq(&p))
    }
}

/// Reads a token file: its first line, trimmed. An empty token is refused:
/// it would let anyone in.
pub fn read_token(path: &std::path::Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    if token.is_empty() {
        return Err(std::io::Error::other(format!(
            "{}: the token file is empty",
            path.display()
        )));
    }
    Ok(token)
}

/// A new random token (32 bytes, hex).
pub fn generate_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Middleware: 401 unless `Authorization: Bearer <token>` matches.
pub async fn require_token(State(token): State<Token>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(p) if token.matches(p) => next.run(req).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Bearer")],
            "a valid bearer token is required\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_matches_only_itself() {
        let t = Token::new("s3cret");
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches(""));
        assert!(!t.matches("s3cret-and-more"));
    }
}
