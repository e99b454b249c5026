//! What Plumb hands to Kustomize, as pure functions: the edits that apply
//! `spec.source.kustomize` to an application's kustomization (what Argo
//! CD's `kustomize edit` calls do), and the local paths a kustomization
//! refers to, which the engine checks stay inside the repository before
//! any build.

use serde_json::{Map, Value, json};

use crate::model::KustomizeSource;
use crate::repo_path;

/// Whether the options change anything, i.e. the kustomization must be
/// edited.
pub fn needs_edit(options: &KustomizeSource) -> bool {
    let KustomizeSource {
        name_prefix,
        name_suffix,
        namespace,
        images,
        common_labels,
        common_annotations,
        force_common_labels: _,
        force_common_annotations: _,
        label_without_selector: _,
        replicas,
        patches,
        components,
        ignore_missing_components: _,
        version: _,
    } = options;
    [name_prefix, name_suffix, namespace]
        .iter()
        .any(|o| o.as_deref().is_some_and(|s| !s.is_empty()))
        || !images.is_empty()
        || !common_labels.is_empty()
        || !common_annotations.is_empty()
        || !replicas.is_empty()
        || !patches.is_empty()
        || !components.is_empty()
}

/// Applies `options` to a kustomization as Argo CD's `kustomize edit`
/// calls do: `namePrefix`, `nameSuffix` and `namespace` replace the
/// kustomization's own; `images` and `replicas` replace the entry of the
/// same name or are added; `commonLabels` and `commonAnnotations` are
/// added, and a key the kustomization already sets is an error unless
/// `forceCommonLabels` / `forceCommonAnnotations` says to replace it;
/// `patches` and `components` (already filtered by the caller when
/// `ignoreMissingComponents` is set) are added after the kustomization's
/// own. Paths stay relative to the application's folder.
///
/// # Errors
///
/// A message naming the option when a value cannot be used (an image
/// without a name, a replica count that is not a number, a label the
/// kustomization already sets).
pub fn edit(
    kustomization: &mut Value,
    options: &KustomizeSource,
    components: &[String],
) -> Result<(), String> {
    if kustomization.is_null() {
        *kustomization = json!({});
    }
    let Some(k) = kustomization.as_object_mut() else {
        return Err("the kustomization is not a mapping".into());
    };
    for (field, value) in [
        ("namePrefix", &options.name_prefix),
        ("nameSuffix", &options.name_suffix),
        ("namespace", &options.namespace),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            k.insert(field.into(), json!(v));
        }
    }
    for spec in &options.images {
        let image = image(spec)?;
        upsert_by_name(k, "images", image);
    }
    if !options.common_labels.is_empty() {
        if options.label_without_selector {
            list(k, "labels").push(json!({
                "pairs": options.common_labels,
                "includeSelectors": false,
            }));
        } else {
            add_pairs(
                k,
                "commonLabels",
                &options.common_labels,
                options.force_common_labels,
                "forceCommonLabels",
            )?;
        }
    }
    add_pairs(
        k,
        "commonAnnotations",
        &options.common_annotations,
        options.force_common_annotations,
        "forceCommonAnnotations",
    )?;
    for r in &options.replicas {
        let count = match &r.count {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        }
        .filter(|c| *c >= 0)
        .ok_or_else(|| {
            format!(
                "spec.source.kustomize.replicas: the count of {:?} is {}, not a whole number",
                r.name, r.count
            )
        })?;
        upsert_by_name(k, "replicas", json!({"name": r.name, "count": count}));
    }
    for (i, p) in options.patches.iter().enumerate() {
        let mut out = Map::new();
        match (p.patch.as_deref().filter(|t| !t.trim().is_empty()), &p.path) {
            (Some(text), _) => {
                out.insert("patch".into(), json!(text));
            }
            (None, Some(path)) if !path.is_empty() => {
                out.insert("path".into(), json!(path));
            }
            _ => {
                return Err(format!(
                    "spec.source.kustomize.patches[{i}] has neither a patch nor a path"
                ));
            }
        }
        if let Some(target) = &p.target {
            out.insert("target".into(), target.clone());
        }
        if let Some(options) = &p.options {
            out.insert("options".into(), options.clone());
        }
        list(k, "patches").push(Value::Object(out));
    }
    for component in components {
        let components = list(k, "components");
        if !components.iter().any(|c| c.as_str() == Some(component)) {
            components.push(json!(component));
        }
    }
    Ok(())
}

/// The list at `field`, created when absent (or not a list).
fn list<'a>(k: &'a mut Map<String, Value>, field: &str) -> &'a mut Vec<Value> {
    let entry = k.entry(field).or_insert_with(|| json!([]));
    if !entry.is_array() {
        *entry = json!([]);
    }
    entry.as_array_mut().expect("just made a list")
}

/// Replaces the item of `field` with the same `name`, or adds `item`.
fn upsert_by_name(k: &mut Map<String, Value>, field: &str, item: Value) {
    let items = list(k, field);
    match items.iter_mut().find(|i| i.get("name") == item.get("name")) {
        Some(existing) => *existing = item,
        None => items.push(item),
    }
}

/// Adds `pairs` to the map at `field`; a key already there is an error
/// unless `force`.
fn add_pairs(
    k: &mut Map<String, Value>,
    field: &str,
    pairs: &std::collections::BTreeMap<String, String>,
    force: bool,
    force_field: &str,
) -> Result<(), String> {
    if pairs.is_empty() {
        return Ok(());
    }
    let entry = k.entry(field).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    let map = entry.as_object_mut().expect("just made a mapping");
    for (key, value) in pairs {
        if map.contains_key(key) && !force {
            return Err(format!(
                "spec.source.kustomize: the kustomization already sets {field} {key:?}; set {force_field}: true to replace it"
            ));
        }
        map.insert(key.clone(), json!(value));
    }
    Ok(())
}

/// One of Argo CD's image overrides (`kustomize edit set image` syntax):
/// `name=newName:tag`, `name=newName@digest`, `name=newName`, `name:tag`,
/// `name@digest`.
fn image(spec: &str) -> Result<Value, String> {
    let bad = || {
        format!(
            "spec.source.kustomize.images: {spec:?} is not an image override; write name=newName:tag, name:tag or name@digest"
        )
    };
    let (name, replacement) = match spec.split_once('=') {
        Some((name, rest)) => (Some(name), rest),
        None => (None, spec),
    };
    let (image, digest) = match replacement.split_once('@') {
        Some((image, digest)) => (image, Some(digest)),
        None => (replacement, None),
    };
    // A colon after the last slash separates the tag; one before it is a
    // registry's port.
    let (image, tag) = match image.rfind(':') {
        Some(colon) if colon > image.rfind('/').unwrap_or(0) && digest.is_none() => {
            (&image[..colon], Some(&image[colon + 1..]))
        }
        _ => (image, None),
    };
    if image.is_empty() || name.is_some_and(str::is_empty) {
        return Err(bad());
    }
    let mut out = Map::new();
    match name {
        Some(name) => {
            out.insert("name".into(), json!(name));
            if name != image {
                out.insert("newName".into(), json!(image));
            }
        }
        None => {
            out.insert("name".into(), json!(image));
        }
    }
    if let Some(tag) = tag {
        out.insert("newTag".into(), json!(tag));
    }
    if let Some(digest) = digest {
        out.insert("digest".into(), json!(digest));
    }
    if out.len() == 1 {
        return Err(bad());
    }
    Ok(Value::Object(out))
}

/// A path a kustomization refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The field it is written in (`resources`, `patches[].path`, ...).
    pub field: &'static str,
    /// The path as written.
    pub path: String,
}

/// The local paths a kustomization refers to: resources and bases,
/// components, patch files, generator and transformer files, CRD and
/// configuration files, and the files of config map and secret
/// generators. Remote resources (URLs) and inline patches are left out.
pub fn references(kustomization: &Value) -> Vec<Reference> {
    let mut out = Vec::new();
    let mut add = |field: &'static str, path: &str| {
        let path = path.trim();
        if !path.is_empty() && !is_remote(path) && !path.contains('\n') {
            out.push(Reference {
                field,
                path: path.to_string(),
            });
        }
    };
    let strings = |field: &str| -> Vec<&str> {
        kustomization
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    };
    for field in [
        "resources",
        "bases",
        "components",
        "crds",
        "configurations",
        "generators",
        "transformers",
        "validators",
        "patchesStrategicMerge",
    ] {
        let name: &'static str = field;
        for path in strings(field) {
            add(name, path);
        }
    }
    for (field, shown) in [
        ("patches", "patches[].path"),
        ("patchesJson6902", "patchesJson6902[].path"),
        ("replacements", "replacements[].path"),
    ] {
        for item in kustomization
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(path) = item.get("path").and_then(Value::as_str) {
                add(shown, path);
            }
        }
    }
    if let Some(path) = kustomization
        .pointer("/openapi/path")
        .and_then(Value::as_str)
    {
        add("openapi.path", path);
    }
    for generator in ["configMapGenerator", "secretGenerator"] {
        for item in kustomization
            .get(generator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for list in ["files", "envs"] {
                for entry in item
                    .get(list)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    // `key=path` names the key; the path follows.
                    let path = entry.split_once('=').map_or(entry, |(_, p)| p);
                    add("generator files", path);
                }
            }
            if let Some(env) = item.get("env").and_then(Value::as_str) {
                add("generator env", env);
            }
        }
    }
    out
}

/// Whether a resource is fetched from the network (a URL) rather than
/// read from the repository. Anything else, `github.com/org/repo` included,
/// is checked as a local path first: Kustomize reads a local folder of
/// that name when there is one, so only a path that cannot leave the
/// repository may pass. `file://` is never remote.
pub fn is_remote(path: &str) -> bool {
    (path.contains("://") && !path.starts_with("file:")) || path.starts_with("git@")
}

/// Where `reference`, written in the kustomization of the folder `dir`,
/// is in the repository.
///
/// # Errors
///
/// A message naming the field and the path when it leaves the repository.
pub fn resolve(dir: &str, reference: &Reference) -> Result<String, String> {
    let shown = if dir.is_empty() { "." } else { dir };
    if reference.path.starts_with("file:") {
        return Err(format!(
            "kustomization in {shown}: {} {:?} points outside the repository; only files of the same repository can be used",
            reference.field, reference.path
        ));
    }
    repo_path::join(dir, &reference.path)
        .map_err(|e| format!("kustomization in {shown}: {} {e}", reference.field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KustomizePatch, KustomizeReplica};

    #[test]
    fn image_overrides_in_argo_cds_syntax() {
        assert_eq!(
            image("nginx=registry:5000/web:1.2").expect("parses"),
            json!({"name": "nginx", "newName": "registry:5000/web", "newTag": "1.2"})
        );
        assert_eq!(
            image("nginx:1.25").expect("parses"),
            json!({"name": "nginx", "newTag": "1.25"})
        );
        assert_eq!(
            image("nginx@sha256:abc").expect("parses"),
            json!({"name": "nginx", "digest": "sha256:abc"})
        );
        assert_eq!(
            image("nginx=my/nginx").expect("parses"),
            json!({"name": "nginx", "newName": "my/nginx"})
        );
        assert!(image("nginx").is_err());
        assert!(image("=x:1").is_err());
    }

    #[test]
    fn edit_applies_every_option_as_kustomize_edit_does() {
        let options = KustomizeSource {
            name_prefix: Some("opt-".into()),
            namespace: Some("dev".into()),
            images: vec!["web:2".into(), "db=postgres:16".into()],
            common_labels: [("team".to_string(), "a".to_string())].into(),
            replicas: vec![KustomizeReplica {
                name: "web".into(),
                count: json!("3"),
            }],
            patches: vec![
                KustomizePatch {
                    path: Some("p.yaml".into()),
                    ..Default::default()
                },
                KustomizePatch {
                    patch: Some("- op: remove\n  path: /x".into()),
                    target: Some(json!({"kind": "Deployment"})),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert!(needs_edit(&options));
        let mut k: Value = serde_yaml::from_str(
            "namePrefix: dev-\nresources: [../../base]\nimages: [{name: web, newTag: '1'}]\nreplicas: [{name: other, count: 1}]\n",
        )
        .expect("yaml");
        edit(&mut k, &options, &["c".into()]).expect("edits");
        assert_eq!(k["resources"], json!(["../../base"]));
        assert_eq!(k["namePrefix"], json!("opt-"), "replaced, not stacked");
        assert_eq!(k["namespace"], json!("dev"));
        assert_eq!(
            k["images"],
            json!([{"name": "web", "newTag": "2"}, {"name": "db", "newName": "postgres", "newTag": "16"}])
        );
        assert_eq!(k["commonLabels"], json!({"team": "a"}));
        assert_eq!(
            k["replicas"],
            json!([{"name": "other", "count": 1}, {"name": "web", "count": 3}])
        );
        assert_eq!(k["patches"][0], json!({"path": "p.yaml"}));
        assert_eq!(k["patches"][1]["target"], json!({"kind": "Deployment"}));
        assert_eq!(k["components"], json!(["c"]));
        assert!(!needs_edit(&KustomizeSource::default()));

        let relabel = KustomizeSource {
            common_labels: [("team".to_string(), "b".to_string())].into(),
            ..Default::default()
        };
        let error = edit(&mut k.clone(), &relabel, &[]).expect_err("already set");
        assert!(error.contains("forceCommonLabels"), "{error}");
        let forced = KustomizeSource {
            force_common_labels: true,
            ..relabel
        };
        edit(&mut k, &forced, &[]).expect("forced");
        assert_eq!(k["commonLabels"], json!({"team": "b"}));

        let bad = KustomizeSource {
            replicas: vec![KustomizeReplica {
                name: "web".into(),
                count: json!("many"),
            }],
            ..Default::default()
        };
        assert!(edit(&mut json!({}), &bad, &[]).is_err());
    }

    #[test]
    fn references_list_local_paths_only() {
        let k: Value = serde_yaml::from_str(
            "resources: [deploy.yaml, ../base, https://example.com/x.yaml, git@github.com:org/repo//k?ref=v1]\n\
             components: [../comp]\n\
             patches: [{path: p.yaml}, {patch: 'kind: X'}]\n\
             configMapGenerator: [{name: c, files: [k=conf/a.txt, b.txt], envs: [e.env]}]\n",
        )
        .expect("yaml");
        let paths: Vec<(&str, String)> = references(&k)
            .into_iter()
            .map(|r| (r.field, r.path))
            .collect();
        let expected = [
            ("resources", "deploy.yaml"),
            ("resources", "../base"),
            ("components", "../comp"),
            ("patches[].path", "p.yaml"),
            ("generator files", "conf/a.txt"),
            ("generator files", "b.txt"),
            ("generator files", "e.env"),
        ]
        .map(|(f, p)| (f, p.to_string()));
        assert_eq!(paths, expected);
        let escape = Reference {
            field: "resources",
            path: "../../../etc".into(),
        };
        let message = resolve("apps/web", &escape).expect_err("escapes");
        assert!(message.contains("resources") && message.contains("outside the repository"));
        for path in ["file:///etc", "evil.example/../../../../etc"] {
            let reference = Reference {
                field: "resources",
                path: path.into(),
            };
            assert!(!is_remote(path) || path.starts_with("file"), "{path}");
            assert!(resolve("apps/web", &reference).is_err(), "{path}");
        }
        assert!(is_remote("https://github.com/org/repo//base?ref=v1"));
        assert!(is_remote("git@github.com:org/repo.git"));
    }
}
