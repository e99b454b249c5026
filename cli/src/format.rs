//! The tables and texts `plumb app` prints, laid out like `argocd app`'s:
//! pure functions from the API's documents to strings.
//!
//! Server data is printed with control characters replaced, so a manifest
//! cannot send escape sequences to the user's terminal.

use crate::Progress;
use plumb_engine::appset::ApplicationSet;
use plumb_engine::model::{
    Application, ApplicationStatus, Health, InitiatedBy, OperationState, SyncStatusCode,
};
use plumb_engine::service::{AppSetPreview, ManagedResource};

/// Width of the labels of a summary (`argocd app get` pads to 20).
const LABEL_WIDTH: usize = 20;

/// `plumb app list`: NAME, SYNC STATUS, HEALTH STATUS, REVISION, REPO, PATH.
/// An application outside `home` (the application namespace) is named
/// `NAMESPACE/NAME`, as the other commands take it.
pub(crate) fn app_list(apps: &[Application], home: Option<&str>) -> String {
    let mut table = Table::new(&[
        "NAME",
        "SYNC STATUS",
        "HEALTH STATUS",
        "REVISION",
        "REPO",
        "PATH",
    ]);
    for app in apps {
        let status = app.status.clone().unwrap_or_default();
        let source = app
            .spec
            .all_sources()
            .first()
            .map(|s| (*s).clone())
            .unwrap_or_default();
        let name = app.metadata.name.clone().unwrap_or_default();
        let name = match (app.metadata.namespace.as_deref(), home) {
            (Some(namespace), Some(home)) if !namespace.is_empty() && namespace != home => {
                format!("{namespace}/{name}")
            }
            _ => name,
        };
        table.row([
            name,
            format!("{:?}", status.sync.status),
            format!("{:?}", status.health.status),
            short_revision(&status.sync.revision).to_owned(),
            source.repo_url,
            source.path.unwrap_or_default(),
        ]);
    }
    table.render()
}

/// `plumb cluster list`: SERVER, NAME, VERSION, STATUS, MESSAGE (as
/// `argocd cluster list`).
pub(crate) fn cluster_list(clusters: &[serde_json::Value]) -> String {
    let mut table = Table::new(&["SERVER", "NAME", "VERSION", "STATUS", "MESSAGE"]);
    for c in clusters {
        let text = |pointer: &str| {
            c.pointer(pointer)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        table.row([
            text("/server"),
            text("/name"),
            text("/info/serverVersion"),
            text("/connectionState/status"),
            text("/connectionState/message"),
        ]);
    }
    table.render()
}

/// A duration in seconds as a person reads it: `45s`, `12m`, `3.5h`, `2.1d`.
fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.0}s")
    } else if seconds < 3_600.0 {
        format!("{:.0}m", seconds / 60.0)
    } else if seconds < 86_400.0 {
        format!("{:.1}h", seconds / 3_600.0)
    } else {
        format!("{:.1}d", seconds / 86_400.0)
    }
}

/// `plumb dora`'s table: in all, then each project and application.
pub(crate) fn dora(report: &plumb_engine::service::DoraReport) -> String {
    let mut table = Table::new(&[
        "SCOPE",
        "NAME",
        "DEPLOYMENTS",
        "PER DAY",
        "LEAD TIME",
        "CHANGE FAILURE RATE",
        "TIME TO RESTORE",
    ]);
    let mut row = |scope: &str, name: &str, d: &plumb_engine::dora::Dora| {
        table.row([
            scope.to_string(),
            name.to_string(),
            d.deployments.to_string(),
            format!("{:.2}", d.deployments_per_day),
            d.lead_time_seconds.map_or("-".into(), duration),
            d.change_failure_rate
                .map_or("-".into(), |r| format!("{:.0}%", r * 100.0)),
            match (d.time_to_restore_seconds, d.unrestored) {
                (_, n) if n > 0 => format!("{n} not restored"),
                (Some(s), _) => duration(s),
                (None, _) => "-".into(),
            },
        ]);
    };
    row("all", "", &report.total);
    for p in &report.projects {
        row("project", &p.name, &p.metrics);
    }
    for a in &report.applications {
        row("app", &a.name, &a.metrics);
    }
    table.render()
}

/// The condition of an ApplicationSet that says most about it: an error,
/// held deletions, else whether it is up to date.
fn appset_state(set: &ApplicationSet) -> String {
    let conditions = set
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let is = |type_: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
    };
    if is("ErrorOccurred") {
        "Error".into()
    } else if is("DeletionHeld") {
        "DeletionHeld".into()
    } else if is("ResourcesUpToDate") {
        "UpToDate".into()
    } else {
        "Pending".into()
    }
}

/// `plumb appset list`: NAME, STATE, APPLICATIONS, SYNCED, HEALTHY.
pub(crate) fn appset_list(sets: &[ApplicationSet]) -> String {
    let mut table = Table::new(&["NAME", "STATE", "APPLICATIONS", "SYNCED", "HEALTHY"]);
    for set in sets {
        let resources = set
            .status
            .as_ref()
            .map(|s| s.resources.as_slice())
            .unwrap_or_default();
        let synced = resources.iter().filter(|r| r.status == "Synced").count();
        let healthy = resources
            .iter()
            .filter(|r| {
                r.health
                    .as_ref()
                    .is_some_and(|h| h.status == plumb_engine::model::HealthStatusCode::Healthy)
            })
            .count();
        table.row([
            set.metadata.name.clone().unwrap_or_default(),
            appset_state(set),
            resources.len().to_string(),
            synced.to_string(),
            healthy.to_string(),
        ]);
    }
    table.render()
}

/// `plumb appset get`: its state, conditions and applications.
pub(crate) fn appset_details(set: &ApplicationSet) -> String {
    let status = set.status.clone().unwrap_or_default();
    let mut summary = String::new();
    for (label, value) in [
        ("Name:", set.metadata.name.clone().unwrap_or_default()),
        ("State:", appset_state(set)),
        ("Applications:", status.resources.len().to_string()),
    ] {
        summary.push_str(&format!("{label:<LABEL_WIDTH$}{}\n", clean_cell(&value)));
    }
    let mut sections = vec![summary];
    if !status.conditions.is_empty() {
        let mut table = Table::new(&["CONDITION", "STATUS", "MESSAGE"]);
        for c in &status.conditions {
            table.row([c.type_.clone(), c.status.clone(), c.message.clone()]);
        }
        sections.push(table.render());
    }
    if !status.resources.is_empty() {
        let mut table = Table::new(&["APPLICATION", "SYNC STATUS", "HEALTH STATUS"]);
        for r in &status.resources {
            table.row([
                r.name.clone(),
                r.status.clone(),
                r.health
                    .as_ref()
                    .map(|h| format!("{:?}", h.status))
                    .unwrap_or_default(),
            ]);
        }
        sections.push(table.render());
    }
    sections.join("\n")
}

/// `plumb appset generate --server`: each application and what would
/// happen to it.
pub(crate) fn appset_preview(preview: &AppSetPreview) -> String {
    let mut table = Table::new(&["APPLICATION", "ACTION"]);
    let mut rows: Vec<(String, &str)> = Vec::new();
    rows.extend(preview.create.iter().map(|n| (n.clone(), "create")));
    rows.extend(preview.update.iter().map(|n| (n.clone(), "update")));
    rows.extend(preview.delete.iter().map(|n| (n.clone(), "delete")));
    rows.extend(
        preview
            .kept
            .iter()
            .map(|n| (n.clone(), "keep (not deleted)")),
    );
    rows.sort();
    for (name, action) in rows {
        table.row([name, action.to_string()]);
    }
    let mut text = table.render();
    if let Some(held) = &preview.held {
        text.push_str(&format!("\n{}\n", clean_text(held)));
    }
    text
}

/// `plumb app get`: a summary, the conditions and the resources.
pub(crate) fn app_details(app: &Application) -> String {
    let status = app.status.clone().unwrap_or_default();
    let mut sections = vec![summary(app, &status)];
    sections.extend(conditions(&status));
    if !status.resources.is_empty() {
        let mut table = Table::new(&["GROUP", "KIND", "NAMESPACE", "NAME", "STATUS", "HEALTH"]);
        for r in &status.resources {
            let sync = if r.requires_pruning {
                format!("{:?} (requires pruning)", r.status)
            } else {
                format!("{:?}", r.status)
            };
            let health = r
                .health
                .as_ref()
                .map(|h| format!("{:?}", h.status))
                .unwrap_or_default();
            table.row([
                r.group.clone(),
                r.kind.clone(),
                r.namespace.clone(),
                r.name.clone(),
                sync,
                health,
            ]);
        }
        sections.push(table.render());
    }
    sections.join("\n")
}

/// `plumb app sync` and `rollback`: the summary, then the operation and what
/// it did to each resource.
pub(crate) fn operation_result(app: &Application) -> String {
    let status = app.status.clone().unwrap_or_default();
    let mut sections = vec![summary(app, &status)];
    sections.extend(conditions(&status));
    if let Some(operation) = &status.operation_state {
        sections.push(operation_summary(operation));
        let results = operation
            .sync_result
            .as_ref()
            .map(|r| r.resources.as_slice())
            .unwrap_or_default();
        if !results.is_empty() {
            let mut table =
                Table::new(&["GROUP", "KIND", "NAMESPACE", "NAME", "STATUS", "MESSAGE"]);
            for r in results {
                table.row([
                    r.group.clone(),
                    r.kind.clone(),
                    r.namespace.clone(),
                    r.name.clone(),
                    r.status.clone(),
                    r.message.clone(),
                ]);
            }
            sections.push(table.render());
        }
    }
    sections.join("\n")
}

/// One line of a followed operation's progress: a resource as it is done.
pub(crate) fn progress_line(p: &Progress<'_>) -> String {
    let r = match p {
        Progress::Resource(r) => r,
        Progress::Message(message) => return format!("{:<12} {}\n", "", clean_text(message)),
    };
    let namespace = if r.namespace.is_empty() {
        String::new()
    } else {
        format!("{}/", r.namespace)
    };
    // A hook shows its phase (Running, Succeeded, Failed) and type.
    let (status, hook) = if r.hook_type.is_empty() {
        (r.status.as_str(), String::new())
    } else {
        (r.hook_phase.as_str(), format!(" ({} hook)", r.hook_type))
    };
    format!(
        "{status:<12} {} {namespace}{}{hook}: {}\n",
        r.kind,
        r.name,
        clean_text(&r.message)
    )
}

/// `plumb app history`: ID, DATE, REVISION, INITIATED-BY, oldest first.
pub(crate) fn history(app: &Application) -> String {
    let mut table = Table::new(&["ID", "DATE", "REVISION", "INITIATED-BY"]);
    for entry in app
        .status
        .as_ref()
        .map(|s| s.history.as_slice())
        .unwrap_or_default()
    {
        table.row([
            entry.id.to_string(),
            entry.deployed_at.clone(),
            short_revision(&entry.revision).to_owned(),
            initiator(&entry.initiated_by),
        ]);
    }
    table.render()
}

/// `plumb app diff`: for each resource, `===== group/Kind namespace/name ======`
/// (Argo CD's header) and its unified diff.
pub(crate) fn diff(resources: &[ManagedResource]) -> String {
    let sections: Vec<String> = resources
        .iter()
        .map(|r| {
            let mut text = format!(
                "===== {}/{} {}/{} ======\n{}",
                r.group,
                r.kind,
                r.namespace,
                r.name,
                clean_text(&r.diff)
            );
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text
        })
        .collect();
    sections.join("\n")
}

/// The `Label:   value` block at the top of `get`, `sync` and `rollback`.
fn summary(app: &Application, status: &ApplicationStatus) -> String {
    let source = app
        .spec
        .all_sources()
        .first()
        .map(|s| (*s).clone())
        .unwrap_or_default();
    let destination = &app.spec.destination;
    let target = source
        .target_revision
        .clone()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "HEAD".into());
    let revision = short_revision(&status.sync.revision);
    let code = status.sync.status;
    let sync = if revision.is_empty() {
        format!("{code:?}")
    } else if code == SyncStatusCode::Synced {
        format!("{code:?} to {target} ({revision})")
    } else {
        format!("{code:?} from {target} ({revision})")
    };
    let project = if app.spec.project.is_empty() {
        "default"
    } else {
        app.spec.project.as_str()
    };
    let server = destination
        .server
        .clone()
        .or_else(|| destination.name.clone())
        .unwrap_or_default();
    let mut lines = vec![
        ("Name:", app.metadata.name.clone().unwrap_or_default()),
        ("Project:", project.to_owned()),
        ("Server:", server),
        (
            "Namespace:",
            destination.namespace.clone().unwrap_or_default(),
        ),
        ("Repo:", source.repo_url.clone()),
        ("Target:", target.clone()),
        ("Path:", source.path.clone().unwrap_or_default()),
        ("Sync Policy:", sync_policy(app, status)),
        ("Sync Status:", sync),
        ("Health Status:", health(&status.health)),
    ];
    if let Some(pin) = &status.rollback {
        lines.push((
            "Rollback:",
            format!(
                "pinned to {} (history {}) since {}; automated sync resumes at the next manual sync",
                short_revision(&pin.revision),
                pin.history_id,
                pin.at
            ),
        ));
    }
    let mut text = String::new();
    for (label, value) in lines {
        text.push_str(format!("{label:<LABEL_WIDTH$}{}", clean_cell(&value)).trim_end());
        text.push('\n');
    }
    text
}

/// `Automated (Prune, SelfHeal)` or `Manual`.
fn sync_policy(app: &Application, status: &ApplicationStatus) -> String {
    let Some(automated) = app.spec.automated() else {
        return "Manual".into();
    };
    let flags: Vec<&str> = [
        (automated.prune, "Prune"),
        (automated.self_heal, "SelfHeal"),
        (automated.allow_empty, "AllowEmpty"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    let mut text = if flags.is_empty() {
        "Automated".to_owned()
    } else {
        format!("Automated ({})", flags.join(", "))
    };
    if status.rollback.is_some() {
        text.push_str(", suspended by rollback");
    }
    text
}

/// `Healthy`, or `Degraded (why)`.
fn health(health: &Health) -> String {
    if health.message.is_empty() {
        format!("{:?}", health.status)
    } else {
        format!("{:?} ({})", health.status, health.message)
    }
}

/// The conditions table, when there are conditions.
fn conditions(status: &ApplicationStatus) -> Option<String> {
    if status.conditions.is_empty() {
        return None;
    }
    let mut table = Table::new(&["CONDITION", "MESSAGE", "LAST TRANSITION"]);
    for c in &status.conditions {
        table.row([
            c.type_.clone(),
            c.message.clone(),
            c.last_transition_time.clone().unwrap_or_default(),
        ]);
    }
    Some(table.render())
}

/// Argo CD's operation block of `app sync`.
fn operation_summary(operation: &OperationState) -> String {
    let sync = operation.operation.as_ref().and_then(|o| o.sync.as_ref());
    let dry_run = sync.is_some_and(|s| s.dry_run);
    let revision = operation
        .sync_result
        .as_ref()
        .map(|r| r.revision.clone())
        .or_else(|| sync.map(|s| s.revision.clone()))
        .unwrap_or_default();
    let phase = format!(
        "{:?}{}",
        operation.phase,
        if dry_run { " (dry run)" } else { "" }
    );
    let lines = [
        ("Operation:", "Sync".to_owned()),
        ("Sync Revision:", revision),
        ("Phase:", phase),
        ("Start:", operation.started_at.clone()),
        (
            "Finished:",
            operation.finished_at.clone().unwrap_or_default(),
        ),
        ("Message:", operation.message.clone()),
    ];
    let mut text = String::new();
    for (label, value) in lines {
        text.push_str(format!("{label:<LABEL_WIDTH$}{}", clean_cell(&value)).trim_end());
        text.push('\n');
    }
    text
}

/// `automated`, the user name, or `manual`.
fn initiator(by: &InitiatedBy) -> String {
    if by.automated {
        "automated".into()
    } else if by.username.is_empty() {
        "manual".into()
    } else {
        by.username.clone()
    }
}

/// The first 7 characters of a commit SHA; other revisions as they are.
fn short_revision(revision: &str) -> &str {
    let is_sha = revision.len() >= 40 && revision.bytes().all(|b| b.is_ascii_hexdigit());
    if is_sha { &revision[..7] } else { revision }
}

/// A table cell: one line, no control characters.
fn clean_cell(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Multi-line text: lines and tabs kept, other control characters replaced.
fn clean_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// Columns separated by two spaces, as Go's tabwriter lays out `argocd`'s.
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    /// Adds a row (cells are cleaned).
    fn row<const N: usize>(&mut self, cells: [String; N]) {
        self.rows
            .push(cells.iter().map(|c| clean_cell(c)).collect());
    }

    /// The table, one line per row, each ending in a newline.
    fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|i| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| c.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut text = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (cell, width) in row.iter().zip(&widths) {
                line.push_str(&format!("{cell:<width$}  "));
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plumb_api::fake::{guestbook, shop};

    fn rolled_back(mut app: Application) -> Application {
        let status = app.status.get_or_insert_default();
        status.rollback = Some(plumb_engine::model::RollbackPin {
            revision: "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567".into(),
            history_id: 1,
            at: "2024-05-02T12:00:03Z".into(),
        });
        app
    }

    #[test]
    fn list_table() {
        insta::assert_snapshot!(app_list(&[guestbook(), shop()], Some("plumb")));
    }

    #[test]
    fn an_application_outside_the_application_namespace_is_listed_qualified() {
        let mut other = guestbook();
        other.metadata.namespace = Some("team-a".into());
        let mut home = shop();
        home.metadata.namespace = Some("plumb".into());
        let table = app_list(&[other.clone(), home], Some("plumb"));
        assert!(table.contains("\nteam-a/guestbook "), "{table}");
        assert!(table.contains("\nshop "), "{table}");
        // A server that does not name its namespace: names alone.
        assert!(app_list(&[other], None).contains("\nguestbook "));
    }

    #[test]
    fn cluster_list_is_argo_cd_s_table() {
        let clusters = [
            serde_json::json!({"server": "https://kubernetes.default.svc", "name": "in-cluster",
                "connectionState": {"status": "Successful", "message": ""},
                "info": {"serverVersion": "v1.20.2"}}),
            serde_json::json!({"server": "https://127.0.0.1:36453", "name": "second",
                "connectionState": {"status": "Failed", "message": "cannot reach\nthe API server"},
                "info": {"serverVersion": ""}}),
        ];
        let table = cluster_list(&clusters);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("SERVER"), "{table}");
        for column in ["NAME", "VERSION", "STATUS", "MESSAGE"] {
            assert!(lines[0].contains(column), "{table}");
        }
        assert!(
            lines[1].contains("in-cluster") && lines[1].contains("v1.20.2"),
            "{table}"
        );
        assert!(
            lines[2].contains("Failed") && lines[2].contains("cannot reach"),
            "{table}"
        );
        assert_eq!(
            lines.len(),
            3,
            "a message's line break stays in its row: {table}"
        );
    }

    #[test]
    fn empty_list_is_the_header_only() {
        assert_eq!(
            app_list(&[], None),
            "NAME  SYNC STATUS  HEALTH STATUS  REVISION  REPO  PATH\n"
        );
    }

    #[test]
    fn get_synced_application() {
        insta::assert_snapshot!(app_details(&guestbook()));
    }

    #[test]
    fn get_out_of_sync_application_with_conditions() {
        insta::assert_snapshot!(app_details(&shop()));
    }

    #[test]
    fn get_rolled_back_application() {
        insta::assert_snapshot!(app_details(&rolled_back(guestbook())));
    }

    #[test]
    fn sync_result() {
        insta::assert_snapshot!(operation_result(&guestbook()));
    }

    #[test]
    fn history_table() {
        insta::assert_snapshot!(history(&guestbook()));
    }

    #[test]
    fn diff_of_modified_resources() {
        let resources = [
            ManagedResource {
                group: "apps".into(),
                kind: "Deployment".into(),
                namespace: "shop".into(),
                name: "api".into(),
                diff: "--- live\n+++ desired\n@@ -1 +1 @@\n-replicas: 2\n+replicas: 3".into(),
                modified: true,
                ..Default::default()
            },
            ManagedResource {
                kind: "Namespace".into(),
                name: "shop".into(),
                diff: "+kind: Namespace\n".into(),
                modified: true,
                ..Default::default()
            },
        ];
        insta::assert_snapshot!(diff(&resources));
    }

    #[test]
    fn server_text_cannot_reach_the_terminal_as_escapes() {
        let mut app = shop();
        app.metadata.name = Some("evil\u{1b}[2J".into());
        assert!(!app_list(&[app.clone()], None).contains('\u{1b}'));
        assert!(!app_details(&app).contains('\u{1b}'));
        let resource = ManagedResource {
            diff: "+a: \u{1b}[31mred\n".into(),
            ..Default::default()
        };
        assert!(!diff(&[resource]).contains('\u{1b}'));
    }

    #[test]
    fn short_revision_shortens_shas_only() {
        assert_eq!(
            short_revision("53e28ff20cc530b9ada2173fbbd64d48338583ba"),
            "53e28ff"
        );
        assert_eq!(short_revision("main"), "main");
        assert_eq!(short_revision(""), "");
    }
}
