//! Who is calling: password hashing (argon2id, PHC strings) for users stored in the database,
//! JWT access tokens (`POST /auth/token`, HS256), the web UI's session cookie with its CSRF
//! token, and roles with Airflow's meanings, checked by the [`Caller`] extractor every
//! protected handler takes.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// A password that could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("cannot hash password: {0}")]
pub struct HashError(String);

/// Hash a password into a PHC string with a fresh random salt. CPU-heavy: call it from a
/// blocking thread in async code.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches the stored PHC string; a malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Roles, weakest first; each can do everything the ones before it can (Airflow's meanings:
/// Viewer reads; User also triggers, pauses, clears and marks; Op also manages variables,
/// connections and pools; Admin also manages users).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    User,
    Op,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::User, Role::Op, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "Viewer",
            Role::User => "User",
            Role::Op => "Op",
            Role::Admin => "Admin",
        }
    }

    /// Parse a role name, case-insensitively.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(name))
    }
}

/// Signs and checks access tokens.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: jsonwebtoken::EncodingKey,
    decoding: jsonwebtoken::DecodingKey,
    /// How long a token is valid.
    pub lifetime: std::time::Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Claims {
    sub: String,
    role: String,
    iat: i64,
    exp: i64,
    /// Set in web UI sessions only: the value a state-changing request must echo in
    /// [`CSRF_HEADER`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    csrf: Option<String>,
}

/// A token that verified: whose it is, and the CSRF value of a UI session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub username: String,
    pub csrf: Option<String>,
}

/// The cookie holding a web UI session's token (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "_token";

/// The header a cookie-authenticated state-changing request must carry, holding the session's
/// CSRF value (which only same-origin script can learn, from `GET /ui/session`).
pub const CSRF_HEADER: &str = "x-csrf-token";

impl TokenKeys {
    /// Keys from a shared secret (every API server of a deployment must use the same one).
    pub fn new(secret: &[u8], lifetime: std::time::Duration) -> TokenKeys {
        TokenKeys {
            encoding: jsonwebtoken::EncodingKey::from_secret(secret),
            decoding: jsonwebtoken::DecodingKey::from_secret(secret),
            lifetime,
        }
    }

    /// A signed token for `username` with `role`, valid from `now` for the lifetime.
    pub fn issue(&self, username: &str, role: Role, now: chrono::DateTime<chrono::Utc>) -> String {
        self.sign(username, role, now, None)
    }

    /// A signed web UI session token for `username`, with a fresh random CSRF value; returns
    /// the token and that value.
    pub fn issue_session(
        &self,
        username: &str,
        role: Role,
        now: chrono::DateTime<chrono::Utc>,
    ) -> (String, String) {
        use rand::Rng;
        let csrf: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        (self.sign(username, role, now, Some(csrf.clone())), csrf)
    }

    fn sign(
        &self,
        username: &str,
        role: Role,
        now: chrono::DateTime<chrono::Utc>,
        csrf: Option<String>,
    ) -> String {
        let claims = Claims {
            sub: username.to_string(),
            role: role.as_str().to_string(),
            iat: now.timestamp(),
            exp: now.timestamp() + self.lifetime.as_secs() as i64,
            csrf,
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &self.encoding,
        )
        .expect("HS256 signing with an in-memory key cannot fail")
    }

    /// Whose a valid, unexpired token is.
    pub fn verify(&self, token: &str) -> Option<Verified> {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.leeway = 5;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()
            .map(|data| Verified {
                username: data.claims.sub,
                csrf: data.claims.csrf,
            })
    }
}

/// The authenticated caller of a request: a valid token of a user that still exists, with
/// the user's current role. Rejects with 401 otherwise.
#[derive(Debug, Clone)]
pub struct Caller {
    pub username: String,
    pub role: Role,
    /// The CSRF value of the UI session the request came with, if it came with one.
    pub csrf: Option<String>,
}

impl Caller {
    /// 403 unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), crate::error::ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(crate::error::ApiError::forbidden(format!(
                "Forbidden: this needs the {} role; '{}' has {}",
                role.as_str(),
                self.username,
                self.role.as_str()
            )))
        }
    }
}

/// Where a request's token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer …`: sent deliberately by a client, so no CSRF check.
    Header,
    /// The UI's session cookie, which a browser attaches by itself.
    Cookie,
}

/// The token of a request, from the `Authorization` header or the UI's session cookie.
pub fn request_token(parts: &axum::http::request::Parts) -> Option<(String, TokenSource)> {
    if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let text = value.to_str().ok()?;
        let (scheme, token) = text.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| (token.trim().to_string(), TokenSource::Header));
    }
    cookie(&parts.headers, SESSION_COOKIE).map(|token| (token, TokenSource::Cookie))
}

/// The value of cookie `name` in a request's headers.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.to_string())
        })
}

/// Whether a cookie-authenticated request may go on: reads always may; anything that can
/// change state must echo the session's CSRF value, compared in constant time.
fn csrf_allows(parts: &axum::http::request::Parts, expected: Option<&str>) -> bool {
    use axum::http::Method;
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let (Some(expected), Some(sent)) = (
        expected,
        parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|value| value.to_str().ok()),
    ) else {
        return false;
    };
    expected.len() == sent.len()
        && expected
            .bytes()
            .zip(sent.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

impl axum::extract::FromRequestParts<crate::AppState> for Caller {
    type Rejection = crate::error::ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        use crate::error::ApiError;
        let (token, source) =
            request_token(parts).ok_or_else(|| ApiError::unauthorized("Not authenticated"))?;
        let verified = state
            .tokens
            .verify(&token)
            .ok_or_else(|| ApiError::unauthorized("Invalid or expired token"))?;
        if source == TokenSource::Cookie && !csrf_allows(parts, verified.csrf.as_deref()) {
            return Err(ApiError::forbidden(format!(
                "Forbidden: a request made with the session cookie must carry the session's \
                 {CSRF_HEADER} header"
            )));
        }
        let user = state
            .store
            .get_user(&verified.username)
            .await?
            .ok_or_else(|| ApiError::unauthorized("Invalid or expired token"))?;
        let role = Role::parse(&user.role).unwrap_or(Role::Viewer);
        Ok(Caller {
            username: verified.username,
            role,
            csrf: verified.csrf,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let hash = hash_password("s3cret").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("s3cret", "not a hash"));
    }
}
