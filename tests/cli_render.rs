//! `plumb render` and `plumb crd`, offline: the real binary on real git
//! repositories, no cluster.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};

use anyhow::Result;
use support::GitRepo;

fn plumb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_plumb"))
}

#[test]
fn render_prints_the_normalized_manifests_of_a_repository_folder() -> Result<()> {
    let repo = GitRepo::new(Some("e2e/basic"))?;
    let cache = tempfile::tempdir()?;
    let out = plumb()
        .args(["render", "--repo", &repo.url(), "--path", ".", "--data-dir"])
        .arg(cache.path())
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(serde::Deserialize::deserialize)
        .collect::<Result<_, _>>()?;
    let kinds: Vec<&str> = docs
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["ConfigMap", "Deployment", "Secret", "Service"]);
    assert_eq!(
        docs[3]["spec"]["ports"][0]["protocol"], "TCP",
        "protocol defaulted"
    );
    Ok(())
}

#[test]
fn render_of_a_missing_repository_fails_with_a_clear_message() -> Result<()> {
    let cache = tempfile::tempdir()?;
    let out = plumb()
        .args([
            "render",
            "--repo",
            "/nonexistent/plumb-repo",
            "--path",
            ".",
            "--data-dir",
        ])
        .arg(cache.path())
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/plumb-repo") && !err.contains("panicked"),
        "{err}"
    );
    Ok(())
}

#[test]
fn output_into_a_closed_pipe_is_not_a_crash() -> Result<()> {
    let mut child = plumb()
        .arg("crd")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    drop(child.stdout.take());
    let status = child.wait()?;
    let mut err = String::new();
    child.stderr.take().map(|mut e| e.read_to_string(&mut err));
    assert!(status.success(), "{err}");
    Ok(())
}
