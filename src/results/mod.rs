//! Smoke-test results: subunit v2 streams and JUnit XML read into [`TestCase`]s,
//! counted like `subunit-stats`, compared across phases and written back as JUnit XML.

pub mod junit;
pub mod rally;
pub mod subunit;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use serde::Serialize;

use crate::exit::{self, Kind};
use crate::workspace::evidence::{Counts, TestCase};

/// The two formats a results file can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Subunit,
    Junit,
}

/// A results file read: its tests and what was odd about it.
#[derive(Debug)]
pub struct Loaded {
    pub format: Format,
    pub tests: Vec<TestCase>,
    /// Warnings for the user (skipped output, damaged packets).
    pub notes: Vec<String>,
}

/// Reads a subunit v2 stream or a JUnit XML file (`-` is stdin) into test results.
pub fn read(path: &Path) -> anyhow::Result<Vec<TestCase>> {
    load(path).map(|loaded| loaded.tests)
}

/// Reads a results file, telling subunit from XML by its first bytes; a file that is
/// neither is a usage error.
pub fn load(path: &Path) -> anyhow::Result<Loaded> {
    let bytes = read_bytes(path)?;
    let shown = path.display();
    let trimmed = skip_blank(&bytes);
    if trimmed.is_empty() {
        return Err(exit::fail(
            Kind::Usage,
            format!("`{shown}` is empty: no subunit v2 packets and no JUnit XML"),
        ));
    }
    if trimmed[0] == b'<' {
        return from_junit(trimmed, &shown.to_string());
    }
    from_subunit(&bytes, &shown.to_string())
}

fn read_bytes(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let result = if path == Path::new("-") {
        std::io::stdin().lock().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes).map(|_| ()))
    };
    result.map_err(|e| {
        exit::fail(
            Kind::Usage,
            format!("failed to read `{}`: {e}", path.display()),
        )
    })?;
    Ok(bytes)
}

/// Skips a UTF-8 byte-order mark and leading whitespace (XML may start with either).
fn skip_blank(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn from_subunit(bytes: &[u8], shown: &str) -> anyhow::Result<Loaded> {
    let stream = subunit::parse(bytes);
    if stream.packets == 0 {
        let why = stream
            .rejected
            .first()
            .map_or(String::new(), |(at, e)| format!(" (at byte {at}: {e})"));
        return Err(exit::fail(
            Kind::Usage,
            format!(
                "`{shown}` is neither a subunit v2 stream nor JUnit XML: no valid packet{why}\n\
                 (hint: stestr writes v2 with `stestr last --subunit`; convert v1 with `subunit-1to2`)"
            ),
        ));
    }
    if stream.tests.is_empty() && skip_blank(&stream.output).starts_with(b"<") {
        // `subunit2junitxml` passes a stream's stray output through ahead of its XML.
        return from_junit(skip_blank(&stream.output), shown);
    }
    Ok(Loaded {
        format: Format::Subunit,
        notes: subunit_notes(&stream),
        tests: stream.tests,
    })
}

fn subunit_notes(stream: &subunit::Stream) -> Vec<String> {
    let mut notes = Vec::new();
    if !stream.output.is_empty() {
        notes.push(format!(
            "skipped {} bytes of non-subunit output between packets",
            stream.output.len()
        ));
    }
    if let Some((at, err)) = stream.rejected.first() {
        notes.push(format!(
            "skipped {} damaged packet(s); the first at byte {at}: {err}",
            stream.rejected.len()
        ));
    }
    notes
}

fn from_junit(bytes: &[u8], shown: &str) -> anyhow::Result<Loaded> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| exit::fail(Kind::Usage, format!("`{shown}` is not UTF-8 XML: {e}")))?;
    let tests = junit::parse(text).map_err(|e| {
        exit::fail(
            Kind::Usage,
            format!("`{shown}` is not valid JUnit XML: {e}"),
        )
    })?;
    Ok(Loaded {
        format: Format::Junit,
        tests,
        notes: Vec::new(),
    })
}

/// Counts results as `subunit-stats` does, except that expected failures and unexpected
/// successes are counted apart (`subunit-stats` includes both in "Passed"); an unknown
/// status is a failure.
pub fn counts(tests: &[TestCase]) -> Counts {
    let mut counts = Counts::default();
    for test in tests {
        counts.tests += 1;
        let slot = match test.status.as_str() {
            "success" => &mut counts.passed,
            "skip" => &mut counts.skipped,
            "xfail" => &mut counts.xfail,
            "uxsuccess" => &mut counts.uxsuccess,
            _ => &mut counts.failed,
        };
        *slot += 1;
    }
    counts
}

fn is_failure(status: &str) -> bool {
    !matches!(status, "success" | "skip" | "xfail")
}

/// Tests that passed before and fail after, sorted; an id reported more than once passed
/// only if none of its reports failed, and fails if any did.
pub fn regressions(before: &[TestCase], after: &[TestCase]) -> Vec<String> {
    let mut passed: BTreeMap<&str, bool> = BTreeMap::new();
    for test in before {
        let ok = passed.entry(&test.id).or_insert(true);
        *ok &= test.status == "success";
    }
    let failed_after: BTreeSet<&str> = after
        .iter()
        .filter(|t| is_failure(&t.status))
        .map(|t| t.id.as_str())
        .collect();
    failed_after
        .into_iter()
        .filter(|id| passed.get(id) == Some(&true))
        .map(String::from)
        .collect()
}

/// `tests 2487, passed 2415, failed 72, skipped 0, xfail 0, uxsuccess 0`.
pub fn counts_line(c: &Counts) -> String {
    format!(
        "tests {}, passed {}, failed {}, skipped {}, xfail {}, uxsuccess {}",
        c.tests, c.passed, c.failed, c.skipped, c.xfail, c.uxsuccess
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str, status: &str) -> TestCase {
        TestCase {
            id: id.into(),
            status: status.into(),
            duration_ms: None,
            details: None,
        }
    }

    #[test]
    fn counts_keep_xfail_and_uxsuccess_apart() {
        let tests = [
            "success",
            "success",
            "fail",
            "skip",
            "xfail",
            "uxsuccess",
            "odd",
        ]
        .iter()
        .enumerate()
        .map(|(i, s)| t(&format!("t{i}"), s))
        .collect::<Vec<_>>();
        let c = counts(&tests);
        assert_eq!(
            counts_line(&c),
            "tests 7, passed 2, failed 2, skipped 1, xfail 1, uxsuccess 1"
        );
    }

    #[test]
    fn regressions_are_passed_before_and_failing_after_sorted() {
        let before = [
            t("z.pass", "success"),
            t("a.pass", "success"),
            t("flaky", "success"),
            t("flaky", "fail"),
            t("was.failing", "fail"),
            t("skipped", "skip"),
        ];
        let after = [
            t("z.pass", "fail"),
            t("a.pass", "uxsuccess"),
            t("flaky", "fail"),
            t("was.failing", "fail"),
            t("skipped", "fail"),
            t("new", "fail"),
        ];
        assert_eq!(regressions(&before, &after), ["a.pass", "z.pass"]);
    }

    #[test]
    fn junit_xml_from_subunit2junitxml_is_read() {
        let xml = r#"<testsuite errors="1" failures="2" name="" tests="6" time="0.5">
<testcase classname="m.C" name="test_ok" time="0.250"/>
<testcase classname="m.C" name="test_bad" time="0.001">
<failure type="AssertionError">Traceback &lt;x&gt;
AssertionError: 1 != 2</failure>
</testcase>
<testcase classname="" name="setUpClass (m.D)" time="0.000">
<error type="Exception">boom &#x263A;</error>
</testcase>
<testcase classname="m.C" name="test_skip" time="0.000">
<skipped>not &quot;today&quot;</skipped>
</testcase>
<testcase classname="m.C" name="test_ux" time="0.000">
<failure type="unittest.case._UnexpectedSuccess"/>
</testcase>
<!-- a comment with <testcase> inside -->
<testcase classname='m.C' name='test_cdata'><system-out>out</system-out><failure message="m"><![CDATA[a <raw> text]]></failure></testcase>
</testsuite>"#;
        let tests = junit::parse(xml).unwrap();
        let got: Vec<(&str, &str)> = tests
            .iter()
            .map(|t| (t.id.as_str(), t.status.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("m.C.test_ok", "success"),
                ("m.C.test_bad", "fail"),
                ("setUpClass (m.D)", "fail"),
                ("m.C.test_skip", "skip"),
                ("m.C.test_ux", "fail"),
                ("m.C.test_cdata", "fail"),
            ]
        );
        assert_eq!(tests[0].duration_ms, Some(250.0));
        let details = |i: usize| tests[i].details.as_deref().unwrap_or("");
        assert!(details(1).contains("Traceback <x>"));
        assert_eq!(details(2), "boom \u{263A}");
        assert_eq!(details(3), "not \"today\"");
        assert_eq!(details(5), "m\na <raw> text");
    }

    #[test]
    fn malformed_junit_is_an_error() {
        for bad in [
            "<testsuite><testcase name=\"x\">",
            "<testsuite><testcase classname=\"x\"/></testsuite>",
            "<testsuite><testcase name=\"x\" </testsuite>",
            "<html><body/></html>",
        ] {
            assert!(junit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn junit_prolog_nested_suites_and_quotes_are_read() {
        let xml = "<?xml version='1.0' encoding='UTF-8'?>\n<!DOCTYPE testsuites>\n\
            <?pi data?><testsuites><testsuite name='outer'><!-- <testcase name='no'/> -->\
            <testsuite name=\"inner\"><testcase classname='a.B' name='t' time=' 1.5 '>\
            <skipped/></testcase></testsuite></testsuite></testsuites>";
        let tests = junit::parse(xml).unwrap();
        assert_eq!(tests.len(), 1);
        assert_eq!(
            (tests[0].id.as_str(), tests[0].status.as_str()),
            ("a.B.t", "skip")
        );
        assert_eq!(
            (tests[0].duration_ms, tests[0].details.as_deref()),
            (Some(1500.0), None)
        );
    }

    #[test]
    fn junit_entities_and_cdata_become_details() {
        let xml = r#"<testsuite><testcase name="t&amp;&#60;&#x3E;">
<failure message="a &quot;b&quot; &#233;">x &amp; y &#65;&#x42; &nbsp; AT&T<![CDATA[<raw> &amp;]]>after</failure>
<system-out>not details</system-out></testcase></testsuite>"#;
        let tests = junit::parse(xml).unwrap();
        assert_eq!(tests[0].id, "t&<>");
        assert_eq!(
            tests[0].details.as_deref(),
            // Text, CDATA and text are three pieces, as before; unknown references stay.
            Some("a \"b\" \u{e9}\nx & y AB &nbsp; AT&T\n<raw> &amp;\nafter")
        );
    }

    #[test]
    fn malformed_junit_errors_say_where() {
        let cases: [(&str, &str); 8] = [
            (
                "<a><b name='x'></c></a>",
                "`</b>`, but `</c>` was found at byte 15",
            ),
            ("<testsuite></testsuites>", "`</testsuites>`"),
            (
                "<testsuite><testcase name='x'/>",
                "`<testsuite>` at byte 0 is not",
            ),
            (
                "<a><testcase name='x'><failure>",
                "`<testcase>` `x` at byte 3 is not",
            ),
            (
                "<testsuite><testcase name=x/></testsuite>",
                "malformed attribute",
            ),
            ("<testsuite><![CDATA[ x </testsuite>", "CDATA not closed"),
            ("<testsuite><!-- x </testsuite>", "comment not closed"),
            (
                "<a><testcase name='x'><testcase name='y'/>",
                "inside another",
            ),
        ];
        for (bad, said) in cases {
            let err = junit::parse(bad).unwrap_err();
            let ok = err.contains(said) && err.contains(" at byte ");
            assert!(ok, "{bad}: {err}");
        }
    }

    #[test]
    fn own_junit_round_trips() {
        let mut failing = t("m.C.test_<b>&\"", "fail");
        failing.details = Some("Traceback\nValueError: <no>".into());
        let tests = vec![t("m.C.ok", "success"), failing, t("m.C.s", "skip")];
        let xml = crate::reports::junit::tests_report("r", &tests)
            .to_string()
            .unwrap();
        let back = junit::parse(&xml).unwrap();
        assert_eq!(counts(&back), counts(&tests));
        assert_eq!(back[1].id, tests[1].id);
        assert!(
            back[1]
                .details
                .as_deref()
                .unwrap()
                .contains("ValueError: <no>")
        );
    }

    #[test]
    fn sniffing_rejects_empty_and_unknown_files() {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in [("empty", &b"  \n"[..]), ("text", b"hello world\n")] {
            let path = dir.path().join(name);
            std::fs::write(&path, body).unwrap();
            let err = read(&path).unwrap_err();
            assert_eq!(exit::kind_of(&err), Kind::Usage, "{err:#}");
        }
        let err = read(&dir.path().join("missing")).unwrap_err();
        assert_eq!(exit::kind_of(&err), Kind::Usage);
    }
}
