//! JUnit XML for Jenkins' `junit` step, rendered with quick-junit: smoke tests per phase,
//! persistent resources and one test case per service's availability budget.

use std::path::{Path, PathBuf};

use anyhow::Context;
use quick_junit::{Report, TestCaseStatus, TestSuite};

use crate::workspace::evidence::{
    self, Availability, Persistent, PersistentOutcome, ServiceReport, Smoke, Window,
};

mod case;
pub mod stream;

pub use case::{split_id, test_case};
pub use stream::write_tests;

use case::{failure, with_text};

/// Folder of the JUnit files inside a workspace.
pub fn dir(workspace: &Path) -> PathBuf {
    workspace.join("reports").join("junit")
}

/// A report of one suite holding every test result.
pub fn tests_report(name: &str, tests: &[evidence::TestCase]) -> Report {
    let mut suite = TestSuite::new(name);
    suite.add_test_cases(tests.iter().map(test_case));
    let mut report = Report::new(name);
    report.add_test_suite(suite);
    report
}

/// The smoke tests of one phase, plus a suite of rollci's own checks on them (the failure
/// budget and, after the upgrade, the regressions).
pub fn smoke_report(name: &str, smoke: &Smoke) -> Report {
    let mut report = tests_report(name, &smoke.tests);
    let mut checks = TestSuite::new(format!("{name}-checks"));
    if let Some(max) = smoke.max_failures {
        checks.add_test_case(budget_case(smoke.counts.failed, max));
    }
    if smoke.phase == "after" {
        checks.add_test_case(regressions_case(&smoke.regressions));
    }
    if !checks.test_cases.is_empty() {
        report.add_test_suite(checks);
    }
    report
}

fn budget_case(failed: u64, max: u64) -> quick_junit::TestCase {
    let status = if failed <= max {
        TestCaseStatus::success()
    } else {
        let message = format!("{failed} tests failed, more than the {max} allowed");
        with_text(failure(), &message, "")
    };
    check_case("max_failures", status)
}

fn regressions_case(regressions: &[String]) -> quick_junit::TestCase {
    let status = if regressions.is_empty() {
        TestCaseStatus::success()
    } else {
        let message = format!(
            "{} tests passed before the upgrade and fail after it",
            regressions.len()
        );
        with_text(failure(), &message, &regressions.join("\n"))
    };
    check_case("regressions", status)
}

fn check_case(name: &str, status: TestCaseStatus) -> quick_junit::TestCase {
    let mut case = quick_junit::TestCase::new(name, status);
    case.set_classname("rollci.smoke");
    case
}

/// Persistent resources of one phase: `created` and `intact` pass, `changed` and `lost` fail.
pub fn persistent_report(phase: &str, resources: &[Persistent]) -> Report {
    let name = format!("persistent-{phase}");
    let mut suite = TestSuite::new(name.as_str());
    suite.add_test_cases(resources.iter().map(|r| persistent_case(phase, r)));
    let mut report = Report::new(name);
    report.add_test_suite(suite);
    report
}

fn persistent_case(phase: &str, resource: &Persistent) -> quick_junit::TestCase {
    let detail = resource.detail.as_deref().unwrap_or("");
    let status = if resource.outcome.is_good() {
        TestCaseStatus::success()
    } else {
        let message = format!("`{}` was {}", resource.name, resource.outcome.as_str());
        with_text(failure(), &message, detail)
    };
    let mut case = quick_junit::TestCase::new(resource.name.as_str(), status);
    case.set_classname(format!("rollci.persistent.{phase}"));
    if let Some(sum) = &resource.checksum {
        case.add_property(("checksum", sum.as_str()));
    }
    case
}

/// One test case per probed service: it passes when its downtime is within the budget.
pub fn availability_report(availability: &Availability) -> Report {
    let mut suite = TestSuite::new("availability");
    suite.add_test_cases(availability.services.iter().map(service_case));
    let mut report = Report::new("availability");
    report.add_test_suite(suite);
    report
}

fn service_case(service: &ServiceReport) -> quick_junit::TestCase {
    let budget = service
        .budget_ms
        .map_or("no budget".to_string(), |b| format!("budget {b} ms"));
    let summary = format!(
        "availability {:.3}% over {} probes, downtime {} ms, {budget}; \
         {} ms in windows of a late prober (not counted), probes at most {:.0} ms late",
        service.availability,
        service.probes,
        service.downtime_ms,
        service.prober_late_ms,
        service.max_late_ms
    );
    let status = if service.within_budget {
        TestCaseStatus::success()
    } else {
        let message = format!(
            "downtime {} ms over {budget}; failed probes: {}",
            service.downtime_ms,
            service.failure_text()
        );
        with_text(failure(), &message, &windows_text(service))
    };
    let mut case = quick_junit::TestCase::new(service.name.as_str(), status);
    case.set_classname("rollci.availability");
    case.set_system_out(format!("{summary}\n{}", windows_text(service)));
    case.add_property(("url", service.url.as_str()));
    case
}

fn first_error(w: &Window) -> String {
    w.first_error
        .as_deref()
        .map(|e| format!("; first: {e}"))
        .unwrap_or_default()
}

fn windows_text(service: &ServiceReport) -> String {
    service
        .windows
        .iter()
        .map(|w| {
            format!(
                "{} .. {}: {} ms, {} failed probes ({}), during {}{}{}",
                w.start.to_rfc3339(),
                w.end.to_rfc3339(),
                w.duration_ms,
                w.failures,
                w.class_text(),
                w.action.as_deref().unwrap_or("no upgrade action"),
                if w.prober_late {
                    " [prober late: not counted against the budget]"
                } else {
                    ""
                },
                first_error(w)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Writes a report atomically (a temporary file beside it, then renamed).
pub fn write(report: &Report, path: &Path) -> anyhow::Result<()> {
    let xml = report
        .to_string()
        .with_context(|| format!("failed to render JUnit XML for `{}`", path.display()))?;
    crate::workspace::atomic::write(path, xml.as_bytes())
}

/// Writes `<workspace>/reports/junit/<name>.xml` for each evidence file that exists
/// (smoke before and after, persistent resources, availability); returns the paths written.
pub fn write_all(workspace: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut reports = Vec::new();
    for phase in ["before", "after"] {
        let name = format!("smoke-{phase}");
        if let Some(smoke) = evidence::read::<Smoke>(workspace, &format!("{name}.json"))? {
            reports.push((name.clone(), smoke_report(&name, &smoke)));
        }
    }
    if let Some(resources) = evidence::read::<Vec<Persistent>>(workspace, "persistent.json")? {
        let phase = persistent_phase(&resources);
        reports.push(("persistent".into(), persistent_report(phase, &resources)));
    }
    if let Some(availability) = evidence::read::<Availability>(workspace, "availability.json")? {
        reports.push(("availability".into(), availability_report(&availability)));
    }
    let dir = dir(workspace);
    reports
        .into_iter()
        .map(|(name, report)| {
            let path = dir.join(format!("{name}.xml"));
            write(&report, &path).map(|()| path)
        })
        .collect()
}

/// `before` while every resource is only `created`, else `after`.
fn persistent_phase(resources: &[Persistent]) -> &'static str {
    if resources
        .iter()
        .all(|r| r.outcome == PersistentOutcome::Created)
    {
        "before"
    } else {
        "after"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::evidence::{Counts, TestCase, Window};

    fn test(id: &str, status: &str, details: Option<&str>) -> TestCase {
        TestCase {
            id: id.into(),
            status: status.into(),
            duration_ms: Some(1500.0),
            details: details.map(String::from),
        }
    }

    fn xml(report: &Report) -> String {
        report.to_string().unwrap()
    }

    #[test]
    fn ids_split_like_subunit2junitxml() {
        assert_eq!(split_id("a.B.test_x"), ("a.B", "test_x"));
        assert_eq!(split_id("a.B.test_x(p.q)"), ("a.B", "test_x(p.q)"));
        assert_eq!(split_id("setUpClass (a.B)"), ("", "setUpClass (a.B)"));
        assert_eq!(split_id("plain"), ("", "plain"));
    }

    #[test]
    fn statuses_map_to_junit_like_subunit2junitxml() {
        let tests = [
            test("m.C.ok", "success", None),
            test(
                "m.C.bad",
                "fail",
                Some("Traceback\n  x\nAssertionError: 1 != 2\n"),
            ),
            test("m.C.skip", "skip", Some("not today")),
            test("m.C.xf", "xfail", Some("expected")),
            test("m.C.ux", "uxsuccess", None),
        ];
        let report = tests_report("smoke", &tests);
        let suite = &report.test_suites[0];
        assert_eq!((suite.tests, suite.failures, suite.disabled), (5, 2, 1));
        let text = xml(&report);
        assert!(
            text.contains(r#"message="AssertionError: 1 != 2""#),
            "{text}"
        );
        assert!(text.contains("_UnexpectedSuccess"), "{text}");
        assert!(text.contains(r#"classname="m.C""#), "{text}");
        assert!(text.contains(r#"time="1.500""#), "{text}");
    }

    #[test]
    fn hostile_names_become_valid_xml() {
        let id = "m.C.test_<script>alert(\"x\")</script>\u{1}\u{1b}[31m&";
        let report = tests_report("smoke", &[test(id, "fail", Some("a\u{0}b <b> ]]>"))]);
        let text = xml(&report);
        assert!(text.contains("&lt;script&gt;"), "{text}");
        assert!(!text.contains("<script>"), "{text}");
        let bad = |c: char| c.is_control() && !matches!(c, '\n' | '\r' | '\t');
        assert!(!text.chars().any(bad), "{text:?}");
    }

    #[test]
    fn smoke_report_adds_budget_and_regressions_checks() {
        let smoke = Smoke {
            phase: "after".into(),
            counts: Counts {
                tests: 2,
                failed: 2,
                ..Counts::default()
            },
            tests: vec![test("a.b", "fail", None), test("a.c", "fail", None)],
            max_failures: Some(1),
            regressions: vec!["a.b".into()],
        };
        let report = smoke_report("smoke-after", &smoke);
        let checks = &report.test_suites[1];
        assert_eq!((checks.tests, checks.failures), (2, 2));
        let text = xml(&report);
        assert!(
            text.contains("2 tests failed, more than the 1 allowed"),
            "{text}"
        );
        assert!(text.contains("1 tests passed before the upgrade"), "{text}");
    }

    #[test]
    fn persistent_outcomes_pass_or_fail() {
        let r = |name: &str, outcome| Persistent {
            name: name.into(),
            outcome,
            checksum: Some("abc".into()),
            detail: Some("row missing".into()),
        };
        let resources = [
            r("canary", PersistentOutcome::Intact),
            r("volume", PersistentOutcome::Lost),
            r("x", PersistentOutcome::Changed),
        ];
        let report = persistent_report("after", &resources);
        let suite = &report.test_suites[0];
        assert_eq!((suite.tests, suite.failures, suite.errors), (3, 2, 0));
        assert!(xml(&report).contains("`x` was changed"));
        assert!(xml(&report).contains("`volume` was lost"));
    }

    #[test]
    fn availability_fails_over_budget_with_windows() {
        let start = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let service = |name: &str, within: bool| ServiceReport {
            name: name.into(),
            downtime_ms: 1200,
            budget_ms: Some(500),
            within_budget: within,
            windows: vec![Window {
                start,
                end: start + chrono::Duration::milliseconds(1200),
                duration_ms: 1200,
                action: Some("node1".into()),
                failures: 4,
                class: "refused".into(),
                prober_late: false,
                first_error: None,
                connection: None,
            }],
            ..ServiceReport::default()
        };
        let availability = Availability {
            services: vec![service("api", false), service("web", true)],
            ..Availability::default()
        };
        let report = availability_report(&availability);
        assert_eq!(report.test_suites[0].failures, 1);
        let text = xml(&report);
        assert!(
            text.contains("downtime 1200 ms over budget 500 ms"),
            "{text}"
        );
        assert!(text.contains("during node1"), "{text}");
    }

    #[test]
    fn write_all_writes_one_file_per_evidence_record() {
        let ws = tempfile::tempdir().unwrap();
        let smoke = Smoke {
            phase: "before".into(),
            tests: vec![test("a.b", "success", None)],
            ..Smoke::default()
        };
        evidence::write(ws.path(), "smoke-before.json", &smoke).unwrap();
        evidence::write(ws.path(), "availability.json", &Availability::default()).unwrap();
        let written = write_all(ws.path()).unwrap();
        let names: Vec<_> = written.iter().map(|p| p.file_name().unwrap()).collect();
        assert_eq!(names, ["smoke-before.xml", "availability.xml"]);
        let text = std::fs::read_to_string(&written[0]).unwrap();
        assert!(text.contains(r#"name="b""#), "{text}");
    }
}
