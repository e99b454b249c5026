use super::*;
use serde_json::json;

fn rule(group: &str, kind: &str) -> ResourceIgnoreDifferences {
    ResourceIgnoreDifferences {
        group: group.into(),
        kind: kind.into(),
        ..Default::default()
    }
}

fn key(group: &str, kind: &str, namespace: &str, name: &str) -> ResourceKey {
    ResourceKey {
        group: group.into(),
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "n",
            "labels": {"app": "web", "node-role.kubernetes.io/worker": "x"}},
        "spec": {
            "replicas": 3,
            "template": {"spec": {
                "initContainers": [{"name": "injected", "image": "i"}, {"name": "own", "image": "o"}],
                "containers": [{"name": "web", "image": "web:1"}, {"name": "sidecar", "image": "s:1"}]
            }}
        }
    })
}

#[test]
fn rules_match_by_group_kind_name_and_namespace() {
    let named = ResourceIgnoreDifferences {
        name: "web".into(),
        namespace: "n".into(),
        ..rule("apps", "Deployment")
    };
    let cases: &[(ResourceIgnoreDifferences, ResourceKey, bool)] = &[
        (
            rule("apps", "Deployment"),
            key("apps", "Deployment", "n", "web"),
            true,
        ),
        (
            rule("apps", "Deployment"),
            key("apps", "StatefulSet", "n", "web"),
            false,
        ),
        (
            rule("", "Deployment"),
            key("apps", "Deployment", "n", "web"),
            false,
        ),
        (rule("", "Service"), key("", "Service", "n", "s"), true),
        (rule("*", "*"), key("", "ConfigMap", "", "c"), true),
        (
            rule("*", "Deployment"),
            key("apps", "Deployment", "n", "web"),
            true,
        ),
        (
            rule("apps", "*Set"),
            key("apps", "StatefulSet", "n", "db"),
            true,
        ),
        (
            rule("apps", "*Set"),
            key("apps", "Deployment", "n", "web"),
            false,
        ),
        (
            rule("*.k8s.io", "*"),
            key("rbac.authorization.k8s.io", "Role", "n", "r"),
            true,
        ),
        (
            rule("*.k8s.io", "*"),
            key("apps", "Deployment", "n", "r"),
            false,
        ),
        (
            rule("app?", "Deployment"),
            key("apps", "Deployment", "n", "web"),
            true,
        ),
        (named.clone(), key("apps", "Deployment", "n", "web"), true),
        (named.clone(), key("apps", "Deployment", "n", "api"), false),
        (named, key("apps", "Deployment", "other", "web"), false),
        // Names and namespaces are exact, as in Argo CD.
        (
            ResourceIgnoreDifferences {
                name: "we*".into(),
                ..rule("apps", "Deployment")
            },
            key("apps", "Deployment", "n", "web"),
            false,
        ),
    ];
    for (r, k, expected) in cases {
        let rules = IgnoreRules::compile([r]).expect("rule compiles");
        assert_eq!(rules.matching(k).is_some(), *expected, "{r:?} against {k}");
    }
    assert!(
        IgnoreRules::compile([])
            .expect("no rules compile")
            .matching(&key("", "ConfigMap", "n", "c"))
            .is_none()
    );
}

/// The document after masking it with `rule` (no managed fields).
fn masked(r: ResourceIgnoreDifferences, document: &Value) -> Value {
    let rules = IgnoreRules::compile([&r]).expect("rule compiles");
    let matched = rules
        .matching(&ResourceKey::of(document).expect("a key"))
        .expect("the rule matches");
    let mut out = document.clone();
    let mut other = document.clone();
    matched.mask(&mut out, &mut other).expect("masks");
    assert_eq!(out, other, "both sides are masked alike");
    out
}

#[test]
fn json_pointers_remove_what_they_name() {
    let cases: &[(&[&str], &str, Option<Value>)] = &[
        (&["/spec/replicas"], "/spec/replicas", None),
        (
            &["/spec/replicas"],
            "/spec/template",
            Some(deployment()["spec"]["template"].clone()),
        ),
        (
            &["/metadata/labels/node-role.kubernetes.io~1worker"],
            "/metadata/labels",
            Some(json!({"app": "web"})),
        ),
        (
            &["/spec/template/spec/containers/1"],
            "/spec/template/spec/containers",
            Some(json!([{"name": "web", "image": "web:1"}])),
        ),
        // Several items of one list: removed last first, so both go.
        (
            &[
                "/spec/template/spec/containers/0",
                "/spec/template/spec/containers/1",
            ],
            "/spec/template/spec/containers",
            Some(json!([])),
        ),
        // Absent fields, indices past the end and `-` remove nothing.
        (
            &[
                "/spec/absent",
                "/spec/template/spec/containers/7",
                "/spec/template/spec/containers/-",
            ],
            "/spec/template/spec/containers/1/name",
            Some(json!("sidecar")),
        ),
    ];
    for (pointers, look, expected) in cases {
        let r = ResourceIgnoreDifferences {
            json_pointers: pointers.iter().map(|p| p.to_string()).collect(),
            ..rule("apps", "Deployment")
        };
        assert_eq!(
            masked(r, &deployment()).pointer(look).cloned(),
            *expected,
            "{pointers:?}"
        );
    }
}

#[test]
fn jq_path_expressions_remove_what_they_select() {
    let cases: &[(&str, &str, Option<Value>)] = &[
        (".spec.replicas", "/spec/replicas", None),
        (
            ".spec.template.spec.initContainers[] | select(.name == \"injected\")",
            "/spec/template/spec/initContainers",
            Some(json!([{"name": "own", "image": "o"}])),
        ),
        (
            ".spec.template.spec.containers[].image",
            "/spec/template/spec/containers",
            Some(json!([{"name": "web"}, {"name": "sidecar"}])),
        ),
        (
            ".spec.template.spec.containers[] | select(.name | test(\"^side\")) | .image",
            "/spec/template/spec/containers/1",
            Some(json!({"name": "sidecar"})),
        ),
        (
            ".metadata.labels[\"node-role.kubernetes.io/worker\"]",
            "/metadata/labels",
            Some(json!({"app": "web"})),
        ),
        // What the document lacks, or an expression that fails on it,
        // removes nothing.
        (".spec.absent", "/spec/replicas", Some(json!(3))),
        (".spec.absent[] | .x", "/spec/replicas", Some(json!(3))),
        (
            ".webhooks[]?.clientConfig.caBundle",
            "/spec/replicas",
            Some(json!(3)),
        ),
    ];
    for (expression, look, expected) in cases {
        let r = ResourceIgnoreDifferences {
            jq_path_expressions: vec![expression.to_string()],
            ..rule("apps", "Deployment")
        };
        assert_eq!(
            masked(r, &deployment()).pointer(look).cloned(),
            *expected,
            "{expression}"
        );
    }
}

#[test]
fn bad_pointers_and_expressions_are_errors_naming_them() {
    let cases: &[(&[&str], &[&str], &str)] = &[
        (&["spec/replicas"], &[], "spec/replicas"),
        (&["/a~2b"], &[], "/a~2b"),
        (&[], &[".spec.replicas |||"], ".spec.replicas |||"),
        (&[], &[".spec | nosuchfunction"], "nosuchfunction"),
        (&[], &["def f: f; f"], "local definitions"),
        (&[], &["[range(1e12)] | .[]"], "range is not evaluated"),
        (&[], &[".spec | repeat(.)"], "repeat"),
        (&[], &["env | .HOME"], "env"),
        (
            &[],
            &[".a as $x | [limit(1; $x | until(false; .))]"],
            "until",
        ),
    ];
    for (pointers, expressions, named) in cases {
        let r = ResourceIgnoreDifferences {
            json_pointers: pointers.iter().map(|p| p.to_string()).collect(),
            jq_path_expressions: expressions.iter().map(|p| p.to_string()).collect(),
            ..rule("apps", "Deployment")
        };
        let error = IgnoreRules::compile([&r]).expect_err("refused").to_string();
        assert!(error.contains(named), "{error} should name {named}");
        assert!(error.starts_with("ignoreDifferences: "), "{error}");
    }
    // `..` is bounded by the document: allowed.
    let r = ResourceIgnoreDifferences {
        jq_path_expressions: vec!["..|.caBundle?".into(), "recurse | .x?".into()],
        ..rule("apps", "Deployment")
    };
    IgnoreRules::compile([&r]).expect("recursion over the document compiles");
}

#[test]
fn an_expression_selecting_too_much_is_an_error() {
    let big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
        "data": (0..MAX_JQ_PATHS + 1).map(|i| (i.to_string(), json!("x"))).collect::<Map<String, Value>>()});
    let r = ResourceIgnoreDifferences {
        jq_path_expressions: vec![".data[]".into()],
        ..rule("", "ConfigMap")
    };
    let rules = IgnoreRules::compile([&r]).expect("compiles");
    let matched = rules
        .matching(&key("", "ConfigMap", "", "c"))
        .expect("matches");
    assert!(matches!(
        matched.paths(&big, None),
        Err(MaskError::TooManyPaths(_))
    ));
}

fn managed_fields() -> Value {
    json!([
        {"manager": "plumb", "operation": "Apply", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:spec": {"f:template": {"f:spec": {"f:containers": {
             "k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}}},
        {"manager": "hpa", "operation": "Update", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:spec": {"f:replicas": {}}}},
        {"manager": "injector", "operation": "Update", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:node-role.kubernetes.io/worker": {}}},
             "f:spec": {"f:template": {"f:spec": {
                 "f:containers": {"k:{\"name\":\"sidecar\"}": {".": {}, "f:name": {}, "f:image": {}}},
                 "f:initContainers": {"k:{\"name\":\"injected\"}": {".": {}, "f:name": {}}}}}}}},
        {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:replicas": {}}}}
    ])
}

#[test]
fn managed_fields_managers_remove_the_fields_they_own() {
    let mut live = deployment();
    live["metadata"]["managedFields"] = managed_fields();
    /// A pointer looked at, and what it should find.
    type Look<'a> = (&'a str, Option<Value>);
    let cases: &[(&[&str], &[Look])] = &[
        (
            &["hpa"],
            &[
                ("/spec/replicas", None),
                (
                    "/spec/template/spec/containers/1/name",
                    Some(json!("sidecar")),
                ),
            ],
        ),
        (
            &["injector"],
            &[
                ("/metadata/labels", Some(json!({"app": "web"}))),
                ("/spec/replicas", Some(json!(3))),
                (
                    "/spec/template/spec/containers",
                    Some(json!([{"name": "web", "image": "web:1"}])),
                ),
                (
                    "/spec/template/spec/initContainers",
                    Some(json!([{"name": "own", "image": "o"}])),
                ),
            ],
        ),
        // A manager that owns nothing here, or no manager named: nothing.
        (
            &["kube-controller-manager", "nobody"],
            &[("/spec/replicas", Some(json!(3)))],
        ),
    ];
    for (managers, looks) in cases {
        let r = ResourceIgnoreDifferences {
            managed_fields_managers: managers.iter().map(|m| m.to_string()).collect(),
            ..rule("*", "*")
        };
        let rules = IgnoreRules::compile([&r]).expect("compiles");
        let matched = rules
            .matching(&key("apps", "Deployment", "n", "web"))
            .expect("matches");
        assert!(matched.needs_managed_fields());
        let (mut l, mut predicted) = (live.clone(), deployment());
        matched.mask(&mut l, &mut predicted).expect("masks");
        for (look, expected) in *looks {
            assert_eq!(
                l.pointer(look).cloned(),
                *expected,
                "{managers:?} live {look}"
            );
            assert_eq!(
                predicted.pointer(look).cloned(),
                *expected,
                "{managers:?} predicted {look}"
            );
        }
    }
}

#[test]
fn masked_sides_compare_equal_when_only_ignored_fields_differ() {
    let r = ResourceIgnoreDifferences {
        json_pointers: vec!["/spec/replicas".into()],
        ..rule("apps", "Deployment")
    };
    let rules = IgnoreRules::compile([&r]).expect("compiles");
    let matched = rules
        .matching(&key("apps", "Deployment", "n", "web"))
        .expect("matches");
    let mut live = deployment();
    live["spec"]["replicas"] = json!(7);
    let mut predicted = deployment();
    assert_ne!(
        crate::diff::fingerprint(&live),
        crate::diff::fingerprint(&predicted)
    );
    matched.mask(&mut live, &mut predicted).expect("masks");
    assert_eq!(
        crate::diff::fingerprint(&live),
        crate::diff::fingerprint(&predicted)
    );
    // Another field still counts.
    let (mut live, mut predicted) = (deployment(), deployment());
    live["spec"]["replicas"] = json!(7);
    live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:2");
    matched.mask(&mut live, &mut predicted).expect("masks");
    assert_ne!(
        crate::diff::fingerprint(&live),
        crate::diff::fingerprint(&predicted)
    );
}

#[test]
fn respect_keeps_live_values_of_ignored_fields() {
    let r = ResourceIgnoreDifferences {
        json_pointers: vec![
            "/spec/replicas".into(),
            "/metadata/annotations/owner".into(),
        ],
        jq_path_expressions: vec![
            ".spec.template.spec.initContainers[] | select(.name == \"injected\")".into(),
        ],
        ..rule("apps", "Deployment")
    };
    let rules = IgnoreRules::compile([&r]).expect("compiles");
    let matched = rules
        .matching(&key("apps", "Deployment", "n", "web"))
        .expect("matches");
    let mut live = deployment();
    live["spec"]["replicas"] = json!(7);
    live["metadata"]["resourceVersion"] = json!("42");
    live["metadata"]["annotations"] = json!({"owner": "team-b"});
    live["status"] = json!({"replicas": 7});
    let mut desired = deployment();
    desired["spec"]["template"]["spec"]["initContainers"] =
        json!([{"name": "own", "image": "o:2"}]);
    desired["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:2");
    matched.respect(&mut desired, &live).expect("respects");
    assert_eq!(desired["spec"]["replicas"], json!(7));
    assert_eq!(
        desired["metadata"]["annotations"],
        json!({"owner": "team-b"})
    );
    assert_eq!(
        desired["spec"]["template"]["spec"]["initContainers"],
        json!([{"name": "injected", "image": "i"}, {"name": "own", "image": "o:2"}])
    );
    // What is not ignored keeps the desired value; what the server writes
    // is never copied.
    assert_eq!(
        desired["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("web:2")
    );
    assert!(desired.pointer("/metadata/resourceVersion").is_none());
    assert!(desired.get("status").is_none());

    // An ignored field the live object lacks is left out of the apply.
    let mut live = deployment();
    live["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("replicas");
    let mut desired = deployment();
    matched.respect(&mut desired, &live).expect("respects");
    assert!(desired.pointer("/spec/replicas").is_none());
}

#[test]
fn respect_with_managers_keeps_what_they_own() {
    let r = ResourceIgnoreDifferences {
        managed_fields_managers: vec!["hpa".into()],
        ..rule("apps", "Deployment")
    };
    let rules = IgnoreRules::compile([&r]).expect("compiles");
    let matched = rules
        .matching(&key("apps", "Deployment", "n", "web"))
        .expect("matches");
    let mut live = deployment();
    live["spec"]["replicas"] = json!(9);
    live["metadata"]["managedFields"] = managed_fields();
    let mut desired = deployment();
    matched.respect(&mut desired, &live).expect("respects");
    assert_eq!(desired["spec"]["replicas"], json!(9));
    assert!(desired.pointer("/metadata/managedFields").is_none());
}

#[test]
fn server_rules_take_group_and_kind_from_the_key() {
    let text = "jsonPointers:\n- /spec/replicas\njqPathExpressions:\n- '.webhooks[]?.clientConfig.caBundle'\nmanagedFieldsManagers:\n- kube-controller-manager\n";
    let cases: &[(&str, &str, &str)] = &[
        ("apps_Deployment", "apps", "Deployment"),
        (
            "admissionregistration.k8s.io_MutatingWebhookConfiguration",
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
        ),
        ("Service", "", "Service"),
        ("all", "*", "*"),
        ("apps/Deployment", "apps", "Deployment"),
    ];
    for (group_kind, group, kind) in cases {
        let r = server_rule(group_kind, text).expect("parses");
        assert_eq!(
            (r.group.as_str(), r.kind.as_str()),
            (*group, *kind),
            "{group_kind}"
        );
        assert_eq!(r.json_pointers, ["/spec/replicas"]);
        assert_eq!(
            r.jq_path_expressions,
            [".webhooks[]?.clientConfig.caBundle"]
        );
        assert_eq!(r.managed_fields_managers, ["kube-controller-manager"]);
        assert!(r.name.is_empty() && r.namespace.is_empty());
        IgnoreRules::compile([&r]).expect("a parsed rule compiles");
    }
    // Argo CD's own spelling of the pointers' field is read too.
    let r = server_rule("all", "jSONPointers: [/spec/replicas]").expect("parses");
    assert_eq!(r.json_pointers, ["/spec/replicas"]);
    assert_eq!(
        server_rule("all", "")
            .expect("empty is no rule")
            .json_pointers
            .len(),
        0
    );
    for (group_kind, text, named) in [
        ("a_b_C", "jsonPointers: []", "<group>_<kind>"),
        ("", "jsonPointers: []", "<group>_<kind>"),
        ("apps_", "jsonPointers: []", "<group>_<kind>"),
        ("all", "jsonPointers: /spec/replicas", "invalid type"),
        ("all", "jsonPointer: [/spec/replicas]", "unknown field"),
    ] {
        let error = server_rule(group_kind, text)
            .expect_err("refused")
            .to_string();
        assert!(error.contains(named), "{error}");
        assert!(
            error.starts_with("resource.customizations.ignoreDifferences."),
            "{error}"
        );
    }
}

#[test]
fn rules_of_an_application_and_the_server_merge() {
    let app = ResourceIgnoreDifferences {
        json_pointers: vec!["/spec/replicas".into()],
        ..rule("apps", "Deployment")
    };
    let server = server_rule("all", "jqPathExpressions: ['.metadata.labels.app']").expect("parses");
    let rules = IgnoreRules::compile([&app, &server]).expect("compiles");
    let doc = deployment();
    let matched = rules
        .matching(&key("apps", "Deployment", "n", "web"))
        .expect("matches");
    let paths = matched.paths(&doc, None).expect("paths");
    assert_eq!(
        paths,
        vec![
            vec![
                Step::Key("metadata".into()),
                Step::Key("labels".into()),
                Step::Key("app".into())
            ],
            vec![Step::Key("spec".into()), Step::Key("replicas".into())],
        ]
    );
    // Only the server's rule matches a ConfigMap.
    let cm = rules
        .matching(&key("", "ConfigMap", "n", "c"))
        .expect("matches");
    let doc = json!({"metadata": {"labels": {"app": "a"}}, "spec": {"replicas": 1}});
    assert_eq!(cm.paths(&doc, None).expect("paths").len(), 1);
    // The hash follows the rules as written.
    let again = IgnoreRules::compile([&app, &server]).expect("compiles");
    assert_eq!(again.hash(), rules.hash());
    assert_ne!(
        IgnoreRules::compile([&app]).expect("compiles").hash(),
        rules.hash()
    );
}

#[test]
fn compiled_rules_can_be_shared_between_tasks() {
    fn shared<T: Send + Sync>() {}
    shared::<IgnoreRules>();
}

#[test]
fn managed_list_items_are_found_by_key_or_value_in_any_order() {
    let doc = json!({"spec": {
        "ports": [{"port": 80, "protocol": "TCP", "name": "http"}, {"port": 443, "protocol": "TCP", "name": "https"}],
        "finalizers": ["a", "b", {"x": 1, "y": 2}]}});
    let managed = json!([{"manager": "m", "fieldsV1": {"f:spec": {
        "f:ports": {"k:{\"protocol\":\"TCP\",\"port\":443}": {".": {}, "f:name": {}}},
        "f:finalizers": {"v:\"b\"": {}, "v:{\"y\":2,\"x\":1}": {}, "v:\"absent\"": {}}}}}]);
    let r = ResourceIgnoreDifferences {
        managed_fields_managers: vec!["m".into()],
        ..rule("*", "*")
    };
    let rules = IgnoreRules::compile([&r]).expect("compiles");
    let matched = rules
        .matching(&key("", "Service", "n", "s"))
        .expect("matches");
    let paths = matched.paths(&doc, Some(&managed)).expect("paths");
    let at = |p: &[&str]| -> Path {
        p.iter()
            .map(|s| {
                s.parse()
                    .map_or_else(|_| Step::Key(s.to_string()), Step::Index)
            })
            .collect()
    };
    assert_eq!(
        paths,
        vec![
            at(&["spec", "finalizers", "1"]),
            at(&["spec", "finalizers", "2"]),
            at(&["spec", "ports", "1"]),
        ]
    );
}
