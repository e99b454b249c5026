//! The CLI's own file, `$XDG_CONFIG_HOME/plumb/config` (else
//! `~/.config/plumb/config`), mode 0600: the token `plumb login` got from
//! each server, by the server's URL.
//!
//! Not here: where a command's token comes from first (`--auth-token`,
//! `PLUMB_AUTH_TOKEN`, `ARGOCD_AUTH_TOKEN`; the binary decides).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The error of reading or writing the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither `$XDG_CONFIG_HOME` nor `$HOME` is set.
    #[error("cannot find the config directory: set $XDG_CONFIG_HOME or $HOME")]
    NoHome,
    /// The file cannot be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// read or write.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not the YAML the CLI writes.
    #[error("{path} is not a plumb config file: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// One server's entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ServerEntry {
    /// The server's URL, as `Client::base_url` writes it.
    pub server: String,
    /// Who logged in.
    #[serde(default)]
    pub username: String,
    /// The session token.
    #[serde(default)]
    pub auth_token: String,
}

/// The file's content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Config {
    /// One entry per server logged in to.
    #[serde(default)]
    pub servers: Vec<ServerEntry>,
}

impl Config {
    /// Where the file is.
    ///
    /// # Errors
    /// [`ConfigError::NoHome`].
    pub fn path() -> Result<PathBuf, ConfigError> {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        let dir = match (var("XDG_CONFIG_HOME"), var("HOME")) {
            (Some(xdg), _) => PathBuf::from(xdg),
            (None, Some(home)) => PathBuf::from(home).join(".config"),
            (None, None) => return Err(ConfigError::NoHome),
        };
        Ok(dir.join("plumb").join("config"))
    }

    /// The file at `path`; empty when it does not exist.
    ///
    /// # Errors
    /// It cannot be read or parsed.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_yaml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Writes the file at `path`, readable by its owner only.
    ///
    /// # Errors
    /// It cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let io = |source| ConfigError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = serde_yaml::to_string(self).expect("the config always serializes");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        // An older file keeps its mode on open: make it private too.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)
    }

    /// The token kept for `server`, if any.
    pub fn token(&self, server: &str) -> Option<&str> {
        self.servers
            .iter()
            .find(|e| e.server == server && !e.auth_token.is_empty())
            .map(|e| e.auth_token.as_str())
    }

    /// Keeps `token` for `server` (replacing an older one).
    pub fn set(&mut self, server: &str, username: &str, token: &str) {
        self.servers.retain(|e| e.server != server);
        self.servers.push(ServerEntry {
            server: server.to_string(),
            username: username.to_string(),
            auth_token: token.to_string(),
        });
    }

    /// Forgets `server`'s token; whether there was one.
    pub fn remove(&mut self, server: &str) -> bool {
        let before = self.servers.len();
        self.servers.retain(|e| e.server != server);
        before != self.servers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_config_is_private_and_reads_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("plumb-config-test-{}", std::process::id()));
        let path = dir.join("plumb/config");
        let mut config = Config::default();
        config.set("http://a/", "admin", "t1");
        config.set("http://a/", "admin", "t2");
        config.save(&path).expect("saves");
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let read = Config::load(&path).expect("loads");
        assert_eq!(read.token("http://a/"), Some("t2"));
        assert!(
            Config::load(&dir.join("none"))
                .expect("empty")
                .servers
                .is_empty()
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
