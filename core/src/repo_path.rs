//! Paths inside a repository, resolved lexically: the one rule every tool
//! input obeys is that it stays inside the repository it came from.
//!
//! A repository path here is `/`-separated, relative to the repository root,
//! without `.` or `..` components, and `""` for the root. Symbolic links are
//! not this module's business: the checkout refuses links that leave the
//! repository, so a lexically contained path stays contained on disk.

use std::fmt;

/// A path that would leave the repository (or is absolute).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Escape {
    /// The path as written.
    pub path: String,
}

impl fmt::Display for Escape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} points outside the repository; only files of the same repository can be used",
            self.path
        )
    }
}

/// `relative` taken from the folder `base` (a repository path), as a
/// repository path.
///
/// # Errors
///
/// [`Escape`] when `relative` is absolute or climbs above the root.
pub fn join(base: &str, relative: &str) -> Result<String, Escape> {
    let escape = || Escape {
        path: relative.to_string(),
    };
    if relative.starts_with('/') || relative.starts_with('\\') || has_drive(relative) {
        return Err(escape());
    }
    let mut parts: Vec<&str> = base
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(escape());
                }
            }
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

/// The repository path of a folder as given in `spec.source.path`
/// (`""`, `.` and `./` for the root).
///
/// # Errors
///
/// [`Escape`] as [`join`].
pub fn normalize(path: &str) -> Result<String, Escape> {
    join("", path)
}

/// The parent folder of a repository path (`""` for the root's children).
pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(parent, _)| parent)
}

/// Where the folder `to` is, seen from the folder `from` (`../../app`).
pub fn relative(from: &str, to: &str) -> String {
    let from: Vec<&str> = from.split('/').filter(|p| !p.is_empty()).collect();
    let to: Vec<&str> = to.split('/').filter(|p| !p.is_empty()).collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; from.len() - common];
    parts.extend(&to[common..]);
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

fn has_drive(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_stays_inside_the_repository() {
        assert_eq!(join("apps/web", "../base").as_deref(), Ok("apps/base"));
        assert_eq!(
            join("apps/web", "./values.yaml").as_deref(),
            Ok("apps/web/values.yaml")
        );
        assert_eq!(join("", "a//b/./c").as_deref(), Ok("a/b/c"));
        assert_eq!(join("apps", "..").as_deref(), Ok(""));
        assert!(join("apps", "../..").is_err());
        assert!(join("apps", "../../etc/passwd").is_err());
        assert!(join("apps", "/etc/passwd").is_err());
        assert!(join("apps", "C:/x").is_err());
        assert_eq!(normalize("./").as_deref(), Ok(""));
        assert!(normalize("../x").is_err());
    }

    #[test]
    fn relative_paths_between_folders() {
        assert_eq!(relative(".plumb/k/1", "apps/web"), "../../../apps/web");
        assert_eq!(relative("", "apps"), "apps");
        assert_eq!(relative("apps/web", "apps/web"), ".");
        assert_eq!(relative("apps/web", "apps/base"), "../base");
        assert_eq!(parent("apps/web/values.yaml"), "apps/web");
        assert_eq!(parent("values.yaml"), "");
    }
}
