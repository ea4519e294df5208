//! What one test result becomes in JUnit: the model shared by quick-junit's report and the
//! streaming writer, and the quick-junit test case built from it.

use std::borrow::Cow;
use std::time::Duration;

use quick_junit::{NonSuccessKind, TestCaseStatus};

use crate::workspace::evidence;

/// Splits a test id into class name and name at the last dot before any parameters, as
/// `subunit2junitxml` does (`a.B.test_x(p.q)` → `a.B`, `test_x(p.q)`).
pub fn split_id(id: &str) -> (&str, &str) {
    let params = id.find('(').unwrap_or(id.len());
    match id[..params].rfind('.') {
        Some(dot) => (&id[..dot], &id[dot + 1..]),
        None => ("", id),
    }
}

/// What one test result becomes in JUnit, the same for quick-junit's model and for the
/// streaming writer (`stream`).
pub(crate) struct Case<'a> {
    pub classname: &'a str,
    pub name: &'a str,
    pub time: Option<Duration>,
    pub kind: Kind,
    /// The outcome element's `message` attribute and text, each left out when empty.
    pub message: Cow<'a, str>,
    pub description: &'a str,
    pub ty: Option<&'static str>,
    pub system_out: Option<&'a str>,
}

/// The outcome element of a test case, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Success,
    Skipped,
    Failure,
    Error,
}

impl<'a> Case<'a> {
    /// `xfail` passes and `uxsuccess` fails, as in `subunit2junitxml`.
    pub fn of(test: &'a evidence::TestCase) -> Self {
        let details = test.details.as_deref().unwrap_or("");
        let (kind, message, ty) = match test.status.as_str() {
            "success" | "xfail" => (Kind::Success, Cow::Borrowed(""), None),
            "skip" => (Kind::Skipped, first_line(details).into(), None),
            "fail" => (Kind::Failure, last_line(details).into(), None),
            "uxsuccess" => (
                Kind::Failure,
                "unexpected success".into(),
                Some("unittest.case._UnexpectedSuccess"),
            ),
            other => (
                Kind::Error,
                format!("unknown status `{other}`").into(),
                None,
            ),
        };
        let (classname, name) = split_id(&test.id);
        Case {
            classname,
            name,
            time: test
                .duration_ms
                .filter(|ms| ms.is_finite() && *ms >= 0.0)
                .map(|ms| Duration::from_secs_f64(ms / 1e3)),
            kind,
            message,
            description: if kind == Kind::Success { "" } else { details },
            ty,
            system_out: (test.status == "xfail" && !details.is_empty()).then_some(details),
        }
    }
}

/// One test result as a quick-junit test case.
pub fn test_case(test: &evidence::TestCase) -> quick_junit::TestCase {
    let c = Case::of(test);
    let mut status = match c.kind {
        Kind::Success => TestCaseStatus::success(),
        Kind::Skipped => with_text(TestCaseStatus::skipped(), &c.message, c.description),
        Kind::Failure => with_text(failure(), &c.message, c.description),
        Kind::Error => with_text(error(), &c.message, c.description),
    };
    if let Some(ty) = c.ty {
        status.set_type(ty);
    }
    let mut case = quick_junit::TestCase::new(c.name, status);
    case.set_classname(c.classname);
    if let Some(time) = c.time {
        case.set_time(time);
    }
    if let Some(out) = c.system_out {
        case.set_system_out(out);
    }
    case
}

pub(super) fn failure() -> TestCaseStatus {
    TestCaseStatus::non_success(NonSuccessKind::Failure)
}

pub(super) fn error() -> TestCaseStatus {
    TestCaseStatus::non_success(NonSuccessKind::Error)
}

pub(super) fn with_text(
    mut status: TestCaseStatus,
    message: &str,
    description: &str,
) -> TestCaseStatus {
    if !message.is_empty() {
        status.set_message(message);
    }
    if !description.is_empty() {
        status.set_description(description);
    }
    status
}

fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// The last line of a traceback is the exception and its message.
fn last_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
}
