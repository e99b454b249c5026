//! Criterion micro benchmarks of the engine's hot pure functions: render of a
//! large directory, normalization + diff of many objects, and the sync plan of
//! a large application. No cluster, no git: inputs are generated in memory.
//!
//! Run with `cargo bench --bench micro`; the scale harness is `scripts/bench`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use plumb_engine::diff;
use plumb_engine::model::{DirectorySource, ResourceKey, SourceFile};
use plumb_engine::plan::{self, Desired, PlanOptions, Tracked};
use plumb_engine::render;
use serde_json::{Value, json};

/// About 2 KB of data, distinct per object.
fn payload(i: usize) -> String {
    (0..32)
        .map(|line| format!("line {line:02} of object {i:05}: {}\n", "x".repeat(36)))
        .collect()
}

/// One ConfigMap file as a user would write it.
fn configmap_file(i: usize) -> SourceFile {
    let mut text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:05}\n  labels:\n    app.kubernetes.io/part-of: bench\ndata:\n  rev: \"0\"\n  payload: |\n"
    );
    for line in payload(i).lines() {
        text.push_str("    ");
        text.push_str(line);
        text.push('\n');
    }
    SourceFile {
        path: format!("cm-{i:05}.yaml"),
        data: text.into_bytes(),
    }
}

fn render_large_directory(c: &mut Criterion) {
    let files: Vec<SourceFile> = (0..1000).map(configmap_file).collect();
    let options = DirectorySource::default();
    let rendered = render::render_directory(&files, &options).expect("the files render");
    assert_eq!(rendered.len(), 1000);
    c.bench_function("render_directory 1000 ConfigMap files", |b| {
        b.iter(|| render::render_directory(black_box(&files), &options).expect("the files render"))
    });
}

/// A ConfigMap as the API server returns it: server metadata, managed
/// fields and the tracking annotation.
fn live_configmap(i: usize) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": format!("cm-{i:05}"),
            "namespace": "bench",
            "uid": format!("0000-{i:05}"),
            "resourceVersion": format!("{}", 1000 + i),
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app.kubernetes.io/part-of": "bench"},
            "annotations": {"argocd.argoproj.io/tracking-id": format!("app-{i}:/ConfigMap:bench/cm-{i:05}")},
            "managedFields": [{
                "manager": "plumb", "operation": "Apply", "apiVersion": "v1",
                "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {"f:payload": {}, "f:rev": {}}}
            }]
        },
        "data": {"rev": "0", "payload": payload(i)}
    })
}

fn compare_pairs(c: &mut Criterion) {
    // Every tenth prediction differs, so diffs are rendered for 100 of them.
    let pairs: Vec<(Value, Value)> = (0..1000)
        .map(|i| {
            let live = live_configmap(i);
            let mut predicted = live.clone();
            predicted["metadata"]["resourceVersion"] = json!("0");
            if i % 10 == 0 {
                predicted["data"]["rev"] = json!("1");
            }
            (live, predicted)
        })
        .collect();
    c.bench_function("diff::compare 1000 pairs (10% modified)", |b| {
        b.iter(|| {
            pairs
                .iter()
                .filter(|(live, predicted)| diff::compare(Some(live), predicted).modified)
                .count()
        })
    });
}

const KINDS: &[(&str, &str)] = &[
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
    ("v1", "Secret"),
];

fn plan_large(c: &mut Criterion) {
    let desired: Vec<Desired> = (0..10_000)
        .map(|i| {
            let (api_version, kind) = KINDS[i % KINDS.len()];
            let object = json!({
                "apiVersion": api_version,
                "kind": kind,
                "metadata": {"name": format!("o-{i:05}"), "namespace": format!("ns-{}", i % 10)}
            });
            Desired {
                key: ResourceKey::of(&object).expect("a key"),
                object,
                modified: i % 3 == 0,
            }
        })
        .collect();
    // Objects tracked but no longer desired: the prune set.
    let extras: Vec<Tracked> = (0..100)
        .map(|i| Tracked {
            key: ResourceKey {
                group: String::new(),
                kind: "ConfigMap".into(),
                namespace: "ns-0".into(),
                name: format!("gone-{i}"),
            },
            api_version: "v1".into(),
            sync_options: None,
            uid: format!("uid-{i}"),
            wave: 0,
        })
        .collect();
    let options = PlanOptions {
        prune: true,
        create_namespace: Some("ns-0".into()),
        ..Default::default()
    };
    c.bench_function("plan::plan 10000 desired + 100 to prune", |b| {
        b.iter(|| plan::plan(black_box(&desired), black_box(&extras), &options).expect("a plan"))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = render_large_directory, compare_pairs, plan_large
}
criterion_main!(benches);
