//! Table tests of [`generate`](super::generate) over an in-memory git tree
//! and cluster catalog: each row is the generators as YAML, goTemplate or
//! not, and the parameter sets (or the error) expected.

use std::cell::Cell;
use std::collections::BTreeMap;

use globset::{GlobBuilder, GlobSetBuilder};
use serde_json::{Value, json};

use super::*;

/// A git tree in memory. Counts its reads, and fails them when told to.
struct FakeGit {
    directories: Vec<String>,
    files: Vec<(String, String)>,
    fail: Option<String>,
    reads: Cell<usize>,
}

impl FakeGit {
    fn tree() -> FakeGit {
        let directories = [
            "apps",
            "apps/api",
            "apps/web",
            "apps/web/base",
            "apps/Web_Admin",
            "infra",
            "infra/monitoring",
            "clusters",
            "clusters/dev",
            "clusters/prod",
            "clusters/old",
            "envs",
            "broken",
        ];
        let files = [
            (
                "clusters/dev/config.json",
                r#"{"cluster": {"name": "dev", "address": "https://dev"}, "replicas": 2}"#,
            ),
            (
                "clusters/prod/config.yaml",
                "cluster:\n  name: prod\n  address: https://prod\nreplicas: 1000000\nzones: [a, b]\n",
            ),
            (
                "clusters/old/config.json",
                r#"{"cluster": {"name": "old"}}"#,
            ),
            (
                "envs/list.yaml",
                "- env: staging\n- env: qa\n  debug: true\n",
            ),
            ("broken/config.yaml", "cluster: [unclosed\n"),
        ];
        FakeGit {
            directories: directories.iter().map(|d| d.to_string()).collect(),
            files: files
                .iter()
                .map(|(p, c)| (p.to_string(), c.to_string()))
                .collect(),
            fail: None,
            reads: Cell::new(0),
        }
    }

    fn failing(message: &str) -> FakeGit {
        FakeGit {
            fail: Some(message.into()),
            ..FakeGit::tree()
        }
    }
}

impl GitView for FakeGit {
    fn directories(&self, _repo_url: &str, _revision: &str) -> Result<Vec<String>, String> {
        self.reads.set(self.reads.get() + 1);
        match &self.fail {
            Some(message) => Err(message.clone()),
            None => Ok(self.directories.clone()),
        }
    }

    fn files(
        &self,
        _repo_url: &str,
        _revision: &str,
        patterns: &[String],
    ) -> Result<Vec<GitFile>, String> {
        self.reads.set(self.reads.get() + 1);
        if let Some(message) = &self.fail {
            return Err(message.clone());
        }
        // `**` crosses folders here, as in Argo CD's repo server.
        let mut builder = GlobSetBuilder::new();
        for pattern in patterns {
            let glob = GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| e.to_string())?;
            builder.add(glob);
        }
        let set = builder.build().map_err(|e| e.to_string())?;
        Ok(self
            .files
            .iter()
            .filter(|(path, _)| set.is_match(path))
            .map(|(path, content)| GitFile {
                path: path.clone(),
                content: content.as_bytes().to_vec(),
            })
            .collect())
    }
}

/// A cluster catalog in memory, or one that cannot be read.
struct FakeClusters(Result<Vec<ClusterEntry>, String>);

impl FakeClusters {
    fn catalog() -> FakeClusters {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        FakeClusters(Ok(vec![
            ClusterEntry {
                name: "in-cluster".into(),
                server: "https://kubernetes.default.svc".into(),
                secretless: true,
                ..ClusterEntry::default()
            },
            ClusterEntry {
                name: "Staging_EU".into(),
                server: "https://staging".into(),
                labels: map(&[("env", "staging")]),
                annotations: map(&[("owner", "team-a")]),
                project: "platform".into(),
                secretless: false,
            },
            ClusterEntry {
                name: "prod".into(),
                server: "https://prod".into(),
                labels: map(&[("env", "prod")]),
                ..ClusterEntry::default()
            },
        ]))
    }
}

impl ClusterCatalog for FakeClusters {
    fn clusters(&self) -> Result<Vec<ClusterEntry>, String> {
        self.0.clone()
    }
}

fn spec(go_template: bool, generators: &str) -> ApplicationSetSpec {
    ApplicationSetSpec {
        generators: serde_yaml::from_str(generators).expect("generators YAML"),
        go_template,
        ..ApplicationSetSpec::default()
    }
}

fn run(go_template: bool, generators: &str) -> Result<Vec<Generated>, GenerateError> {
    generate(
        &spec(go_template, generators),
        &FakeGit::tree(),
        &FakeClusters::catalog(),
    )
}

fn params_of(generated: Vec<Generated>) -> Value {
    Value::Array(
        generated
            .into_iter()
            .map(|g| Value::Object(g.params))
            .collect(),
    )
}

/// `(what, goTemplate, generators, expected parameter sets)`.
type Row = (&'static str, bool, &'static str, Value);

fn check(rows: Vec<Row>) {
    for (what, go_template, generators, want) in rows {
        let got = run(go_template, generators)
            .unwrap_or_else(|e| panic!("{what}: unexpected error: {e}"));
        assert_eq!(params_of(got), want, "{what}");
    }
}

#[test]
fn list_generator_gives_elements_as_params() {
    check(vec![
        (
            "fasttemplate: text values, values.<key>",
            false,
            r"
- list:
    elements:
      - {cluster: dev, url: 'https://dev', values: {ns: team-a}}
      - {cluster: prod, url: 'https://prod'}
",
            json!([
                {"cluster": "dev", "url": "https://dev", "values.ns": "team-a"},
                {"cluster": "prod", "url": "https://prod"}
            ]),
        ),
        (
            "goTemplate: elements as written, nested and typed",
            true,
            r"
- list:
    elements:
      - {cluster: dev, replicas: 3, labels: {tier: web}}
",
            json!([{"cluster": "dev", "replicas": 3, "labels": {"tier": "web"}}]),
        ),
        (
            "elementsYaml after elements, items as written",
            false,
            r"
- list:
    elements: [{cluster: a}]
    elementsYaml: |
      - cluster: b
        replicas: 2
      - cluster: c
",
            json!([{"cluster": "a"}, {"cluster": "b", "replicas": 2}, {"cluster": "c"}]),
        ),
        (
            "no elements, no sets",
            false,
            "- list: {elements: []}",
            json!([]),
        ),
    ]);
}

#[test]
fn clusters_generator_gives_each_selected_cluster() {
    check(vec![
        (
            "fasttemplate: every cluster, metadata flat, local cluster plain",
            false,
            "- clusters: {}",
            json!([
                {"name": "in-cluster", "nameNormalized": "in-cluster",
                 "server": "https://kubernetes.default.svc", "project": ""},
                {"name": "Staging_EU", "nameNormalized": "staging-eu", "server": "https://staging",
                 "project": "platform", "metadata.annotations.owner": "team-a",
                 "metadata.labels.env": "staging"},
                {"name": "prod", "nameNormalized": "prod", "server": "https://prod",
                 "project": "", "metadata.labels.env": "prod"}
            ]),
        ),
        (
            "goTemplate: metadata nested, only non-empty maps",
            true,
            "- clusters: {selector: {matchLabels: {env: staging}}}",
            json!([
                {"name": "Staging_EU", "nameNormalized": "staging-eu", "server": "https://staging",
                 "project": "platform",
                 "metadata": {"annotations": {"owner": "team-a"}, "labels": {"env": "staging"}}}
            ]),
        ),
        (
            "goTemplate: a cluster without annotations has metadata.labels only",
            true,
            "- clusters: {selector: {matchLabels: {env: prod}}}",
            json!([
                {"name": "prod", "nameNormalized": "prod", "server": "https://prod",
                 "project": "", "metadata": {"labels": {"env": "prod"}}}
            ]),
        ),
        (
            "a non-empty selector never selects the local cluster without a Secret",
            false,
            r"
- clusters:
    selector:
      matchExpressions: [{key: env, operator: NotIn, values: [staging]}]
",
            json!([
                {"name": "prod", "nameNormalized": "prod", "server": "https://prod",
                 "project": "", "metadata.labels.env": "prod"}
            ]),
        ),
        (
            "values rendered with the cluster's params",
            false,
            r"
- clusters:
    selector: {matchLabels: {env: prod}}
    values: {ns: '{{name}}-apps', env: '{{metadata.labels.env}}'}
",
            json!([
                {"name": "prod", "nameNormalized": "prod", "server": "https://prod",
                 "project": "", "metadata.labels.env": "prod",
                 "values.ns": "prod-apps", "values.env": "prod"}
            ]),
        ),
    ]);
}

#[test]
fn git_directories_generator_gives_path_params() {
    check(vec![
        (
            "fasttemplate: * stays in one folder, walk order",
            false,
            r"
- git:
    repoURL: https://git.example/apps.git
    directories: [{path: 'apps/*'}]
",
            // Byte order, as a walk of the tree gives: `W` before `a`.
            json!([
                {"path": "apps/Web_Admin", "path.basename": "Web_Admin",
                 "path.basenameNormalized": "web-admin", "path[0]": "apps", "path[1]": "Web_Admin"},
                {"path": "apps/api", "path.basename": "api", "path.basenameNormalized": "api",
                 "path[0]": "apps", "path[1]": "api"},
                {"path": "apps/web", "path.basename": "web", "path.basenameNormalized": "web",
                 "path[0]": "apps", "path[1]": "web"}
            ]),
        ),
        (
            "exclude wins over include",
            false,
            r"
- git:
    repoURL: https://git.example/apps.git
    directories:
      - {path: 'apps/*'}
      - {path: 'apps/api', exclude: true}
      - {path: 'apps/W*', exclude: true}
",
            json!([
                {"path": "apps/web", "path.basename": "web", "path.basenameNormalized": "web",
                 "path[0]": "apps", "path[1]": "web"}
            ]),
        ),
        (
            "goTemplate: a path object with segments",
            true,
            r"
- git:
    repoURL: https://git.example/apps.git
    directories: [{path: 'infra/*'}]
",
            json!([
                {"path": {"path": "infra/monitoring", "basename": "monitoring",
                          "basenameNormalized": "monitoring", "segments": ["infra", "monitoring"]}}
            ]),
        ),
        (
            "fasttemplate: pathParamPrefix and values",
            false,
            r"
- git:
    repoURL: https://git.example/apps.git
    directories: [{path: 'infra/*'}]
    pathParamPrefix: app
    values: {name: '{{app.path.basename}}-infra'}
",
            json!([
                {"app.path": "infra/monitoring", "app.path.basename": "monitoring",
                 "app.path.basenameNormalized": "monitoring", "app.path[0]": "infra",
                 "app.path[1]": "monitoring", "values.name": "monitoring-infra"}
            ]),
        ),
        (
            "goTemplate: pathParamPrefix nests the path object under <prefix>.path",
            true,
            r"
- git:
    repoURL: https://git.example/apps.git
    directories: [{path: 'infra/*'}]
    pathParamPrefix: app
",
            json!([
                {"app": {"path": {"path": "infra/monitoring", "basename": "monitoring",
                                  "basenameNormalized": "monitoring",
                                  "segments": ["infra", "monitoring"]}}}
            ]),
        ),
    ]);
}

#[test]
fn git_files_generator_gives_each_object_with_its_folder() {
    check(vec![
        (
            "fasttemplate: flattened keys as Go prints them, folder params, path order",
            false,
            r"
- git:
    repoURL: https://git.example/apps.git
    files: [{path: 'clusters/*/config.*'}]
    values: {where: '{{cluster.name}}@{{path.basename}}'}
",
            json!([
                {"cluster.name": "dev", "cluster.address": "https://dev", "replicas": "2",
                 "path": "clusters/dev", "path.basename": "dev", "path.filename": "config.json",
                 "path.basenameNormalized": "dev", "path.filenameNormalized": "config.json",
                 "path[0]": "clusters", "path[1]": "dev", "values.where": "dev@dev"},
                {"cluster.name": "old", "path": "clusters/old", "path.basename": "old",
                 "path.filename": "config.json", "path.basenameNormalized": "old",
                 "path.filenameNormalized": "config.json", "path[0]": "clusters",
                 "path[1]": "old", "values.where": "old@old"},
                {"cluster.name": "prod", "cluster.address": "https://prod", "replicas": "1e+06",
                 "zones.0": "a", "zones.1": "b",
                 "path": "clusters/prod", "path.basename": "prod", "path.filename": "config.yaml",
                 "path.basenameNormalized": "prod", "path.filenameNormalized": "config.yaml",
                 "path[0]": "clusters", "path[1]": "prod", "values.where": "prod@prod"}
            ]),
        ),
        (
            "a file holding a list gives one set per item; exclude removes files",
            false,
            r"
- git:
    repoURL: https://git.example/apps.git
    files:
      - {path: 'envs/*.yaml'}
      - {path: 'clusters/**/config.json'}
      - {path: 'clusters/old/*', exclude: true}
      - {path: 'clusters/dev/*', exclude: true}
",
            json!([
                {"env": "staging", "path": "envs", "path.basename": "envs",
                 "path.filename": "list.yaml", "path.basenameNormalized": "envs",
                 "path.filenameNormalized": "list.yaml", "path[0]": "envs"},
                {"env": "qa", "debug": "true", "path": "envs", "path.basename": "envs",
                 "path.filename": "list.yaml", "path.basenameNormalized": "envs",
                 "path.filenameNormalized": "list.yaml", "path[0]": "envs"}
            ]),
        ),
        (
            "goTemplate: objects as written, path object of the file",
            true,
            r"
- git:
    repoURL: https://git.example/apps.git
    files: [{path: 'clusters/dev/config.json'}]
    pathParamPrefix: file
",
            json!([
                {"cluster": {"name": "dev", "address": "https://dev"}, "replicas": 2,
                 "file": {"path": {"path": "clusters/dev", "basename": "dev",
                                   "filename": "config.json", "basenameNormalized": "dev",
                                   "filenameNormalized": "config.json",
                                   "segments": ["clusters", "dev"]}}}
            ]),
        ),
    ]);
}

#[test]
fn matrix_combines_every_pair_and_renders_the_second_with_the_first() {
    check(vec![
        (
            "git directories x list (elementsYaml rendered with each folder)",
            false,
            r"
- matrix:
    generators:
      - git:
          repoURL: https://git.example/apps.git
          directories: [{path: 'apps/*'}, {path: 'apps/W*', exclude: true}]
      - list:
          elementsYaml: |
            - env: dev
              app: '{{path.basename}}'
            - env: prod
              app: '{{path.basename}}'
",
            json!([
                {"path": "apps/api", "path.basename": "api", "path.basenameNormalized": "api",
                 "path[0]": "apps", "path[1]": "api", "env": "dev", "app": "api"},
                {"path": "apps/api", "path.basename": "api", "path.basenameNormalized": "api",
                 "path[0]": "apps", "path[1]": "api", "env": "prod", "app": "api"},
                {"path": "apps/web", "path.basename": "web", "path.basenameNormalized": "web",
                 "path[0]": "apps", "path[1]": "web", "env": "dev", "app": "web"},
                {"path": "apps/web", "path.basename": "web", "path.basenameNormalized": "web",
                 "path[0]": "apps", "path[1]": "web", "env": "prod", "app": "web"}
            ]),
        ),
        (
            "list elements are not rendered (raw JSON in Argo CD)",
            false,
            r"
- matrix:
    generators:
      - list: {elements: [{a: x}]}
      - list: {elements: [{b: '{{a}}'}]}
",
            json!([{"a": "x", "b": "{{a}}"}]),
        ),
        (
            "fasttemplate: a key both give with one value is fine",
            false,
            r"
- matrix:
    generators:
      - list: {elements: [{env: dev, a: '1'}]}
      - list: {elements: [{env: dev, b: '2'}, {env: dev, b: '3'}]}
",
            json!([{"env": "dev", "a": "1", "b": "2"}, {"env": "dev", "a": "1", "b": "3"}]),
        ),
        (
            "goTemplate: deep merge, the first generator wins",
            true,
            r"
- matrix:
    generators:
      - list: {elements: [{env: dev, labels: {team: a}}]}
      - list: {elements: [{env: prod, labels: {tier: web}, n: 1}]}
",
            json!([{"env": "dev", "labels": {"tier": "web", "team": "a"}, "n": 1}]),
        ),
        (
            "nested matrix inside a matrix",
            false,
            r"
- matrix:
    generators:
      - list: {elements: [{a: '1'}]}
      - matrix:
          generators:
            - list: {elements: [{b: '2'}, {b: '3'}]}
            - list: {elements: [{c: '4'}]}
",
            json!([{"a": "1", "b": "2", "c": "4"}, {"a": "1", "b": "3", "c": "4"}]),
        ),
        (
            "an empty first generator makes no sets",
            false,
            r"
- matrix:
    generators:
      - list: {elements: []}
      - list: {elements: [{b: '2'}]}
",
            json!([]),
        ),
    ]);
}

#[test]
fn merge_overrides_base_sets_that_share_merge_keys() {
    check(vec![
        (
            "clusters merged with list by server; unmatched list items dropped",
            false,
            r"
- merge:
    mergeKeys: [server]
    generators:
      - clusters: {values: {replicas: '1'}}
      - list:
          elements:
            - {server: 'https://prod', values: {replicas: '5'}}
            - {server: 'https://nowhere', values: {replicas: '9'}}
",
            json!([
                {"name": "in-cluster", "nameNormalized": "in-cluster",
                 "server": "https://kubernetes.default.svc", "project": "", "values.replicas": "1"},
                {"name": "Staging_EU", "nameNormalized": "staging-eu", "server": "https://staging",
                 "project": "platform", "metadata.annotations.owner": "team-a",
                 "metadata.labels.env": "staging", "values.replicas": "1"},
                {"name": "prod", "nameNormalized": "prod", "server": "https://prod",
                 "project": "", "metadata.labels.env": "prod", "values.replicas": "5"}
            ]),
        ),
        (
            "several merge keys, later generators applied in order",
            false,
            r"
- merge:
    mergeKeys: [app, env]
    generators:
      - list: {elements: [{app: a, env: dev, v: '0'}, {app: a, env: prod, v: '0'}]}
      - list: {elements: [{app: a, env: prod, v: '1'}]}
      - list: {elements: [{app: a, env: prod, w: '2'}, {app: a, env: dev, v: '3'}]}
",
            json!([
                {"app": "a", "env": "dev", "v": "3"},
                {"app": "a", "env": "prod", "v": "1", "w": "2"}
            ]),
        ),
        (
            "goTemplate: deep merge, the later generator wins",
            true,
            r"
- merge:
    mergeKeys: [app]
    generators:
      - list: {elements: [{app: a, labels: {team: x, tier: web}}]}
      - list: {elements: [{app: a, labels: {team: y}}]}
",
            json!([{"app": "a", "labels": {"team": "y", "tier": "web"}}]),
        ),
    ]);
}

#[test]
fn selector_filters_a_generators_sets_by_flattened_params() {
    check(vec![
        (
            "fasttemplate: a dotted key",
            false,
            r"
- git:
    repoURL: https://git.example/apps.git
    directories: [{path: 'apps/*'}]
  selector: {matchLabels: {path.basename: web}}
",
            json!([
                {"path": "apps/web", "path.basename": "web", "path.basenameNormalized": "web",
                 "path[0]": "apps", "path[1]": "web"}
            ]),
        ),
        (
            "goTemplate: nested params match by their dotted key",
            true,
            r"
- git:
    repoURL: https://git.example/apps.git
    directories: [{path: 'apps/*'}]
  selector:
    matchExpressions: [{key: path.segments.1, operator: In, values: [api]}]
",
            json!([
                {"path": {"path": "apps/api", "basename": "api", "basenameNormalized": "api",
                          "segments": ["apps", "api"]}}
            ]),
        ),
        (
            "a selector on a matrix child filters before combining",
            false,
            r"
- matrix:
    generators:
      - list: {elements: [{env: dev}, {env: prod}]}
        selector: {matchLabels: {env: prod}}
      - list: {elements: [{app: a}]}
",
            json!([{"env": "prod", "app": "a"}]),
        ),
    ]);
}

#[test]
fn generators_are_concatenated_in_order_with_their_templates() {
    let mut spec = spec(
        false,
        r"
- list:
    elements: [{n: '1'}]
    template:
      metadata: {name: 'special-{{n}}', labels: {special: 'yes'}}
      spec: {project: ''}
- list:
    elements: [{n: '2'}]
",
    );
    spec.template = json!({
        "metadata": {"name": "app-{{n}}", "labels": {"team": "a"}},
        "spec": {"project": "default", "destination": {"namespace": "x"}}
    });
    let got = generate(&spec, &FakeGit::tree(), &FakeClusters::catalog()).expect("generates");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].params.get("n"), Some(&json!("1")));
    assert_eq!(
        got[0].template,
        Some(json!({
            "metadata": {"name": "special-{{n}}", "labels": {"special": "yes", "team": "a"}},
            "spec": {"project": "default", "destination": {"namespace": "x"}}
        }))
    );
    assert_eq!(got[1].params.get("n"), Some(&json!("2")));
    assert_eq!(got[1].template, None);
}

/// What an error must be: its variant, and a part of its message.
type ErrorRow = (
    &'static str,
    bool,
    &'static str,
    fn(&GenerateError) -> bool,
    &'static str,
);

#[test]
fn any_failure_fails_the_whole_generation() {
    let rows: Vec<ErrorRow> = vec![
        (
            "fasttemplate list value that is not text",
            false,
            "- list: {elements: [{cluster: a, replicas: 3}]}",
            |e| matches!(e, GenerateError::Invalid { .. }),
            "generators[0].list.elements[0]: replicas must be text",
        ),
        (
            "fasttemplate values that are not a map",
            false,
            "- list: {elements: [{cluster: a, values: x}]}",
            |e| matches!(e, GenerateError::Invalid { .. }),
            "values must be a map of text",
        ),
        (
            "an element that is not an object",
            true,
            "- list: {elements: [a]}",
            |e| matches!(e, GenerateError::Invalid { .. }),
            "must be an object",
        ),
        (
            "an unparsable file names the file",
            false,
            r"
- git:
    repoURL: https://git.example/apps.git
    files: [{path: 'clusters/*/config.*'}, {path: 'broken/config.yaml'}]
",
            |e| matches!(e, GenerateError::File { file, .. } if file == "broken/config.yaml"),
            "generators[0].git: file broken/config.yaml: not JSON or YAML",
        ),
        (
            "a malformed folder glob",
            false,
            r"
- git:
    repoURL: https://git.example/apps.git
    directories: [{path: 'apps/[a-'}]
",
            |e| matches!(e, GenerateError::Glob { .. }),
            "generators[0].git.directories: path \"apps/[a-\"",
        ),
        (
            "a git generator with neither directories nor files",
            false,
            "- git: {repoURL: 'https://git.example/apps.git'}",
            |e| matches!(e, GenerateError::Invalid { .. }),
            "needs directories or files",
        ),
        (
            "fasttemplate matrix: one key, two values",
            false,
            r"
- matrix:
    generators:
      - list: {elements: [{env: dev}]}
      - list: {elements: [{env: prod}]}
",
            |e| matches!(e, GenerateError::Conflict { key, .. } if key == "env"),
            "generators[0].matrix: both generators set parameter \"env\"",
        ),
        (
            "a matrix of three",
            false,
            r"
- matrix:
    generators: [{list: {elements: []}}, {list: {elements: []}}, {list: {elements: []}}]
",
            |e| matches!(e, GenerateError::Invalid { .. }),
            "exactly two generators, this one has 3",
        ),
        (
            "a merge without mergeKeys",
            false,
            r"
- merge:
    generators: [{list: {elements: []}}, {list: {elements: []}}]
",
            |e| matches!(e, GenerateError::Invalid { .. }),
            "at least one mergeKey",
        ),
        (
            "merge keys that do not identify one set",
            false,
            r"
- merge:
    mergeKeys: [app]
    generators:
      - list: {elements: [{app: a}, {app: b}]}
      - list: {elements: [{app: a, x: '1'}, {app: a, x: '2'}]}
",
            |e| matches!(e, GenerateError::DuplicateMergeKey { generator: 1, .. }),
            "generators[1] makes two parameter sets",
        ),
        (
            "base sets missing a merge key collide",
            false,
            r"
- merge:
    mergeKeys: [app]
    generators:
      - list: {elements: [{x: '1'}, {x: '2'}]}
      - list: {elements: [{app: a}]}
",
            |e| matches!(e, GenerateError::DuplicateMergeKey { generator: 0, .. }),
            "{\"app\":null}",
        ),
        (
            "an invalid selector operator",
            false,
            r"
- list: {elements: [{a: b}]}
  selector: {matchExpressions: [{key: a, operator: Gt, values: ['1']}]}
",
            |e| matches!(e, GenerateError::Selector { .. }),
            "unknown operator \"Gt\"",
        ),
        (
            "scmProvider is unsupported",
            false,
            "- scmProvider: {github: {organization: x}}",
            |e| matches!(e, GenerateError::Unsupported { kind, .. } if kind == "scmProvider"),
            "generators[0]: the scmProvider generator is not supported",
        ),
        (
            "pullRequest is unsupported, even in a matrix whose first child is empty",
            false,
            r"
- matrix:
    generators:
      - list: {elements: []}
      - pullRequest: {github: {owner: x, repo: y}}
",
            |e| matches!(e, GenerateError::Unsupported { kind, .. } if kind == "pullRequest"),
            "generators[0].matrix.generators[1]: the pullRequest generator",
        ),
        (
            "plugin is unsupported inside a merge",
            false,
            r"
- merge:
    mergeKeys: [a]
    generators:
      - list: {elements: []}
      - plugin: {configMapRef: {name: x}}
",
            |e| matches!(e, GenerateError::Unsupported { kind, .. } if kind == "plugin"),
            "generators[0].merge.generators[1]",
        ),
        (
            "clusterDecisionResource is unsupported",
            false,
            "- clusterDecisionResource: {configMapRef: x}",
            |e| matches!(e, GenerateError::Unsupported { .. }),
            "clusterDecisionResource",
        ),
        (
            "a generator with no kind",
            false,
            "- selector: {matchLabels: {a: b}}",
            |e| matches!(e, GenerateError::NoKind { .. }),
            "generators[0]: the generator sets no kind",
        ),
        (
            "a generator with two kinds",
            false,
            "- {list: {elements: []}, clusters: {}}",
            |e| matches!(e, GenerateError::SeveralKinds { kinds, .. } if kinds.len() == 2),
            "list, clusters",
        ),
        (
            "matrix nested three deep",
            false,
            r"
- matrix:
    generators:
      - list: {elements: [{a: '1'}]}
      - matrix:
          generators:
            - list: {elements: [{b: '1'}]}
            - matrix:
                generators: [{list: {elements: []}}, {list: {elements: []}}]
",
            |e| matches!(e, GenerateError::TooDeep { .. }),
            "generators[0].matrix.generators[1].matrix.generators[1].matrix",
        ),
        (
            "an error in a later generator fails the earlier ones' sets too",
            false,
            r"
- list: {elements: [{a: b}]}
- clusters: {selector: {matchExpressions: [{key: env, operator: In}]}}
",
            |e| matches!(e, GenerateError::Selector { .. }),
            "generators[1].clusters.selector",
        ),
    ];
    for (what, go_template, generators, is_expected, message) in rows {
        match run(go_template, generators) {
            Ok(got) => panic!("{what}: expected an error, got {got:?}"),
            Err(e) => {
                assert!(is_expected(&e), "{what}: wrong error {e:?}");
                assert!(
                    e.to_string().contains(message),
                    "{what}: {e} does not say {message:?}"
                );
            }
        }
    }
}

#[test]
fn a_catalog_that_cannot_be_read_is_an_error_not_no_clusters() {
    let broken = FakeClusters(Err("secrets is forbidden".into()));
    let err = generate(&spec(false, "- clusters: {}"), &FakeGit::tree(), &broken)
        .expect_err("the catalog fails");
    assert!(matches!(err, GenerateError::Clusters { .. }), "{err:?}");
    assert!(err.is_spurious());
    assert_eq!(
        err.to_string(),
        "generators[0].clusters: listing clusters: secrets is forbidden"
    );
}

#[test]
fn a_repository_that_cannot_be_read_is_an_error_not_no_folders() {
    let broken = FakeGit::failing("authentication required");
    let generators = r"
- matrix:
    generators:
      - list: {elements: [{env: dev}]}
      - git:
          repoURL: https://git.example/apps.git
          revision: main
          directories: [{path: 'apps/*'}]
";
    let err = generate(&spec(false, generators), &broken, &FakeClusters::catalog())
        .expect_err("git fails");
    assert_eq!(
        err.to_string(),
        "generators[0].matrix.generators[1].git: reading https://git.example/apps.git at \"main\": authentication required"
    );
}

#[test]
fn matrix_reads_git_once_when_the_second_generator_uses_no_parameter() {
    let git = FakeGit::tree();
    let generators = r"
- matrix:
    generators:
      - list: {elements: [{env: dev}, {env: qa}, {env: prod}]}
      - git:
          repoURL: https://git.example/apps.git
          directories: [{path: 'apps/*'}]
";
    let got = generate(&spec(false, generators), &git, &FakeClusters::catalog()).expect("ok");
    assert_eq!(got.len(), 9);
    assert_eq!(git.reads.get(), 1);
}

#[test]
fn directories_generator_over_ten_thousand_folders_is_one_pass() {
    let mut git = FakeGit::tree();
    git.directories = (0..10_000).map(|i| format!("apps/app-{i:05}")).collect();
    git.directories
        .extend((0..10_000).map(|i| format!("apps/app-{i:05}/base")));
    let generators = r"
- git:
    repoURL: https://git.example/apps.git
    directories:
      - {path: 'apps/*'}
      - {path: 'apps/app-0000*', exclude: true}
      - {path: 'apps/*/base', exclude: true}
";
    let started = std::time::Instant::now();
    let got = generate(&spec(false, generators), &git, &FakeClusters::catalog()).expect("ok");
    assert_eq!(got.len(), 10_000 - 10);
    assert_eq!(git.reads.get(), 1);
    // Generous even for a debug build on a busy machine; a glob compiled per
    // folder or a quadratic filter takes far longer.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn go_template_params_nest_and_a_matrix_renders_its_second_generator_with_go() {
    check(vec![
        (
            "goTemplate matrix: the second generator reads the first's nested params",
            true,
            r"
- matrix:
    generators:
      - git:
          repoURL: https://git.example/apps.git
          directories: [{path: 'apps/a*'}]
      - list:
          elementsYaml: |
            - app: '{{ .path.basename | upper }}'
              depth: '{{ len .path.segments }}'
",
            json!([
                {"path": {"path": "apps/api", "basename": "api", "basenameNormalized": "api",
                          "segments": ["apps", "api"]},
                 "app": "API", "depth": "2"}
            ]),
        ),
        (
            "goTemplate clusters values are rendered with the cluster's params",
            true,
            r"
- clusters:
    selector: {matchLabels: {env: prod}}
    values: {url: '{{ .server }}/x', who: '{{ .name | upper }}'}
",
            json!([
                {"name": "prod", "nameNormalized": "prod", "server": "https://prod",
                 "project": "", "metadata": {"labels": {"env": "prod"}},
                 "values": {"url": "https://prod/x", "who": "PROD"}}
            ]),
        ),
    ]);
}

/// `(what, ApplicationSet spec YAML, expected (name, source path, destination namespace))`.
type AppRow = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str, &'static str)>,
);

#[test]
fn an_applicationset_renders_into_the_expected_applications() {
    let rows: Vec<AppRow> = vec![
        (
            "fasttemplate over git directories",
            r"
generators:
- git: {repoURL: r, directories: [{path: 'apps/*'}]}
template:
  metadata: {name: '{{path.basenameNormalized}}'}
  spec: {source: {repoURL: r, path: '{{path}}'}, destination: {namespace: '{{path[1]}}'}}
",
            // Folders in byte order, as the generator sorts them.
            vec![
                ("web-admin", "apps/Web_Admin", "Web_Admin"),
                ("api", "apps/api", "api"),
                ("web", "apps/web", "web"),
            ],
        ),
        (
            "goTemplate with a conditional and sprig",
            r"
goTemplate: true
generators:
- list: {elements: [{env: dev, n: 1}, {env: prod, n: 3}]}
template:
  metadata: {name: '{{ .env }}-{{ if gt (int .n) 1 }}ha{{ else }}single{{ end }}'}
  spec: {source: {repoURL: r, path: '{{ printf `envs/%s` .env }}'}, destination: {namespace: '{{ .env | repeat 2 }}'}}
",
            vec![
                ("dev-single", "envs/dev", "devdev"),
                ("prod-ha", "envs/prod", "prodprod"),
            ],
        ),
        (
            "a generator's own template fills in over the set's",
            r"
generators:
- list:
    elements: [{env: qa}]
    template: {metadata: {}, spec: {destination: {namespace: from-generator}}}
template:
  metadata: {name: 'x-{{env}}'}
  spec: {source: {repoURL: r, path: base}, destination: {namespace: from-set}}
",
            vec![("x-qa", "base", "from-generator")],
        ),
        (
            "templatePatch with goTemplate",
            r"
goTemplate: true
generators:
- list: {elements: [{env: dev}, {env: prod}]}
template:
  metadata: {name: '{{ .env }}'}
  spec: {source: {repoURL: r, path: base}, destination: {namespace: default}}
templatePatch: |
  {{- if eq .env `prod` }}
  spec:
    source: {path: prod-only}
  {{- end }}
",
            vec![("dev", "base", "default"), ("prod", "prod-only", "default")],
        ),
    ];
    for (what, yaml, want) in rows {
        let set = ApplicationSet {
            spec: serde_yaml::from_str(yaml).expect("spec YAML"),
            ..ApplicationSet::default()
        };
        let generated = generate(&set.spec, &FakeGit::tree(), &FakeClusters::catalog())
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let owner = render::Owner {
            name: "set",
            namespace: "argocd",
            uid: None,
        };
        let apps = render::applications(&set, &generated, &owner)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let got: Vec<(&str, &str, &str)> = apps
            .iter()
            .map(|a| {
                (
                    a["metadata"]["name"].as_str().unwrap_or_default(),
                    a["spec"]["source"]["path"].as_str().unwrap_or_default(),
                    a["spec"]["destination"]["namespace"]
                        .as_str()
                        .unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(got, want, "{what}");
    }
}
