//! `type: static`: tokens from the config.

use ferrostack_config::StaticTokensConfig;
use secrecy::{ExposeSecret, SecretString};

use super::claims::non_empty;
use super::error::AuthError;
use crate::User;

pub(crate) struct StaticTokens {
    entries: Vec<(SecretString, User)>,
}

impl StaticTokens {
    pub(crate) fn new(config: &StaticTokensConfig) -> Self {
        let entries = config
            .tokens
            .iter()
            .map(|t| {
                let user = User { principal: t.principal.clone(), attributes: non_empty(t.attributes.clone()) };
                (t.token.clone(), user)
            })
            .collect();
        Self { entries }
    }

    /// The user of `token`. Every configured token is compared, in constant time per byte, so the
    /// time taken says nothing about which token (or which prefix) matched.
    pub(crate) fn authenticate(&self, token: &str) -> Result<User, AuthError> {
        let mut found: Option<&User> = None;
        for (secret, user) in &self.entries {
            if constant_time_eq(secret.expose_secret().as_bytes(), token.as_bytes()) {
                found = Some(user);
            }
        }
        found.cloned().ok_or_else(|| AuthError::rejected("Invalid token"))
    }
}

/// Byte equality whose time depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff: u64 = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
