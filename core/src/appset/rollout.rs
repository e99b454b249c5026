//! Progressive sync (`strategy.type: RollingSync`): which step each
//! generated application belongs to, and whether an application may sync
//! now. A step opens only when every application of the steps before it is
//! Synced and Healthy at the revision this one would sync to; within a
//! step, at most `maxUpdate` applications change at once.
//!
//! Unlike Argo CD's, this works with automated sync: the controller asks
//! [`gate`] before an automated sync, instead of turning automated sync
//! off. Pure; the engine keeps the state between passes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::model::{LabelSelector, RollingSync};
use super::selector::{Selector, SelectorError};

/// The steps of a rollout, resolved against the applications.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Steps {
    /// Each step's applications, sorted by name.
    pub steps: Vec<Vec<String>>,
    /// Each step's `maxUpdate` as a count of its applications.
    pub max_update: Vec<usize>,
    /// Applications no step selects: a rollout never syncs them (as in
    /// Argo CD, they wait for a person).
    pub unselected: Vec<String>,
}

/// The error of resolving the steps.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RolloutError {
    /// A step's `matchExpressions` are invalid.
    #[error("strategy.rollingSync.steps[{step}]: {source}")]
    Selector {
        /// 0-based step.
        step: usize,
        /// What is wrong.
        #[source]
        source: SelectorError,
    },
    /// A `maxUpdate` that is neither a positive number nor a percentage.
    #[error(
        "strategy.rollingSync.steps[{step}].maxUpdate {value}: expected a number of at least 1 or a percentage like \"25%\""
    )]
    MaxUpdate {
        /// 0-based step.
        step: usize,
        /// The value written.
        value: String,
    },
}

/// `maxUpdate` as a count of a step of `size` applications: all when
/// unset; a percentage rounds down but is at least 1.
fn max_update(step: usize, value: Option<&Value>, size: usize) -> Result<usize, RolloutError> {
    let bad = || RolloutError::MaxUpdate {
        step,
        value: value.map(Value::to_string).unwrap_or_default(),
    };
    match value {
        None | Some(Value::Null) => Ok(size.max(1)),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) if n >= 1 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => Err(bad()),
        },
        Some(Value::String(s)) => {
            let percent: u64 = s
                .strip_suffix('%')
                .and_then(|p| p.trim().parse().ok())
                .filter(|p| (1..=100).contains(p))
                .ok_or_else(bad)?;
            let count = usize::try_from(percent).unwrap_or(100) * size / 100;
            Ok(count.max(1))
        }
        Some(_) => Err(bad()),
    }
}

/// Puts each application (name and labels) in the first step whose
/// `matchExpressions` select it.
///
/// # Errors
/// An invalid selector or `maxUpdate`.
pub fn steps(
    strategy: &RollingSync,
    apps: &[(String, BTreeMap<String, String>)],
) -> Result<Steps, RolloutError> {
    let selectors = strategy
        .steps
        .iter()
        .enumerate()
        .map(|(step, s)| {
            Selector::new(&LabelSelector {
                match_labels: BTreeMap::new(),
                match_expressions: s.match_expressions.clone(),
            })
            .map_err(|source| RolloutError::Selector { step, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Steps {
        steps: vec![Vec::new(); selectors.len()],
        ..Steps::default()
    };
    for (name, labels) in apps {
        match selectors.iter().position(|s| s.matches(labels)) {
            Some(step) => out.steps[step].push(name.clone()),
            None => out.unselected.push(name.clone()),
        }
    }
    for names in &mut out.steps {
        names.sort();
    }
    out.unselected.sort();
    out.max_update = strategy
        .steps
        .iter()
        .zip(&out.steps)
        .enumerate()
        .map(|(i, (step, names))| max_update(i, step.max_update.as_ref(), names.len()))
        .collect::<Result<_, _>>()?;
    Ok(out)
}

/// What the rollout knows of one application now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppState {
    /// Synced and Healthy.
    pub done: bool,
    /// The repository it deploys from.
    pub repo: String,
    /// The revision of that repository it is synced to (or compared with).
    pub revision: String,
}

/// Whether an application may sync now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// It may.
    Open,
    /// It waits; why, for its status.
    Waiting(String),
}

/// Whether `app`, which would sync to `revision` of `repo`, may sync now,
/// given every application's state and the applications of its step
/// already syncing (`in_flight`, which it may already be part of). An
/// earlier application on the same repository must be at that revision;
/// one on another repository only Synced and Healthy.
pub fn gate(
    steps: &Steps,
    states: &BTreeMap<String, AppState>,
    in_flight: &BTreeSet<String>,
    app: &str,
    (repo, revision): (&str, &str),
) -> Gate {
    let Some(step) = steps.steps.iter().position(|s| s.iter().any(|n| n == app)) else {
        return Gate::Waiting(
            "no step of the ApplicationSet's RollingSync selects it; sync it by hand".into(),
        );
    };
    for (earlier, names) in steps.steps[..step].iter().enumerate() {
        let behind = names.iter().find(|n| {
            states
                .get(*n)
                .is_none_or(|s| !s.done || (s.repo == repo && s.revision != revision))
        });
        if let Some(name) = behind {
            return Gate::Waiting(format!(
                "waiting for step {} ({name} is not yet Synced and Healthy at this revision)",
                earlier + 1
            ));
        }
    }
    if in_flight.contains(app) {
        return Gate::Open;
    }
    let busy = steps.steps[step]
        .iter()
        .filter(|n| in_flight.contains(*n))
        .count();
    if busy >= steps.max_update[step] {
        return Gate::Waiting(format!(
            "step {} has {busy} applications syncing, its maxUpdate",
            step + 1
        ));
    }
    Gate::Open
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn strategy(yaml: &str) -> RollingSync {
        serde_yaml::from_str(yaml).expect("valid rollingSync")
    }

    fn apps(list: &[(&str, &str)]) -> Vec<(String, BTreeMap<String, String>)> {
        list.iter()
            .map(|(name, env)| {
                (
                    name.to_string(),
                    BTreeMap::from([("env".to_string(), env.to_string())]),
                )
            })
            .collect()
    }

    const THREE_ENVS: &str = "steps:\n- matchExpressions: [{key: env, operator: In, values: [dev]}]\n- matchExpressions: [{key: env, operator: In, values: [staging]}]\n  maxUpdate: 1\n- matchExpressions: [{key: env, operator: In, values: [prod]}]\n  maxUpdate: 50%\n";

    #[test]
    fn applications_go_to_the_first_step_that_selects_them() {
        let s = steps(
            &strategy(THREE_ENVS),
            &apps(&[
                ("p1", "prod"),
                ("d", "dev"),
                ("s", "staging"),
                ("p2", "prod"),
                ("x", "qa"),
            ]),
        )
        .expect("steps");
        assert_eq!(s.steps, [vec!["d"], vec!["s"], vec!["p1", "p2"]]);
        assert_eq!(s.max_update, [1, 1, 1]);
        assert_eq!(s.unselected, ["x"]);
    }

    #[test]
    fn max_update_is_a_count_or_a_share_of_the_step() {
        // (value, step size, count or error)
        let cases = [
            (None, 4, Some(4)),
            (Some(json!(2)), 4, Some(2)),
            (Some(json!("50%")), 4, Some(2)),
            (Some(json!("10%")), 4, Some(1)),
            (Some(json!("100%")), 3, Some(3)),
            (Some(json!(0)), 4, None),
            (Some(json!("0%")), 4, None),
            (Some(json!("half")), 4, None),
            (Some(json!(-1)), 4, None),
        ];
        for (value, size, want) in cases {
            assert_eq!(max_update(0, value.as_ref(), size).ok(), want, "{value:?}");
        }
    }

    fn state(done: bool, revision: &str) -> AppState {
        AppState {
            done,
            repo: "git".into(),
            revision: revision.into(),
        }
    }

    #[test]
    fn a_step_opens_when_every_earlier_application_is_done_at_the_same_revision() {
        let s = steps(
            &strategy(THREE_ENVS),
            &apps(&[
                ("d", "dev"),
                ("s", "staging"),
                ("p1", "prod"),
                ("p2", "prod"),
            ]),
        )
        .expect("steps");
        let none = BTreeSet::new();
        // A commit r2 lands: dev may go, staging waits for dev.
        let mut states = BTreeMap::from([
            ("d".to_string(), state(true, "r1")),
            ("s".to_string(), state(true, "r1")),
            ("p1".to_string(), state(true, "r1")),
            ("p2".to_string(), state(true, "r1")),
        ]);
        assert_eq!(gate(&s, &states, &none, "d", ("git", "r2")), Gate::Open);
        assert!(
            matches!(gate(&s, &states, &none, "s", ("git", "r2")), Gate::Waiting(m) if m.contains("step 1"))
        );
        // Dev synced to r2 but not yet healthy: still waiting.
        states.insert("d".into(), state(false, "r2"));
        assert!(matches!(
            gate(&s, &states, &none, "s", ("git", "r2")),
            Gate::Waiting(_)
        ));
        states.insert("d".into(), state(true, "r2"));
        assert_eq!(gate(&s, &states, &none, "s", ("git", "r2")), Gate::Open);
        assert!(
            matches!(gate(&s, &states, &none, "p1", ("git", "r2")), Gate::Waiting(m) if m.contains("step 2"))
        );
        states.insert("s".into(), state(true, "r2"));
        // Prod: maxUpdate 50% of 2 is one at a time.
        assert_eq!(gate(&s, &states, &none, "p1", ("git", "r2")), Gate::Open);
        let flying = BTreeSet::from(["p1".to_string()]);
        assert_eq!(gate(&s, &states, &flying, "p1", ("git", "r2")), Gate::Open);
        assert!(
            matches!(gate(&s, &states, &flying, "p2", ("git", "r2")), Gate::Waiting(m) if m.contains("maxUpdate"))
        );
        // An earlier application on another repository counts when done,
        // at whatever revision.
        states.insert(
            "d".into(),
            AppState {
                done: true,
                repo: "other".into(),
                revision: "x".into(),
            },
        );
        assert_eq!(gate(&s, &states, &none, "s", ("git", "r2")), Gate::Open);
    }

    #[test]
    fn an_application_no_step_selects_never_syncs_by_itself() {
        let s = steps(&strategy(THREE_ENVS), &apps(&[("x", "qa")])).expect("steps");
        assert!(matches!(
            gate(&s, &BTreeMap::new(), &BTreeSet::new(), "x", ("git", "r")),
            Gate::Waiting(m) if m.contains("no step")
        ));
    }

    #[test]
    fn a_bad_selector_is_an_error_naming_the_step() {
        let bad =
            strategy("steps:\n- matchExpressions: [{key: env, operator: Near, values: [a]}]\n");
        let err = steps(&bad, &apps(&[("a", "a")])).expect_err("bad operator");
        assert!(err.to_string().contains("steps[0]"), "{err}");
    }
}
