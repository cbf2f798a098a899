//! Steering for the scripted agent, read from the task text so a test or a demo can script a
//! whole pipeline run from the task alone: `scripted-agent:` lines pick each role's verdict
//! per attempt, make a role crash, answer like a rate-limited or usage-limited API, make
//! it slow enough to time out, or report what a run cost (`cost=<usd>`).

use std::collections::BTreeMap;
use std::time::Duration;

/// The line prefix that marks a directive line (after leading whitespace).
pub const PREFIX: &str = "scripted-agent:";

pub use orchestrator_actors::Role;

/// The verdicts a directive may give `role`; the first is the default (passing) one.
pub fn verdicts(role: Role) -> &'static [&'static str] {
    match role {
        Role::Analyst | Role::Developer => &["OK"],
        Role::Architect => &["OK", "CONFLICT"],
        Role::Reviewer => &["APPROVED", "REQUEST_CHANGES"],
        Role::Tester => &["PASS", "FAIL"],
        Role::Deployer => &["SUCCESS", "FAILED"],
    }
}

/// Everything the `scripted-agent:` lines of one task text ask for. Later lines override
/// earlier ones key by key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Directives {
    /// Per role, the verdict of attempt 1, 2, …; the last one repeats.
    verdicts: BTreeMap<Role, Vec<&'static str>>,
    /// Roles that crash: on every attempt (`None`) or on the first N (`Some(N)`).
    fail: BTreeMap<Role, Option<u32>>,
    /// Roles whose API answers 429 (rate limited), on every attempt or the first N.
    transient: BTreeMap<Role, Option<u32>>,
    /// Roles whose account hits its usage limit, on every attempt or the first N.
    usage_limit: BTreeMap<Role, Option<u32>>,
    /// The retry-after a 429 states, and how far ahead a usage limit resets (default 1 s).
    retry_after: Option<Duration>,
    /// Delay before answering, for every role.
    sleep_all: Option<Duration>,
    /// Delay before answering for one role; wins over `sleep_all`.
    sleep_role: BTreeMap<Role, Duration>,
    /// What every successful run reports it cost, in US dollars (default 0).
    cost: Option<f64>,
    /// Files a developer run writes: path relative to the worktree, and its one line of
    /// content per attempt (the last one repeats).
    code: Vec<(String, Vec<String>)>,
}

impl Directives {
    /// Reads every directive line of `task`. A typo is an error naming the token, so a
    /// scripted scenario never silently runs the default path.
    pub fn parse(task: &str) -> Result<Self, String> {
        let mut directives = Directives::default();
        for line in task.lines() {
            let Some(rest) = line.trim_start().strip_prefix(PREFIX) else {
                continue;
            };
            for token in rest.split_whitespace() {
                directives
                    .apply(token)
                    .map_err(|e| format!("bad scripted-agent directive {token:?}: {e}"))?;
            }
        }
        Ok(directives)
    }

    fn apply(&mut self, token: &str) -> Result<(), String> {
        let (key, value) = token.split_once('=').ok_or(
            "expected key=value (a role, fail, transient, usage_limit, retry_after, sleep, cost or code)",
        )?;
        if value.is_empty() {
            return Err("the value is empty".into());
        }
        match key {
            "fail" | "transient" | "usage_limit" => {
                let map = match key {
                    "fail" => &mut self.fail,
                    "transient" => &mut self.transient,
                    _ => &mut self.usage_limit,
                };
                for item in value.split(',') {
                    let (role, times) = match item.split_once(':') {
                        Some((role, n)) => (role, Some(positive(n)?)),
                        None => (item, None),
                    };
                    map.insert(
                        role.parse().map_err(
                            |e: orchestrator_actors::domain::pipeline::UnknownRole| e.to_string(),
                        )?,
                        times,
                    );
                }
            }
            "retry_after" => self.retry_after = Some(seconds(value)?),
            "code" => {
                let (path, content) = value
                    .split_once(':')
                    .ok_or("expected code=<path>:<content>[,<content of the next attempt>…]")?;
                let relative = std::path::Path::new(path);
                if path.is_empty()
                    || relative.is_absolute()
                    || relative
                        .components()
                        .any(|c| !matches!(c, std::path::Component::Normal(_)))
                    || path.starts_with(".git")
                {
                    return Err(format!(
                        "{path:?} is not a plain relative path inside the worktree"
                    ));
                }
                let contents: Vec<String> = content.split(',').map(str::to_string).collect();
                if contents.iter().any(String::is_empty) {
                    return Err("a content is empty".into());
                }
                self.code.retain(|(p, _)| p != path);
                self.code.push((path.to_string(), contents));
            }
            "cost" => {
                let usd = value
                    .parse::<f64>()
                    .ok()
                    .filter(|usd| usd.is_finite() && *usd >= 0.0)
                    .ok_or_else(|| format!("{value:?} is not a cost in US dollars (>= 0)"))?;
                self.cost = Some(usd);
            }
            "sleep" => {
                for item in value.split(',') {
                    match item.split_once(':') {
                        Some((role, secs)) => {
                            self.sleep_role.insert(
                                role.parse().map_err(
                                    |e: orchestrator_actors::domain::pipeline::UnknownRole| {
                                        e.to_string()
                                    },
                                )?,
                                seconds(secs)?,
                            );
                        }
                        None => self.sleep_all = Some(seconds(item)?),
                    }
                }
            }
            role => {
                let role: Role = role.parse().map_err(|e| {
                    format!("{e}, fail, transient, usage_limit, retry_after, sleep, cost or code")
                })?;
                let verdicts = value
                    .split(',')
                    .map(|v| verdict(role, v))
                    .collect::<Result<Vec<_>, _>>()?;
                self.verdicts.insert(role, verdicts);
            }
        }
        Ok(())
    }

    /// The verdict of `role` on its `attempt`-th run (1-based): the attempt-th value given,
    /// the last one past the end, the passing default without a directive.
    pub fn verdict(&self, role: Role, attempt: u32) -> &'static str {
        let index = usize::try_from(attempt.max(1) - 1).unwrap_or(usize::MAX);
        match self.verdicts.get(&role) {
            Some(list) => list.get(index).or(list.last()).copied(),
            None => None,
        }
        .unwrap_or(verdicts(role)[0])
    }

    /// Whether `role` crashes on its `attempt`-th run.
    pub fn fails(&self, role: Role, attempt: u32) -> bool {
        hits(&self.fail, role, attempt)
    }

    /// Whether `role`'s API is rate limited on its `attempt`-th run.
    pub fn rate_limited(&self, role: Role, attempt: u32) -> bool {
        hits(&self.transient, role, attempt)
    }

    /// Whether `role`'s account is out of quota on its `attempt`-th run.
    pub fn usage_limited(&self, role: Role, attempt: u32) -> bool {
        hits(&self.usage_limit, role, attempt)
    }

    /// The stated retry-after of a 429, and the distance to a usage limit's reset.
    pub fn retry_after(&self) -> Duration {
        self.retry_after.unwrap_or(Duration::from_secs(1))
    }

    /// What a successful run reports it cost, in US dollars.
    pub fn cost(&self) -> f64 {
        self.cost.unwrap_or(0.0)
    }

    /// The files the developer's `attempt`-th run writes: (relative path, its one line of
    /// content).
    pub fn code(&self, attempt: u32) -> Vec<(&str, &str)> {
        let index = usize::try_from(attempt.max(1) - 1).unwrap_or(usize::MAX);
        self.code
            .iter()
            .filter_map(|(path, contents)| {
                let content = contents.get(index).or(contents.last())?;
                Some((path.as_str(), content.as_str()))
            })
            .collect()
    }

    /// How long `role` waits before answering, if at all.
    pub fn sleep(&self, role: Role) -> Option<Duration> {
        self.sleep_role.get(&role).copied().or(self.sleep_all)
    }
}

/// Whether a per-role "every attempt or the first N" directive covers `attempt`.
fn hits(map: &BTreeMap<Role, Option<u32>>, role: Role, attempt: u32) -> bool {
    match map.get(&role) {
        Some(None) => true,
        Some(Some(times)) => attempt <= *times,
        None => false,
    }
}

/// Matches a verdict case-insensitively against what the role can say.
fn verdict(role: Role, value: &str) -> Result<&'static str, String> {
    verdicts(role)
        .iter()
        .find(|v| v.eq_ignore_ascii_case(value))
        .copied()
        .ok_or_else(|| {
            format!(
                "{role} cannot answer {value:?} (expected one of {})",
                verdicts(role).join(", ")
            )
        })
}

fn positive(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "{text:?} is not a positive whole number of attempts"
        )),
    }
}

fn seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{text:?} is not a number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_directives_every_role_passes() {
        let d = Directives::parse("Add a health endpoint.\nNothing else.").unwrap();
        assert_eq!(d, Directives::default());
        assert_eq!(d.verdict(Role::Reviewer, 1), "APPROVED");
        assert_eq!(d.verdict(Role::Tester, 3), "PASS");
        assert_eq!(d.verdict(Role::Architect, 1), "OK");
        assert_eq!(d.verdict(Role::Deployer, 2), "SUCCESS");
        assert!(!d.fails(Role::Developer, 1));
        assert_eq!(d.sleep(Role::Analyst), None);
    }

    #[test]
    fn attempts_walk_the_list_and_the_last_value_repeats() {
        let d = Directives::parse(
            "Title\n  scripted-agent: reviewer=REQUEST_CHANGES,APPROVED tester=FAIL,FAIL,FAIL architect=conflict\n",
        )
        .unwrap();
        assert_eq!(d.verdict(Role::Reviewer, 1), "REQUEST_CHANGES");
        assert_eq!(d.verdict(Role::Reviewer, 2), "APPROVED");
        assert_eq!(d.verdict(Role::Reviewer, 7), "APPROVED");
        assert_eq!(d.verdict(Role::Tester, 4), "FAIL");
        assert_eq!(d.verdict(Role::Architect, 1), "CONFLICT");
        // Untouched roles keep their defaults.
        assert_eq!(d.verdict(Role::Deployer, 1), "SUCCESS");
    }

    #[test]
    fn fail_and_sleep_accept_all_or_per_role_forms_and_later_lines_win() {
        let d = Directives::parse(
            "scripted-agent: fail=developer sleep=3\n\
             scripted-agent: fail=tester:2 sleep=deployer:0.5 reviewer=APPROVED\n\
             scripted-agent: reviewer=REQUEST_CHANGES\n",
        )
        .unwrap();
        assert!(d.fails(Role::Developer, 1) && d.fails(Role::Developer, 9));
        assert!(d.fails(Role::Tester, 2) && !d.fails(Role::Tester, 3));
        assert!(!d.fails(Role::Reviewer, 1));
        assert_eq!(d.sleep(Role::Analyst), Some(Duration::from_secs(3)));
        assert_eq!(d.sleep(Role::Deployer), Some(Duration::from_millis(500)));
        assert_eq!(d.verdict(Role::Reviewer, 1), "REQUEST_CHANGES");
    }

    #[test]
    fn api_limits_are_scripted_per_role_and_attempt() {
        let d = Directives::parse(
            "scripted-agent: transient=analyst:2 usage_limit=tester retry_after=2.5",
        )
        .unwrap();
        assert!(d.rate_limited(Role::Analyst, 2) && !d.rate_limited(Role::Analyst, 3));
        assert!(d.usage_limited(Role::Tester, 5) && !d.usage_limited(Role::Analyst, 1));
        assert_eq!(d.retry_after(), Duration::from_millis(2500));
        assert_eq!(Directives::default().retry_after(), Duration::from_secs(1));
    }

    #[test]
    fn a_typo_is_an_error_naming_the_token() {
        for (text, needle) in [
            (
                "scripted-agent: reviewer=APPROVE",
                "reviewer cannot answer \"APPROVE\"",
            ),
            (
                "scripted-agent: reveiwer=APPROVED",
                "unknown role \"reveiwer\"",
            ),
            ("scripted-agent: tester", "expected key=value"),
            ("scripted-agent: tester=", "empty"),
            ("scripted-agent: fail=tester:0", "positive"),
            ("scripted-agent: sleep=soon", "seconds"),
            ("scripted-agent: sleep=-1", "seconds"),
            ("scripted-agent: developer=FAIL", "developer cannot answer"),
        ] {
            let error = Directives::parse(text).unwrap_err();
            assert!(error.contains(needle), "{text}: {error}");
            let token = text.trim_start_matches("scripted-agent: ");
            assert!(error.contains(&format!("{token:?}")), "{text}: {error}");
        }
    }

    #[test]
    fn only_lines_that_start_with_the_prefix_count() {
        let d = Directives::parse("please ignore scripted-agent: reviewer=FOO in prose").unwrap();
        assert_eq!(d, Directives::default());
    }

    #[test]
    fn cost_is_what_a_successful_run_reports_and_a_bad_one_is_refused() {
        assert_eq!(Directives::parse("x").unwrap().cost(), 0.0);
        let d = Directives::parse("scripted-agent: cost=0.75").unwrap();
        assert_eq!(d.cost(), 0.75);
        let e = Directives::parse("scripted-agent: cost=-1").unwrap_err();
        assert!(e.contains("cost=-1") && e.contains("US dollars"), "{e}");
    }
}
