//! The bearer tokens every API call must carry: the credentials file, and
//! who a request authenticated as.

use std::sync::Arc;

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

/// The name a bare token (a line without `NAME:`) authenticates as.
pub const UNNAMED: &str = "admin";

/// The credentials file (`tokenFile`): one credential a line, `NAME: TOKEN`,
/// or a bare `TOKEN` (named [`UNNAMED`]); empty lines and `#` comments are
/// skipped. The first credential is the domain's own: members use it with
/// each other, and it keys the heartbeats, so it must be the same on every
/// member; the others are operators'.
#[derive(Clone)]
pub struct Credentials {
    /// Each credential's name with its token, the domain's own first.
    entries: Vec<(String, Token)>,
    first_secret: String,
}

pub use crate::wire::api::Caller;

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Credentials")
            .field("names", &names)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Parses the text of a credentials file; `path` names it in errors.
    pub fn parse(path: &std::path::Path, text: &str) -> std::io::Result<Credentials> {
        let bad = |line: usize, message: String| {
            std::io::Error::other(format!("{}:{line}:1: {message}", path.display()))
        };
        let mut entries: Vec<(String, Token)> = Vec::new();
        let mut first_secret = None;
        let mut secrets = std::collections::BTreeSet::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, secret) = match line.split_once(':') {
                Some((n, t)) if is_name(n.trim()) => (n.trim().to_owned(), t.trim()),
                _ => (UNNAMED.to_owned(), line),
            };
            if secret.is_empty() {
                return Err(bad(i + 1, format!("credential {name} has an empty token")));
            }
            if entries.iter().any(|(n, _)| *n == name) {
                return Err(bad(i + 1, format!("credential {name} is named twice")));
            }
            if !secrets.insert(secret.to_owned()) {
                return Err(bad(
                    i + 1,
                    format!("credential {name} repeats another's token"),
                ));
            }
            first_secret.get_or_insert_with(|| secret.to_owned());
            entries.push((name, Token::new(secret)));
        }
        let Some(first_secret) = first_secret else {
            return Err(std::io::Error::other(format!(
                "{}: the token file has no token",
                path.display()
            )));
        };
        Ok(Credentials {
            entries,
            first_secret,
        })
    }

    pub fn read(path: &std::path::Path) -> std::io::Result<Credentials> {
        Credentials::parse(path, &std::fs::read_to_string(path)?)
    }

    /// The domain's own token (the first credential).
    pub fn domain_secret(&self) -> &str {
        &self.first_secret
    }

    /// Who `presented` authenticates as, if anyone. Every credential is
    /// compared, so the time taken does not say which one matched.
    pub fn caller(&self, presented: &str) -> Option<Caller> {
        let mut found = None;
        for (i, (name, token)) in self.entries.iter().enumerate() {
            if token.matches(presented) && found.is_none() {
                found = Some(Caller {
                    name: name.clone(),
                    domain: i == 0,
                });
            }
        }
        found
    }
}

/// A credential's name: letters, digits, `-`, `_`, `.` and `@`, 1 to 64.
fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

/// Reads a token file's first credential: the token the CLI and the
/// members use ([`Credentials`]). An empty file is refused: it would let
/// anyone in.
pub fn read_token(path: &std::path::Path) -> std::io::Result<String> {
    Credentials::read(path).map(|c| c.first_secret)
}

/// A new random token (32 bytes, hex).
pub fn generate_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Middleware: 401 unless `Authorization: Bearer <token>` matches one of
/// the credentials; the request then carries its [`Caller`].
pub async fn require_token(
    State(creds): State<Arc<Credentials>>,
    mut req: Request,
    next: Next,
) -> Response {
    let caller = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|p| creds.caller(p));
    match caller {
        Some(c) => {
            req.extensions_mut().insert(c);
            next.run(req).await
        }
        None => (
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

    #[test]
    fn a_credentials_file_names_each_token_and_a_bare_one_is_admin() {
        let path = std::path::Path::new("token");
        let c = Credentials::parse(
            path,
            "# the domain's\nabc123\n\nalice: s3cret\nci-bot:  t0k \n",
        )
        .expect("parses");
        assert_eq!(c.domain_secret(), "abc123");
        let who = |p: &str| c.caller(p).map(|c| (c.name, c.domain));
        assert_eq!(who("abc123"), Some(("admin".into(), true)));
        assert_eq!(who("s3cret"), Some(("alice".into(), false)));
        assert_eq!(who("t0k"), Some(("ci-bot".into(), false)));
        assert_eq!(who("nope"), None);
        let named = Credentials::parse(path, "ops: x1\n").expect("parses");
        assert_eq!(named.caller("x1").map(|c| c.name), Some("ops".into()));
        assert_eq!(named.domain_secret(), "x1");
        let err = |text: &str| Credentials::parse(path, text).expect_err(text).to_string();
        assert_eq!(
            err("a: x\nb: x\n"),
            "token:2:1: credential b repeats another's token"
        );
        assert_eq!(
            err("a: x\na: y\n"),
            "token:2:1: credential a is named twice"
        );
        assert_eq!(err("a:\n"), "token:1:1: credential a has an empty token");
        assert_eq!(err("# nothing\n\n"), "token: the token file has no token");
    }
}
