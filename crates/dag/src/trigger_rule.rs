//! Trigger rules: whether a task runs, waits, or takes a final state, given its upstream states.
//!
//! One pure function, [`TriggerRule::evaluate`], decides from the upstream states known at that
//! moment, as Airflow does; the scheduler calls it whenever an upstream finishes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::state::TaskState;

/// The twelve trigger rules of the DAG format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    #[default]
    AllSuccess,
    AllFailed,
    AllDone,
    AllDoneMinOneSuccess,
    AllSkipped,
    OneSuccess,
    OneFailed,
    OneDone,
    NoneFailed,
    NoneFailedMinOneSuccess,
    NoneSkipped,
    Always,
}

impl TriggerRule {
    pub const ALL: [TriggerRule; 12] = [
        TriggerRule::AllSuccess,
        TriggerRule::AllFailed,
        TriggerRule::AllDone,
        TriggerRule::AllDoneMinOneSuccess,
        TriggerRule::AllSkipped,
        TriggerRule::OneSuccess,
        TriggerRule::OneFailed,
        TriggerRule::OneDone,
        TriggerRule::NoneFailed,
        TriggerRule::NoneFailedMinOneSuccess,
        TriggerRule::NoneSkipped,
        TriggerRule::Always,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TriggerRule::AllSuccess => "all_success",
            TriggerRule::AllFailed => "all_failed",
            TriggerRule::AllDone => "all_done",
            TriggerRule::AllDoneMinOneSuccess => "all_done_min_one_success",
            TriggerRule::AllSkipped => "all_skipped",
            TriggerRule::OneSuccess => "one_success",
            TriggerRule::OneFailed => "one_failed",
            TriggerRule::OneDone => "one_done",
            TriggerRule::NoneFailed => "none_failed",
            TriggerRule::NoneFailedMinOneSuccess => "none_failed_min_one_success",
            TriggerRule::NoneSkipped => "none_skipped",
            TriggerRule::Always => "always",
        }
    }

    /// Decide for a task whose upstream instances are summarized by `up`.
    pub fn evaluate(self, up: &UpstreamCounts) -> Readiness {
        use Readiness::{Become, Run, Wait};
        use TriggerRule::*;
        if up.total == 0 {
            return Run;
        }
        let failed = up.failed + up.upstream_failed;
        let all_done = up.done() == up.total;
        match self {
            AllSuccess => {
                if up.success == up.total {
                    Run
                } else if failed > 0 {
                    Become(TaskState::UpstreamFailed)
                } else if up.skipped > 0 {
                    Become(TaskState::Skipped)
                } else {
                    Wait
                }
            }
            AllFailed => {
                if failed == up.total {
                    Run
                } else if up.success + up.skipped > 0 {
                    Become(TaskState::Skipped)
                } else {
                    Wait
                }
            }
            AllDone => {
                if all_done {
                    Run
                } else {
                    Wait
                }
            }
            AllDoneMinOneSuccess => {
                if up.skipped > 0 {
                    Become(TaskState::Skipped)
                } else if !all_done {
                    Wait
                } else if up.success > 0 {
                    Run
                } else {
                    Become(TaskState::UpstreamFailed)
                }
            }
            AllSkipped => {
                if up.skipped == up.total {
                    Run
                } else if up.success + failed > 0 {
                    Become(TaskState::Skipped)
                } else {
                    Wait
                }
            }
            OneSuccess => {
                if up.success > 0 {
                    Run
                } else if !all_done {
                    Wait
                } else if failed > 0 {
                    Become(TaskState::UpstreamFailed)
                } else {
                    Become(TaskState::Skipped)
                }
            }
            OneFailed => {
                if failed > 0 {
                    Run
                } else if all_done {
                    Become(TaskState::Skipped)
                } else {
                    Wait
                }
            }
            OneDone => {
                if up.success + up.failed > 0 {
                    Run
                } else if all_done {
                    Become(TaskState::Skipped)
                } else {
                    Wait
                }
            }
            NoneFailed => {
                if failed > 0 {
                    Become(TaskState::UpstreamFailed)
                } else if all_done {
                    Run
                } else {
                    Wait
                }
            }
            NoneFailedMinOneSuccess => {
                if failed > 0 {
                    Become(TaskState::UpstreamFailed)
                } else if !all_done {
                    Wait
                } else if up.success > 0 {
                    Run
                } else {
                    Become(TaskState::Skipped)
                }
            }
            NoneSkipped => {
                if up.skipped > 0 {
                    Become(TaskState::Skipped)
                } else if all_done {
                    Run
                } else {
                    Wait
                }
            }
            Always => Run,
        }
    }
}

impl fmt::Display for TriggerRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A trigger rule name that is not one of the twelve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown trigger rule '{0}'")]
pub struct UnknownTriggerRule(pub String);

impl FromStr for TriggerRule {
    type Err = UnknownTriggerRule;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TriggerRule::ALL
            .into_iter()
            .find(|rule| rule.as_str() == s)
            .ok_or_else(|| UnknownTriggerRule(s.to_string()))
    }
}

/// The upstream instances of one task, counted by state. `total` counts every upstream
/// instance (all map indexes); removed instances are left out of every count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UpstreamCounts {
    pub total: usize,
    pub success: usize,
    pub failed: usize,
    pub upstream_failed: usize,
    pub skipped: usize,
}

impl UpstreamCounts {
    /// Count a list of upstream states.
    pub fn of(states: impl IntoIterator<Item = TaskState>) -> Self {
        let mut counts = UpstreamCounts::default();
        for state in states {
            counts.add(state);
        }
        counts
    }

    pub fn add(&mut self, state: TaskState) {
        match state {
            TaskState::Removed => return,
            TaskState::Success => self.success += 1,
            TaskState::Failed => self.failed += 1,
            TaskState::UpstreamFailed => self.upstream_failed += 1,
            TaskState::Skipped => self.skipped += 1,
            _ => {}
        }
        self.total += 1;
    }

    pub fn done(&self) -> usize {
        self.success + self.failed + self.upstream_failed + self.skipped
    }
}

/// The verdict of a trigger rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Run the task now.
    Run,
    /// Not decidable yet: some upstream is still going.
    Wait,
    /// The rule can no longer be met: the task takes this state without running.
    Become(TaskState),
}

#[cfg(test)]
mod tests {
    use super::*;
    use Readiness::*;
    use TaskState::{Failed as F, None as N, Running as R, Skipped as S, Success as OK};

    const UF: TaskState = TaskState::UpstreamFailed;
    const SKIP: Readiness = Become(TaskState::Skipped);
    const UPF: Readiness = Become(TaskState::UpstreamFailed);

    fn check(rule: &str, upstream: &[TaskState], expected: Readiness) {
        let rule: TriggerRule = rule.parse().expect("rule name");
        let got = rule.evaluate(&UpstreamCounts::of(upstream.iter().copied()));
        assert_eq!(got, expected, "{rule} with upstream {upstream:?}");
    }

    #[test]
    fn every_rule_against_state_mixes() {
        let table: &[(&str, &[TaskState], Readiness)] = &[
            ("all_success", &[OK, OK], Run),
            ("all_success", &[OK, R], Wait),
            ("all_success", &[OK, F], UPF),
            ("all_success", &[OK, UF, N], UPF),
            ("all_success", &[S, S, N], SKIP),
            ("all_success", &[S, F], UPF),
            ("all_failed", &[F, UF], Run),
            ("all_failed", &[F, R], Wait),
            ("all_failed", &[F, OK], SKIP),
            ("all_failed", &[S, N], SKIP),
            ("all_done", &[OK, F, S, UF], Run),
            ("all_done", &[OK, N], Wait),
            ("all_done_min_one_success", &[OK, F], Run),
            ("all_done_min_one_success", &[OK, N], Wait),
            ("all_done_min_one_success", &[S, N], SKIP),
            ("all_done_min_one_success", &[F, UF], UPF),
            ("all_skipped", &[S, S], Run),
            ("all_skipped", &[S, N], Wait),
            ("all_skipped", &[S, OK], SKIP),
            ("all_skipped", &[F], SKIP),
            ("one_success", &[OK, N], Run),
            ("one_success", &[F, N], Wait),
            ("one_success", &[F, S], UPF),
            ("one_success", &[S, S], SKIP),
            ("one_failed", &[F, N], Run),
            ("one_failed", &[UF, N], Run),
            ("one_failed", &[OK, N], Wait),
            ("one_failed", &[OK, S], SKIP),
            ("one_done", &[OK, N], Run),
            ("one_done", &[F, N], Run),
            ("one_done", &[S, N], Wait),
            ("one_done", &[S, UF], SKIP),
            ("none_failed", &[OK, S], Run),
            ("none_failed", &[OK, N], Wait),
            ("none_failed", &[OK, F], UPF),
            ("none_failed", &[UF, N], UPF),
            ("none_failed", &[S, S], Run),
            ("none_failed_min_one_success", &[OK, S], Run),
            ("none_failed_min_one_success", &[S, S], SKIP),
            ("none_failed_min_one_success", &[OK, N], Wait),
            ("none_failed_min_one_success", &[S, F], UPF),
            ("none_skipped", &[OK, F], Run),
            ("none_skipped", &[OK, N], Wait),
            ("none_skipped", &[S, N], SKIP),
            ("always", &[N, N], Run),
            ("always", &[F], Run),
        ];
        for (rule, upstream, expected) in table {
            check(rule, upstream, *expected);
        }
    }

    #[test]
    fn no_upstream_runs_at_once_under_every_rule() {
        for rule in TriggerRule::ALL {
            assert_eq!(rule.evaluate(&UpstreamCounts::default()), Run, "{rule}");
        }
    }

    #[test]
    fn removed_upstream_is_not_counted() {
        check("all_success", &[OK, TaskState::Removed], Run);
    }

    #[test]
    fn names_round_trip() {
        for rule in TriggerRule::ALL {
            assert_eq!(rule.as_str().parse::<TriggerRule>(), Ok(rule));
        }
        assert!("all_sucess".parse::<TriggerRule>().is_err());
    }
}
