//! The check plan of one platform and the small runner that evaluates it.
//! Pure: which checks a platform gets, in which order, which ones policy
//! switches off and why, and — given what earlier checks recorded — whether a
//! check runs or is `skipped` with its cause. Executing a check (the store,
//! the unpacked root, the sandbox) is [`super::execute`]'s job.
//!
//! Every planned check is recorded exactly once, in the plan's order: the
//! runner, not the executors, decides what is recorded, so no early return can
//! drop a check from the report. A check runs only when policy leaves it on and
//! every check it [needs](CheckId::needs) passed; otherwise it is `skipped`
//! with the policy's reason, or with the first need that did not pass.

use super::check::{Check, CheckId, Outcome};

/// One check of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub id: CheckId,
    /// The report name: the id, or `command:NAME` for an extra command.
    pub name: String,
    /// For an extra command: its position among the platform's commands.
    pub command: Option<usize>,
    /// Switched off by policy, with the reason the report gives.
    pub off: Option<String>,
}

impl Step {
    fn new(id: CheckId) -> Step {
        Step {
            id,
            name: id.as_str().to_string(),
            command: None,
            off: None,
        }
    }

    fn off_when(mut self, off: bool, why: &str) -> Step {
        if off && self.off.is_none() {
            self.off = Some(why.to_string());
        }
        self
    }
}

/// What policy decides about one platform's plan.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// `[verify.java] required`.
    pub java_required: bool,
    /// `false` under the `static` runner: nothing is executed.
    pub executes: bool,
    /// The names of the `[[verify.commands]]` that apply to this platform.
    pub commands: &'a [&'a str],
    /// `[verify.service]` is configured: `service-start` runs last.
    pub service: bool,
    /// `[verify] clients` is not empty: `clients` follows the standard checks.
    pub clients: bool,
}

/// The execution checks, switched off together by the `static` runner.
const STATIC: &str = "runner \"static\": execution skipped by configuration";

/// The checks of one platform, in order: the standard checks, then one per
/// extra command, then `service-start` when `[verify.service]` is configured.
pub fn plan(facts: Facts<'_>) -> Vec<Step> {
    let no_java = if facts.commands.is_empty() {
        "[verify.java] required = false and no extra commands"
    } else {
        "[verify.java] required = false"
    };
    let mut steps: Vec<Step> = CheckId::STANDARD
        .iter()
        .map(|&id| {
            let java = matches!(
                id,
                CheckId::JdkFound | CheckId::JdkElf | CheckId::JavaVersion | CheckId::JavaOsArch
            );
            let runs = matches!(id, CheckId::JavaVersion | CheckId::JavaOsArch);
            // `layers` always runs: `native-libs` reads every platform's files.
            Step::new(id)
                .off_when(java && !facts.java_required, no_java)
                .off_when(runs && !facts.executes, STATIC)
        })
        .collect();
    if facts.clients {
        // Static: it reads manifests and content, whatever the runner.
        steps.push(Step::new(CheckId::Clients));
    }
    for (i, name) in facts.commands.iter().enumerate() {
        let mut step = Step::new(CheckId::Command).off_when(!facts.executes, STATIC);
        step.name = format!("command:{name}");
        step.command = Some(i);
        steps.push(step);
    }
    if facts.service {
        steps.push(Step::new(CheckId::ServiceStart).off_when(!facts.executes, STATIC));
    }
    steps
}

/// Why `step` does not run, given the checks recorded before it: `None` when
/// it runs. Policy first (a check switched off would not run whatever its
/// needs did), then each need in order. A need that was skipped passes its
/// reason on, so a cascade names its root cause.
pub fn blocked(step: &Step, recorded: &[Check]) -> Option<String> {
    if let Some(off) = &step.off {
        return Some(off.clone());
    }
    step.id
        .needs()
        .iter()
        .find_map(|need| match recorded.iter().rev().find(|c| c.id == *need) {
            None => Some(format!("needs `{}`, which did not run", need.as_str())),
            Some(c) => match c.outcome {
                Outcome::Passed => None,
                Outcome::Skipped => Some(c.message.clone()),
                Outcome::Failed => Some(format!("needs `{}`, which failed", need.as_str())),
                Outcome::Error => Some(format!(
                    "needs `{}`, which could not be checked",
                    need.as_str()
                )),
            },
        })
}

/// Evaluates `plan` in order: each step either runs through `execute` or is
/// recorded `skipped` with the reason [`blocked`] gives. Returns exactly one
/// check per step, named as the step.
pub async fn run(plan: &[Step], mut execute: impl AsyncFnMut(&Step) -> Check) -> Vec<Check> {
    let mut recorded: Vec<Check> = Vec::with_capacity(plan.len());
    for step in plan {
        let check = match blocked(step, &recorded) {
            Some(why) => Check::skipped(step.id, why),
            None => {
                let mut c = execute(step).await;
                // The plan names the check: an executor cannot record another.
                c.id = step.id;
                c
            }
        };
        recorded.push(check.named(step.name.clone()));
    }
    recorded
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::*;

    const ALL_ON: Facts<'static> = Facts {
        java_required: true,
        executes: true,
        commands: &[],
        service: false,
        clients: false,
    };

    /// Runs `plan` with executors that return the outcome given for their
    /// step's name (`passed` when not listed); returns `(name, outcome, message)`.
    fn evaluate(plan: &[Step], table: &[(&str, Outcome)]) -> Vec<(String, Outcome, String)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let checks = rt.block_on(run(plan, async |step: &Step| {
            let outcome = table
                .iter()
                .find(|(n, _)| *n == step.name)
                .map_or(Passed, |(_, o)| *o);
            Check::new(step.id, outcome, format!("ran {}", step.name))
        }));
        checks
            .into_iter()
            .map(|c| (c.name, c.outcome, c.message))
            .collect()
    }

    fn names(plan: &[Step]) -> Vec<&str> {
        plan.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn every_need_comes_earlier_in_the_plan() {
        let plan = plan(Facts {
            commands: &["a", "b"],
            service: true,
            clients: true,
            ..ALL_ON
        });
        for (i, step) in plan.iter().enumerate() {
            for need in step.id.needs() {
                assert!(
                    plan[..i].iter().any(|s| s.id == *need),
                    "{} needs {need:?}, planned later or not at all",
                    step.name
                );
            }
        }
    }

    #[test]
    fn the_plan_is_the_standard_checks_then_the_commands() {
        let plan = plan(Facts {
            commands: &["modules", "version"],
            ..ALL_ON
        });
        let mut want: Vec<&str> = CheckId::STANDARD.iter().map(|c| c.as_str()).collect();
        want.extend(["command:modules", "command:version"]);
        assert_eq!(names(&plan), want);
        assert!(plan.iter().all(|s| s.off.is_none()));
        assert_eq!(plan[9].command, Some(0));
        assert_eq!(plan[10].command, Some(1));
    }

    /// A failing check, its outcome, and `(dependent, message)` it skips.
    type Cascade = (
        &'static str,
        Outcome,
        &'static [(&'static str, &'static str)],
    );

    #[test]
    fn dependents_are_skipped_with_the_cause() {
        let cmd = &["app"][..];
        // (failing check and outcome, the checks then skipped with their message)
        let cases: &[Cascade] = &[
            (
                "index-entry",
                Failed,
                &[
                    ("manifest", "needs `index-entry`, which failed"),
                    ("java-os-arch", "needs `index-entry`, which failed"),
                    ("command:app", "needs `index-entry`, which failed"),
                ],
            ),
            (
                "manifest",
                Error,
                &[
                    (
                        "config-platform",
                        "needs `manifest`, which could not be checked",
                    ),
                    ("layers", "needs `manifest`, which could not be checked"),
                    (
                        "command:app",
                        "needs `manifest`, which could not be checked",
                    ),
                ],
            ),
            (
                "layers",
                Failed,
                &[
                    ("jdk-found", "needs `layers`, which failed"),
                    ("jdk-elf", "needs `layers`, which failed"),
                    ("command:app", "needs `layers`, which failed"),
                ],
            ),
            (
                "jdk-found",
                Failed,
                &[
                    ("jdk-elf", "needs `jdk-found`, which failed"),
                    ("java-version", "needs `jdk-found`, which failed"),
                    ("java-os-arch", "needs `jdk-found`, which failed"),
                ],
            ),
        ];
        let plan = plan(Facts {
            commands: cmd,
            ..ALL_ON
        });
        for (failing, outcome, skipped) in cases {
            let got = evaluate(&plan, &[(failing, *outcome)]);
            assert_eq!(got.len(), plan.len(), "{failing}: one check per step");
            for (name, o, message) in &got {
                if let Some((_, want)) = skipped.iter().find(|(n, _)| n == name) {
                    assert_eq!(
                        (*o, message.as_str()),
                        (Skipped, *want),
                        "{failing} → {name}"
                    );
                }
            }
            let failed = got.iter().find(|(n, _, _)| n == failing).unwrap();
            assert_eq!(failed.1, *outcome, "{failing} is recorded as it ended");
        }
    }

    #[test]
    fn a_failed_check_that_nothing_needs_stops_nothing() {
        let plan = plan(ALL_ON);
        for failing in ["config-platform", "jdk-elf", "java-version"] {
            let got = evaluate(&plan, &[(failing, Failed)]);
            for (name, o, _) in &got {
                let want = if name == failing { Failed } else { Passed };
                assert_eq!(*o, want, "{failing} → {name}");
            }
        }
    }

    #[test]
    fn the_service_starts_last_after_the_layers_whatever_java_did() {
        let plan = plan(Facts {
            commands: &["app"],
            service: true,
            clients: false,
            ..ALL_ON
        });
        assert_eq!(names(&plan).last(), Some(&"service-start"));
        // A service needs its file system, not the JDK checks: a failed
        // `java -version` does not hide whether the service itself starts.
        let got = evaluate(&plan, &[("java-version", Failed)]);
        assert_eq!(got.last().unwrap().1, Passed);
        let got = evaluate(&plan, &[("layers", Failed)]);
        assert_eq!(
            (got.last().unwrap().1, got.last().unwrap().2.as_str()),
            (Skipped, "needs `layers`, which failed")
        );
        let off = plan_static_service();
        assert_eq!(off.last().unwrap().off.as_deref(), Some(STATIC));
    }

    fn plan_static_service() -> Vec<Step> {
        plan(Facts {
            executes: false,
            service: true,
            clients: false,
            ..ALL_ON
        })
    }

    #[test]
    fn the_static_runner_switches_off_execution_only() {
        let plan = plan(Facts {
            executes: false,
            commands: &["app"],
            ..ALL_ON
        });
        let got = evaluate(&plan, &[]);
        for (name, o, m) in &got {
            let execution = matches!(
                name.as_str(),
                "java-version" | "java-os-arch" | "command:app"
            );
            if execution {
                assert_eq!((*o, m.as_str()), (Skipped, STATIC), "{name}");
            } else {
                assert_eq!(*o, Passed, "{name}");
            }
        }
    }

    #[test]
    fn policy_is_the_reason_even_when_a_need_failed() {
        let plan = plan(Facts {
            java_required: false,
            commands: &["app"],
            ..ALL_ON
        });
        let got = evaluate(&plan, &[("layers", Failed)]);
        let jdk = got.iter().find(|(n, _, _)| n == "jdk-found").unwrap();
        assert_eq!(
            (jdk.1, jdk.2.as_str()),
            (Skipped, "[verify.java] required = false")
        );
        let cmd = got.iter().find(|(n, _, _)| n == "command:app").unwrap();
        assert_eq!(
            (cmd.1, cmd.2.as_str()),
            (Skipped, "needs `layers`, which failed")
        );
    }

    /// Regression: with `[verify.java] required = false` and no command,
    /// `layers` was recorded after the checks that depend on it. Now
    /// `native-libs` reads the files of every image, so `layers` runs too.
    #[test]
    fn regression_java_not_required_without_commands_records_layers_in_plan_order() {
        let plan = plan(Facts {
            java_required: false,
            ..ALL_ON
        });
        let got = evaluate(&plan, &[]);
        let order: Vec<&str> = got.iter().map(|(n, _, _)| n.as_str()).collect();
        let standard: Vec<&str> = CheckId::STANDARD.iter().map(|c| c.as_str()).collect();
        assert_eq!(order, standard);
        for (name, o, m) in &got[3..] {
            if matches!(name.as_str(), "layers" | "native-libs") {
                assert_eq!(*o, Passed, "{name}");
            } else {
                assert_eq!(*o, Skipped, "{name}");
                assert_eq!(m, "[verify.java] required = false and no extra commands");
            }
        }
    }

    #[test]
    fn native_libs_runs_under_the_static_runner_and_without_a_jdk() {
        let plan = plan(Facts {
            java_required: false,
            executes: false,
            commands: &[],
            service: false,
            clients: false,
        });
        let got = evaluate(&plan, &[("jdk-found", Failed)]);
        let natives = got.iter().find(|(n, _, _)| n == "native-libs").unwrap();
        assert_eq!(natives.1, Passed, "{natives:?}");
    }

    /// Regression: when the unpacked root could not be opened, the
    /// `[[verify.commands]]` checks disappeared from the report. Opening the
    /// root is part of `layers` now; whatever `layers` ends with, the commands
    /// are recorded.
    #[test]
    fn regression_root_that_cannot_be_opened_keeps_the_commands() {
        let plan = plan(Facts {
            commands: &["a", "b"],
            ..ALL_ON
        });
        for outcome in [Error, Failed, Passed] {
            let got = evaluate(&plan, &[("layers", outcome)]);
            let commands: Vec<(&str, Outcome)> = got
                .iter()
                .filter(|(n, _, _)| n.starts_with("command:"))
                .map(|(n, o, _)| (n.as_str(), *o))
                .collect();
            let want = if outcome == Passed { Passed } else { Skipped };
            assert_eq!(
                commands,
                [("command:a", want), ("command:b", want)],
                "layers {outcome}"
            );
        }
    }

    /// Regression: `(Ok(_), None) => return` let the java executor end
    /// without recording `java-version` and `java-os-arch`. Executors now
    /// return their check and the runner records one per step, whatever
    /// the executor names.
    #[test]
    fn regression_ok_runner_without_sandbox_drops_no_check() {
        let plan = plan(Facts {
            commands: &["app"],
            ..ALL_ON
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // An executor that always reports the same check, whatever it is asked.
        let got = rt.block_on(run(&plan, async |_: &Step| {
            Check::passed(CheckId::IndexEntry, "confused executor")
        }));
        let want: Vec<(CheckId, &str)> = plan.iter().map(|s| (s.id, s.name.as_str())).collect();
        let ids: Vec<(CheckId, &str)> = got.iter().map(|c| (c.id, c.name.as_str())).collect();
        assert_eq!(ids, want);
    }
}
