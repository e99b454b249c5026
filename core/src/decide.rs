//! The automated-sync policy as pure functions: given what a comparison found,
//! the application's policy and what was remembered from earlier reconciles,
//! decide whether to sync now, wait, or do nothing; and after an automated
//! sync, how long to back off. No clock is read here: `now` is an argument.
//!
//! Not here: a user's sync or rollback (it always runs), and the comparison
//! itself.

use std::time::{Duration, Instant};

use crate::model::{Automated, RetryStrategy};

/// Self-heals closer together than this count as one fight with whoever
/// keeps changing the object; after it the backoff starts over.
const HEAL_RESET: Duration = Duration::from_secs(120);
/// The longest wait between two self-heals of a fight.
const HEAL_MAX_WAIT: Duration = Duration::from_secs(63);
/// The first wait after a failed automated sync; it doubles with each failure
/// at the same revision.
const FAILURE_FIRST_WAIT: Duration = Duration::from_secs(10);
/// The longest wait after failed automated syncs.
const FAILURE_MAX_WAIT: Duration = Duration::from_secs(320);

/// What a comparison found, and the policy that applies to it.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// `spec.syncPolicy.automated`, when set.
    pub automated: Option<&'a Automated>,
    /// A rollback pins the application: automated sync is suspended.
    pub pinned: bool,
    /// The revision compared.
    pub revision: &'a str,
    /// Some desired object differs from the cluster or is missing.
    pub modified: bool,
    /// Objects carrying this application's tracking id are no longer desired.
    pub extras: bool,
}

/// An automated sync that failed, and when to try it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The revision it failed at; a new revision is tried at once.
    pub revision: String,
    /// Failures in a row at that revision.
    pub attempts: u32,
    /// Not before.
    pub retry_at: Instant,
}

/// What the policy remembers between reconciles of one application.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// The revision last deployed (synced, or found in sync).
    pub last_synced: Option<String>,
    /// Self-heals so far in the current fight.
    pub heal_attempts: u32,
    /// When the last self-heal started.
    pub last_heal: Option<Instant>,
    /// The last automated sync failed.
    pub failure: Option<Failure>,
}

/// What to do after a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing, until something changes.
    Idle,
    /// Sync now, automatically.
    Sync {
        /// Whether the sync may prune.
        prune: bool,
        /// It undoes drift at a revision already deployed.
        self_heal: bool,
    },
    /// Out of sync, but backing off: compare again after this long.
    RequeueAfter(Duration),
}

/// The wait before self-heal number `attempts + 1` of a fight: none for the
/// first two, then 1 s, 3 s, 7 s, ... up to [`HEAL_MAX_WAIT`].
fn heal_wait(attempts: u32) -> Duration {
    let seconds = (1u64 << attempts.min(6)) - 1;
    Duration::from_secs(seconds).min(HEAL_MAX_WAIT)
}

/// Decides what the automated-sync policy does after a comparison, and what
/// it remembers. A new revision that needs changes is synced; drift at a
/// deployed revision is healed only with `selfHeal`, backing off while it
/// keeps coming back; a failed automated sync is retried at the same
/// revision only after its backoff.
pub fn decide(input: &Input<'_>, memory: &Memory, now: Instant) -> (Decision, Memory) {
    let mut memory = memory.clone();
    let Some(automated) = input.automated.filter(|_| !input.pinned) else {
        return (Decision::Idle, memory);
    };
    let needs = input.modified || (automated.prune && input.extras);
    let new_revision = memory.last_synced.as_deref() != Some(input.revision);
    if !needs {
        if new_revision {
            // Nothing to change at a new revision: it is deployed as it is.
            memory.last_synced = Some(input.revision.to_string());
        }
        return (Decision::Idle, memory);
    }
    if !new_revision && !automated.self_heal {
        return (Decision::Idle, memory);
    }
    if let Some(failure) = &memory.failure
        && failure.revision == input.revision
        && now < failure.retry_at
    {
        return (Decision::RequeueAfter(failure.retry_at - now), memory);
    }
    let self_heal = !new_revision;
    if self_heal {
        let fighting = memory
            .last_heal
            .filter(|last| now.saturating_duration_since(*last) < HEAL_RESET);
        if let Some(last) = fighting {
            let wait = heal_wait(memory.heal_attempts);
            let since = now.saturating_duration_since(last);
            if since < wait {
                return (Decision::RequeueAfter(wait - since), memory);
            }
            memory.heal_attempts += 1;
        } else {
            memory.heal_attempts = 0;
        }
        memory.last_heal = Some(now);
    }
    let decision = Decision::Sync {
        prune: automated.prune,
        self_heal,
    };
    (decision, memory)
}

/// Records how an automated sync at `revision` ended; after a failure,
/// returns how long to wait before the next try (10 s, doubling, at most
/// 320 s while it keeps failing at that revision).
pub fn after_automated_sync(
    memory: &Memory,
    revision: &str,
    succeeded: bool,
    now: Instant,
) -> (Memory, Option<Duration>) {
    let mut memory = memory.clone();
    if succeeded {
        memory.failure = None;
        memory.last_synced = Some(revision.to_string());
        return (memory, None);
    }
    let attempts = memory
        .failure
        .as_ref()
        .filter(|f| f.revision == revision)
        .map_or(0, |f| f.attempts)
        + 1;
    let wait = FAILURE_FIRST_WAIT
        .saturating_mul(1 << (attempts - 1).min(6))
        .min(FAILURE_MAX_WAIT);
    memory.failure = Some(Failure {
        revision: revision.to_string(),
        attempts,
        retry_at: now + wait,
    });
    (memory, Some(wait))
}

/// A Go duration (`300ms`, `5s`, `1m30s`, `2h`), as Argo CD's retry
/// backoff writes them.
///
/// # Errors
/// The text, when it is not one.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration (like 5s, 1m30s)");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(number * seconds).map_err(|_| bad())?;
    }
    Ok(total)
}

/// The wait before retry number `retried + 1` of a failed sync operation,
/// or `None` when `strategy` allows no more (its `limit` retries were
/// made). Argo CD's defaults: 5 s, doubling, at most 3 minutes.
///
/// # Errors
/// A backoff duration that does not parse.
pub fn retry_wait(strategy: &RetryStrategy, retried: u32) -> Result<Option<Duration>, String> {
    if strategy.limit >= 0 && i64::from(retried) >= strategy.limit {
        return Ok(None);
    }
    let backoff = strategy.backoff.clone().unwrap_or_default();
    let first = backoff
        .duration
        .as_deref()
        .map_or(Ok(Duration::from_secs(5)), parse_go_duration)?;
    let max = backoff
        .max_duration
        .as_deref()
        .map_or(Ok(Duration::from_secs(180)), parse_go_duration)?;
    let factor = u32::try_from(backoff.factor.unwrap_or(2).max(1)).unwrap_or(u32::MAX);
    let mut wait = first;
    for _ in 0..retried.min(32) {
        wait = wait.saturating_mul(factor);
        if wait >= max {
            break;
        }
    }
    Ok(Some(wait.min(max)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REV: &str = "abc";

    fn policy(prune: bool, self_heal: bool) -> Automated {
        Automated {
            prune,
            self_heal,
            allow_empty: false,
        }
    }

    fn input(automated: Option<&Automated>, modified: bool, extras: bool) -> Input<'_> {
        Input {
            automated,
            pinned: false,
            revision: REV,
            modified,
            extras,
        }
    }

    fn deployed() -> Memory {
        Memory {
            last_synced: Some(REV.into()),
            ..Memory::default()
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn each_policy_decides_as_argo_cd_does() {
        let none = None;
        let (heal, no_heal, prune) = (
            policy(false, true),
            policy(false, false),
            policy(true, false),
        );
        let now = Instant::now();
        // (case, input, memory, decision)
        let cases: Vec<(&str, Input<'_>, Memory, Decision)> = vec![
            (
                "no automated policy: report only",
                input(none, true, true),
                Memory::default(),
                Decision::Idle,
            ),
            (
                "in sync at the deployed revision",
                input(Some(&heal), false, false),
                deployed(),
                Decision::Idle,
            ),
            (
                "a new revision that changes objects is synced",
                input(Some(&no_heal), true, false),
                Memory::default(),
                Decision::Sync {
                    prune: false,
                    self_heal: false,
                },
            ),
            (
                "drift at the deployed revision without selfHeal stays",
                input(Some(&no_heal), true, false),
                deployed(),
                Decision::Idle,
            ),
            (
                "drift at the deployed revision with selfHeal is healed",
                input(Some(&heal), true, false),
                deployed(),
                Decision::Sync {
                    prune: false,
                    self_heal: true,
                },
            ),
            (
                "objects to prune without prune do not need a sync",
                input(Some(&no_heal), false, true),
                Memory::default(),
                Decision::Idle,
            ),
            (
                "objects to prune with prune at a new revision are pruned",
                input(Some(&prune), false, true),
                Memory::default(),
                Decision::Sync {
                    prune: true,
                    self_heal: false,
                },
            ),
        ];
        for (case, input, memory, want) in cases {
            assert_eq!(decide(&input, &memory, now).0, want, "{case}");
        }
    }

    #[test]
    fn a_rollback_pin_suspends_automated_sync() {
        let heal = policy(true, true);
        let pinned = Input {
            pinned: true,
            ..input(Some(&heal), true, true)
        };
        assert_eq!(
            decide(&pinned, &Memory::default(), Instant::now()).0,
            Decision::Idle
        );
    }

    #[test]
    fn a_new_revision_with_nothing_to_change_counts_as_deployed() {
        let no_heal = policy(false, false);
        let (decision, memory) = decide(
            &input(Some(&no_heal), false, false),
            &Memory::default(),
            Instant::now(),
        );
        assert_eq!(decision, Decision::Idle);
        assert_eq!(memory.last_synced.as_deref(), Some(REV));
        // So later drift at it is not taken for a new revision.
        let (decision, _) = decide(&input(Some(&no_heal), true, false), &memory, Instant::now());
        assert_eq!(decision, Decision::Idle);
    }

    #[test]
    fn self_heal_backs_off_while_drift_keeps_coming_back() {
        let heal = policy(false, true);
        let drift = input(Some(&heal), true, false);
        let start = Instant::now();
        let mut memory = deployed();
        // Drift comes back at once after every heal: heals happen after
        // waits of 0, 0, 1, 3, 7, 15, 31, 63 and 63 s.
        let mut now = start;
        let mut waits = Vec::new();
        for _ in 0..9 {
            let mut waited = Duration::ZERO;
            loop {
                let (decision, next) = decide(&drift, &memory, now);
                memory = next;
                match decision {
                    Decision::Sync {
                        self_heal: true, ..
                    } => break,
                    Decision::RequeueAfter(d) => {
                        waited += d;
                        now += d;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            waits.push(waited.as_secs());
        }
        assert_eq!(waits, [0, 0, 1, 3, 7, 15, 31, 63, 63]);
        // A quiet spell longer than the reset starts over.
        now += HEAL_RESET;
        let (decision, memory) = decide(&drift, &memory, now);
        assert!(matches!(decision, Decision::Sync { .. }));
        assert_eq!(memory.heal_attempts, 0);
    }

    #[test]
    fn a_failed_automated_sync_waits_its_backoff_at_that_revision_only() {
        let auto = policy(false, false);
        let start = Instant::now();
        let mut memory = Memory::default();
        let mut waits = Vec::new();
        for _ in 0..8 {
            let (next, wait) = after_automated_sync(&memory, REV, false, start);
            memory = next;
            waits.push(wait.map(|w| w.as_secs()));
        }
        assert_eq!(
            waits,
            [10, 20, 40, 80, 160, 320, 320, 320].map(Some).to_vec()
        );
        let last = secs(320);
        let out_of_sync = input(Some(&auto), true, false);
        assert_eq!(
            decide(&out_of_sync, &memory, start + secs(20)).0,
            Decision::RequeueAfter(last - secs(20))
        );
        assert!(matches!(
            decide(&out_of_sync, &memory, start + last).0,
            Decision::Sync { .. }
        ));
        // Another revision is tried at once.
        let newer = Input {
            revision: "def",
            ..out_of_sync
        };
        assert!(matches!(
            decide(&newer, &memory, start).0,
            Decision::Sync { .. }
        ));
        // Success forgets the failures.
        let (memory, wait) = after_automated_sync(&memory, REV, true, start);
        assert_eq!((memory.failure, wait), (None, None));
        assert_eq!(memory.last_synced.as_deref(), Some(REV));
    }

    #[test]
    fn go_durations_parse_as_go_parses_them() {
        let cases: [(&str, Option<u64>); 10] = [
            ("5s", Some(5_000)),
            ("1m30s", Some(90_000)),
            ("300ms", Some(300)),
            ("2h", Some(7_200_000)),
            ("1.5s", Some(1_500)),
            ("0", Some(0)),
            ("5", None),
            ("s", None),
            ("5x", None),
            ("", None),
        ];
        for (text, millis) in cases {
            let got = parse_go_duration(text).ok().map(|d| d.as_millis());
            assert_eq!(got, millis.map(u128::from), "{text}");
        }
    }

    #[test]
    fn retries_wait_longer_each_time_up_to_the_limit() {
        use crate::model::Backoff;
        let strategy = |limit: i64, backoff: Option<Backoff>| RetryStrategy { limit, backoff };
        let secs = |s: u64| Some(Duration::from_secs(s));
        // (strategy, retried so far, wait)
        let cases = [
            (strategy(3, None), 0, secs(5)),
            (strategy(3, None), 1, secs(10)),
            (strategy(3, None), 2, secs(20)),
            (strategy(3, None), 3, None),
            (strategy(0, None), 0, None),
            (strategy(-1, None), 40, secs(180)),
            (
                strategy(
                    5,
                    Some(Backoff {
                        duration: Some("1s".into()),
                        factor: Some(3),
                        max_duration: Some("10s".into()),
                    }),
                ),
                2,
                secs(9),
            ),
            (
                strategy(
                    5,
                    Some(Backoff {
                        duration: Some("1s".into()),
                        factor: Some(3),
                        max_duration: Some("10s".into()),
                    }),
                ),
                3,
                secs(10),
            ),
        ];
        for (s, retried, wait) in cases {
            assert_eq!(retry_wait(&s, retried), Ok(wait), "{s:?} after {retried}");
        }
        let broken = strategy(
            1,
            Some(Backoff {
                duration: Some("soon".into()),
                ..Backoff::default()
            }),
        );
        assert!(retry_wait(&broken, 0).expect_err("bad").contains("soon"));
    }
}
