//! Argo CD's local accounts as its `argocd-cm` ConfigMap declares them
//! (`accounts.NAME: apiKey, login`, `accounts.NAME.enabled`,
//! `admin.enabled`) and the list of API tokens issued to one
//! (`accounts.NAME.tokens` in `argocd-secret`). Pure: the engine reads the
//! objects, the API decides with these.
//!
//! Not here: passwords, signing keys and tokens themselves (the engine's
//! `accounts` and the API's `auth`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The built-in account.
pub const ADMIN: &str = "admin";

/// One account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Its name.
    pub name: String,
    /// Whether it may log in with a password (`login`).
    pub login: bool,
    /// Whether API tokens may be issued to it (`apiKey`).
    pub api_key: bool,
    /// `accounts.NAME.enabled` (or `admin.enabled`), true unless "false".
    pub enabled: bool,
}

/// Every account `argocd-cm`'s `data` declares, and `admin` (login only;
/// enabled unless `admin.enabled` is "false"). Unknown capabilities are
/// ignored, as Argo CD does.
pub fn accounts(config: &BTreeMap<String, String>) -> BTreeMap<String, Account> {
    let flag = |key: &str| config.get(key).is_none_or(|v| v.trim() != "false");
    let mut out = BTreeMap::new();
    out.insert(
        ADMIN.to_string(),
        Account {
            name: ADMIN.to_string(),
            login: true,
            api_key: false,
            enabled: flag("admin.enabled"),
        },
    );
    for (key, value) in config {
        let Some(name) = key.strip_prefix("accounts.") else {
            continue;
        };
        if name.is_empty() || name.contains('.') || name.contains(':') {
            continue; // `accounts.NAME.enabled`, or not a name
        }
        let caps: Vec<&str> = value.split(',').map(str::trim).collect();
        out.insert(
            name.to_string(),
            Account {
                name: name.to_string(),
                login: caps.contains(&"login"),
                api_key: caps.contains(&"apiKey"),
                enabled: flag(&format!("accounts.{name}.enabled")),
            },
        );
    }
    out
}

/// The `argocd-secret` key of an account's bcrypt password hash.
pub fn password_key(name: &str) -> String {
    if name == ADMIN {
        "admin.password".into()
    } else {
        format!("accounts.{name}.password")
    }
}

/// The `argocd-secret` key of when an account's password last changed
/// (RFC 3339); sessions issued before it are no longer valid.
pub fn password_mtime_key(name: &str) -> String {
    if name == ADMIN {
        "admin.passwordMtime".into()
    } else {
        format!("accounts.{name}.passwordMtime")
    }
}

/// The `argocd-secret` key of an account's issued API tokens.
pub fn tokens_key(name: &str) -> String {
    format!("accounts.{name}.tokens")
}

/// The `argocd-secret` key where Plumb lists the tokens it issued for a
/// project role (beside the role's `jwtTokens`, which Plumb does not
/// write: a project may come from a file).
pub fn project_tokens_key(project: &str, role: &str) -> String {
    format!("projects.{project}.roles.{role}.tokens")
}

/// One issued token, as Argo CD lists them: `{"id", "iat", "exp"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The token's id (`jti`).
    pub id: String,
    /// Issued at, seconds since the epoch.
    #[serde(default)]
    pub iat: i64,
    /// Expires at, seconds since the epoch; 0 for never.
    #[serde(default)]
    pub exp: i64,
}

/// A token list's text; empty or absent is no tokens.
///
/// # Errors
/// The text is not a JSON list of token records.
pub fn parse_tokens(text: Option<&str>) -> Result<Vec<TokenRecord>, String> {
    match text.map(str::trim) {
        None | Some("") => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| format!("invalid token list: {e}")),
    }
}

/// Whether `name` can be an account's name: it ends up in keys and in
/// `NAME:login` subjects.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn accounts_come_from_the_config_map_and_admin_is_always_there() {
        let all = accounts(&data(&[
            ("accounts.ci", "apiKey"),
            ("accounts.alice", "apiKey, login"),
            ("accounts.alice.enabled", "false"),
            ("admin.enabled", "false"),
            ("url", "https://x"),
        ]));
        assert_eq!(all.len(), 3);
        assert!(all["ci"].api_key && !all["ci"].login && all["ci"].enabled);
        assert!(all["alice"].login && !all["alice"].enabled);
        assert!(all["admin"].login && !all["admin"].enabled);
        assert!(accounts(&BTreeMap::new())["admin"].enabled);
    }

    #[test]
    fn token_lists_read_argo_cd_s_shape() {
        let tokens = parse_tokens(Some(r#"[{"id":"a","iat":1,"exp":0},{"id":"b","iat":2}]"#))
            .expect("parses");
        assert_eq!(tokens[1].id, "b");
        assert!(parse_tokens(None).expect("none").is_empty());
        assert!(parse_tokens(Some("{")).is_err());
    }

    #[test]
    fn names_that_cannot_be_keys_are_refused() {
        assert!(valid_name("ci-bot_2"));
        assert!(!valid_name("a:b"));
        assert!(!valid_name("a.b"));
        assert!(!valid_name(""));
    }
}
