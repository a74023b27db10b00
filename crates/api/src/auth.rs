//! Who is calling: password hashing (argon2id, PHC strings) for users stored in the database,
//! JWT access tokens (`POST /auth/token`, HS256), and roles with Airflow's meanings, checked
//! by the [`Caller`] extractor every protected handler takes.

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
}

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
        let claims = Claims {
            sub: username.to_string(),
            role: role.as_str().to_string(),
            iat: now.timestamp(),
            exp: now.timestamp() + self.lifetime.as_secs() as i64,
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &self.encoding,
        )
        .expect("HS256 signing with an in-memory key cannot fail")
    }

    /// The username in a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Option<String> {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.leeway = 5;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()
            .map(|data| data.claims.sub)
    }
}

/// The authenticated caller of a request: a valid token of a user that still exists, with
/// the user's current role. Rejects with 401 otherwise.
#[derive(Debug, Clone)]
pub struct Caller {
    pub username: String,
    pub role: Role,
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

/// The bearer token of a request, from the `Authorization` header or the UI's cookie.
pub fn request_token(parts: &axum::http::request::Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let text = value.to_str().ok()?;
        let (scheme, token) = text.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string());
    }
    let cookies = parts
        .headers
        .get(axum::http::header::COOKIE)?
        .to_str()
        .ok()?;
    cookies.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == "_token").then(|| value.to_string())
    })
}

impl axum::extract::FromRequestParts<crate::AppState> for Caller {
    type Rejection = crate::error::ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        use crate::error::ApiError;
        let token =
            request_token(parts).ok_or_else(|| ApiError::unauthorized("Not authenticated"))?;
        let username = state
            .tokens
            .verify(&token)
            .ok_or_else(|| ApiError::unauthorized("Invalid or expired token"))?;
        let user = state
            .store
            .get_user(&username)
            .await?
            .ok_or_else(|| ApiError::unauthorized("Invalid or expired token"))?;
        let role = Role::parse(&user.role).unwrap_or(Role::Viewer);
        Ok(Caller { username, role })
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
