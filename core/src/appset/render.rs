//! From parameter sets to Application objects: each set renders the
//! ApplicationSet's template (merged with its generator's own template),
//! then `templatePatch`, and gets Plumb's ownership marks (owner reference,
//! label, resources finalizer).
//!
//! It renders; it neither generates parameters (`generators`) nor decides
//! what to apply (`plan`).

use serde_json::{Value, json};

use super::model::{ApplicationSet, RESOURCES_FINALIZER};
use super::{Generated, Params};
use crate::template::{self, TemplateError, TemplateOptions};

/// The label on every Application an ApplicationSet generates, whose value
/// is the ApplicationSet's name: how Plumb finds the ones it owns, also for
/// an ApplicationSet read from a file (which has no uid to own them by).
pub const APPLICATIONSET_LABEL: &str = "plumb.dev/applicationset";

/// The error of rendering one parameter set.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    /// The template or `templatePatch` failed.
    #[error("parameter set {index}: {source}")]
    Template {
        /// 0-based index of the parameter set.
        index: usize,
        /// What failed.
        #[source]
        source: TemplateError,
    },
    /// The rendered Application is not one Plumb can create.
    #[error("parameter set {index}: {message}")]
    Invalid {
        /// 0-based index of the parameter set.
        index: usize,
        /// What is wrong.
        message: String,
    },
}

/// Who owns the generated Applications.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner<'a> {
    /// The ApplicationSet's name.
    pub name: &'a str,
    /// Its namespace: the generated Applications go there.
    pub namespace: &'a str,
    /// Its uid; `None` for an ApplicationSet read from a file.
    pub uid: Option<&'a str>,
}

/// Renders one parameter set into an Application object.
///
/// # Errors
/// When the template fails or the result has no name or another namespace.
pub fn application(
    appset: &ApplicationSet,
    generated: &Generated,
    index: usize,
    owner: &Owner<'_>,
) -> Result<Value, RenderError> {
    let spec = &appset.spec;
    let options = TemplateOptions::new(spec.go_template, &spec.go_template_options);
    let template_error = |source| RenderError::Template { index, source };
    let invalid = |message: String| RenderError::Invalid { index, message };
    // A generator's own template comes already filled from the set's.
    let tpl = generated.template.as_ref().unwrap_or(&spec.template);
    let mut app =
        template::render_value(tpl, &generated.params, &options).map_err(template_error)?;
    if let Some(patch) = spec.template_patch.as_deref() {
        app = template::apply_template_patch(app, patch, &generated.params, &options)
            .map_err(template_error)?;
    }
    let Value::Object(mut app) = app else {
        return Err(invalid("the template is not a mapping".into()));
    };
    let mut metadata = match app.remove("metadata") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(_) => return Err(invalid("template.metadata is not a mapping".into())),
    };
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.is_empty() {
        return Err(invalid(
            "the rendered application has no metadata.name".into(),
        ));
    }
    if !valid_name(name) {
        return Err(invalid(format!(
            "the rendered name {name:?} is not a valid Kubernetes name (lowercase letters, digits, '-' and '.', at most 253)"
        )));
    }
    match metadata.get("namespace").and_then(Value::as_str) {
        None | Some("") => {}
        Some(ns) if ns == owner.namespace => {}
        Some(ns) => {
            return Err(invalid(format!(
                "application {name:?} would go to namespace {ns:?}; generated applications stay in the ApplicationSet's namespace {:?}",
                owner.namespace
            )));
        }
    }
    metadata.insert("namespace".into(), json!(owner.namespace));
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| invalid("template.metadata.labels is not a mapping".into()))?;
    labels.insert(APPLICATIONSET_LABEL.into(), json!(owner.name));
    let preserve = spec
        .sync_policy
        .as_ref()
        .is_some_and(|p| p.preserve_resources_on_deletion);
    if !preserve {
        let finalizers = metadata
            .entry("finalizers")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .ok_or_else(|| invalid("template.metadata.finalizers is not a list".into()))?;
        let has_one = finalizers
            .iter()
            .filter_map(Value::as_str)
            .any(|f| f.starts_with(RESOURCES_FINALIZER));
        if !has_one {
            finalizers.push(json!(RESOURCES_FINALIZER));
        }
    }
    if let Some(uid) = owner.uid {
        metadata.insert(
            "ownerReferences".into(),
            json!([{
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "ApplicationSet",
                "name": owner.name,
                "uid": uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }]),
        );
    }
    let mut out = serde_json::Map::new();
    out.insert("apiVersion".into(), json!("argoproj.io/v1alpha1"));
    out.insert("kind".into(), json!("Application"));
    out.insert("metadata".into(), Value::Object(metadata));
    out.insert(
        "spec".into(),
        app.remove("spec").unwrap_or_else(|| json!({})),
    );
    Ok(Value::Object(out))
}

/// Renders every parameter set; the first error fails them all.
///
/// # Errors
/// The first set that fails to render.
pub fn applications(
    appset: &ApplicationSet,
    generated: &[Generated],
    owner: &Owner<'_>,
) -> Result<Vec<Value>, RenderError> {
    generated
        .iter()
        .enumerate()
        .map(|(i, g)| application(appset, g, i, owner))
        .collect()
}

/// A DNS subdomain name, as Kubernetes requires of an object's name.
fn valid_name(name: &str) -> bool {
    name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

/// The parameters of a set as `key=value` lines, for messages.
pub fn describe(params: &Params) -> String {
    params
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn appset(yaml: &str) -> ApplicationSet {
        serde_yaml::from_str(yaml).expect("valid ApplicationSet")
    }

    fn set(pairs: &[(&str, &str)]) -> Generated {
        Generated {
            params: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect(),
            template: None,
        }
    }

    const OWNER: Owner<'static> = Owner {
        name: "envs",
        namespace: "argocd",
        uid: Some("u-1"),
    };

    #[test]
    fn a_set_renders_with_ownership_label_and_finalizer() {
        let set_yaml = "spec:\n  generators: []\n  template:\n    metadata: {name: '{{env}}-web', labels: {env: '{{env}}'}}\n    spec:\n      project: default\n      source: {repoURL: 'https://git/x', path: 'envs/{{env}}'}\n      destination: {server: 'https://kubernetes.default.svc', namespace: '{{env}}'}\n";
        let app =
            application(&appset(set_yaml), &set(&[("env", "dev")]), 0, &OWNER).expect("renders");
        insta::assert_yaml_snapshot!(app, @r#"
        apiVersion: argoproj.io/v1alpha1
        kind: Application
        metadata:
          name: dev-web
          labels:
            env: dev
            plumb.dev/applicationset: envs
          namespace: argocd
          finalizers:
            - resources-finalizer.argocd.argoproj.io
          ownerReferences:
            - apiVersion: argoproj.io/v1alpha1
              kind: ApplicationSet
              name: envs
              uid: u-1
              controller: true
              blockOwnerDeletion: true
        spec:
          project: default
          source:
            repoURL: "https://git/x"
            path: envs/dev
          destination:
            server: "https://kubernetes.default.svc"
            namespace: dev
        "#);
    }

    #[test]
    fn preserve_resources_on_deletion_adds_no_finalizer_and_a_file_set_no_owner() {
        let yaml = "spec:\n  syncPolicy: {preserveResourcesOnDeletion: true}\n  template: {metadata: {name: a}, spec: {}}\n";
        let owner = Owner { uid: None, ..OWNER };
        let app = application(&appset(yaml), &set(&[]), 0, &owner).expect("renders");
        assert!(app.pointer("/metadata/finalizers").is_none());
        assert!(app.pointer("/metadata/ownerReferences").is_none());
        // A variant of the finalizer in the template is kept, not doubled.
        let yaml = "spec:\n  template: {metadata: {name: a, finalizers: [resources-finalizer.argocd.argoproj.io/background]}, spec: {}}\n";
        let app = application(&appset(yaml), &set(&[]), 0, &OWNER).expect("renders");
        assert_eq!(
            app["metadata"]["finalizers"],
            json!(["resources-finalizer.argocd.argoproj.io/background"])
        );
    }

    #[test]
    fn a_generator_template_overrides_the_sets_template() {
        let yaml = "spec:\n  template: {metadata: {name: '{{n}}'}, spec: {project: default, destination: {namespace: a}}}\n";
        let mut g = set(&[("n", "x")]);
        let set_yaml = appset(yaml);
        g.template = Some(crate::appset::fill_template(
            &json!({"spec": {"destination": {"namespace": "b"}}}),
            &set_yaml.spec.template,
        ));
        let app = application(&appset(yaml), &g, 0, &OWNER).expect("renders");
        assert_eq!(app["spec"]["destination"]["namespace"], "b");
        assert_eq!(app["spec"]["project"], "default");
    }

    #[test]
    fn bad_renders_are_errors_naming_the_set() {
        // (template, error substring)
        let cases = [
            ("{metadata: {name: ''}, spec: {}}", "no metadata.name"),
            (
                "{metadata: {name: 'Has_Caps'}, spec: {}}",
                "not a valid Kubernetes name",
            ),
            (
                "{metadata: {name: a, namespace: other}, spec: {}}",
                "namespace \"other\"",
            ),
            (
                "{metadata: {name: a, labels: [x]}, spec: {}}",
                "labels is not a mapping",
            ),
        ];
        for (template, want) in cases {
            let yaml = format!("spec:\n  template: {template}\n");
            let err = application(&appset(&yaml), &set(&[]), 3, &OWNER)
                .expect_err(template)
                .to_string();
            assert!(
                err.contains(want) && err.contains("parameter set 3"),
                "{template}: {err}"
            );
        }
    }
}
