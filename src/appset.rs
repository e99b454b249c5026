//! `plumb appset generate FILE`: the Applications an ApplicationSet file
//! would produce, generated here (git read into a local cache; the
//! clusters generator sees only the in-cluster destination), or with a
//! server, what it would create, update and delete in the server's cluster.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use plumb_cli::{Client, Output};
use plumb_engine::generators;
use plumb_engine::registry::{self, DeclaredSet};
use plumb_engine::source::RepoCache;

/// `plumb appset generate`.
#[derive(clap::Args)]
pub struct GenerateArgs {
    /// A file of ApplicationSet manifests.
    file: PathBuf,
    /// Which ApplicationSet of the file (default: the first).
    #[arg(long)]
    name: Option<String>,
    /// The namespace the Applications would go to (default: the
    /// ApplicationSet's own, else `argocd`).
    #[arg(long)]
    namespace: Option<String>,
    /// Generate here even when a server is given.
    #[arg(long)]
    offline: bool,
    /// Where to keep the repository cache.
    #[arg(long, default_value_os_t = std::env::temp_dir().join("plumb-render"))]
    data_dir: PathBuf,
}

fn pick(args: &GenerateArgs) -> Result<DeclaredSet> {
    let sets = registry::load_appset_files(std::slice::from_ref(&args.file))?;
    let found = match &args.name {
        Some(name) => sets.into_iter().find(|s| s.name() == name),
        None => sets.into_iter().next(),
    };
    found.ok_or_else(|| match &args.name {
        Some(name) => anyhow!("{} has no ApplicationSet named {name}", args.file.display()),
        None => anyhow!("{} holds no ApplicationSet", args.file.display()),
    })
}

/// Runs `plumb appset generate`: offline unless `server` is set.
///
/// # Errors
/// A file without the ApplicationSet, a repository that cannot be fetched,
/// a generator or template error, a server that refuses.
pub fn generate(
    args: &GenerateArgs,
    server: Option<&str>,
    output: Output,
    out: &mut impl std::io::Write,
) -> Result<()> {
    let declared = pick(args)?;
    if let (Some(server), false) = (server, args.offline) {
        let manifest = serde_json::to_value(&declared.set)?;
        let preview = Client::new(server)?.preview_appset(&manifest)?;
        plumb_cli::print_appset_preview(out, output, &preview)?;
        return Ok(());
    }
    if !declared.unsupported.is_empty() {
        bail!(
            "fields Plumb does not support yet: {}",
            declared.unsupported.join(", ")
        );
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let repos = RepoCache::new(&args.data_dir);
    for url in generators::git_urls(&declared.set.spec.generators) {
        repos
            .fetch(&url)
            .with_context(|| format!("cannot fetch {url}"))?;
    }
    let namespace = args
        .namespace
        .clone()
        .or_else(|| declared.set.metadata.namespace.clone())
        .unwrap_or_else(|| "argocd".into());
    let apps = generators::applications(
        &repos,
        &declared,
        Ok(generators::clusters_from_secrets(&[])),
        &namespace,
    )
    .map_err(|e| anyhow!("{e}"))?;
    let text = match output {
        Output::Json => serde_json::to_string_pretty(&apps)? + "\n",
        Output::Table | Output::Yaml => {
            let mut text = String::new();
            for app in &apps {
                text.push_str("---\n");
                text.push_str(&serde_yaml::to_string(app)?);
            }
            text
        }
    };
    out.write_all(text.as_bytes())
        .context("cannot write to stdout")?;
    Ok(())
}
