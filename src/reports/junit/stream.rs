//! JUnit XML for long test lists, written straight from the results: byte for byte what
//! quick-junit renders for [`super::tests_report`], without quick-junit's model. Its string
//! type runs every text through a terminal parser to strip ANSI escapes, which was 60 % of
//! `rollci results` on a 20,000-test stream; here only the rare text that holds a control
//! character takes that path. The tests below hold the two writers to the same bytes.

use std::borrow::Cow;
use std::path::Path;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use std::io::Write;

use super::case::{Case, Kind};
use crate::workspace::evidence::TestCase;

/// Writes one suite named `name` holding every test result to `path`, atomically.
pub fn write_tests(name: &str, tests: &[TestCase], path: &Path) -> anyhow::Result<()> {
    crate::workspace::atomic::write_with(path, |out| render(out, name, tests).map(drop))
}

/// The document: `<testsuites>` around one `<testsuite>`, as quick-junit lays it out.
pub(crate) fn render<W: Write>(out: W, name: &str, tests: &[TestCase]) -> std::io::Result<W> {
    let cases: Vec<Case<'_>> = tests.iter().map(Case::of).collect();
    let count = |kind: Kind| cases.iter().filter(|c| c.kind == kind).count().to_string();
    let (failures, errors) = (count(Kind::Failure), count(Kind::Error));
    let (total, disabled) = (cases.len().to_string(), count(Kind::Skipped));
    let name = clean(name);

    let mut w = Writer::new_with_indent(out, b' ', 4);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let mut suites = BytesStart::new("testsuites");
    suites.extend_attributes([
        ("name", &*name),
        ("tests", &total),
        ("failures", &failures),
        ("errors", &errors),
    ]);
    w.write_event(Event::Start(suites))?;
    let mut suite = BytesStart::new("testsuite");
    suite.extend_attributes([
        ("name", &*name),
        ("tests", &total),
        ("disabled", &disabled),
        ("errors", &errors),
        ("failures", &failures),
    ]);
    w.write_event(Event::Start(suite))?;
    for case in &cases {
        write_case(&mut w, case)?;
    }
    w.write_event(Event::End(BytesEnd::new("testsuite")))?;
    w.write_event(Event::End(BytesEnd::new("testsuites")))?;
    w.write_event(Event::Eof)?;
    w.write_indent()?;
    Ok(w.into_inner())
}

fn write_case<W: Write>(w: &mut Writer<W>, case: &Case<'_>) -> std::io::Result<()> {
    let mut tag = BytesStart::new("testcase");
    tag.push_attribute(("name", &*clean(case.name)));
    tag.push_attribute(("classname", &*clean(case.classname)));
    if let Some(time) = case.time {
        tag.push_attribute(("time", format!("{:.3}", time.as_secs_f64()).as_str()));
    }
    w.write_event(Event::Start(tag))?;
    let element = match case.kind {
        Kind::Success => None,
        Kind::Skipped => Some("skipped"),
        Kind::Failure => Some("failure"),
        Kind::Error => Some("error"),
    };
    if let Some(element) = element {
        let mut tag = BytesStart::new(element);
        if !case.message.is_empty() {
            tag.push_attribute(("message", &*clean(&case.message)));
        }
        if let Some(ty) = case.ty {
            tag.push_attribute(("type", ty));
        }
        text_element(w, tag, case.description)?;
    }
    if let Some(out) = case.system_out {
        text_element(w, BytesStart::new("system-out"), out)?;
    }
    w.write_event(Event::End(BytesEnd::new("testcase")))
}

/// `<tag>text</tag>`, or `<tag/>` without text.
fn text_element<W: Write>(
    w: &mut Writer<W>,
    tag: BytesStart<'_>,
    text: &str,
) -> std::io::Result<()> {
    if text.is_empty() {
        return w.write_event(Event::Empty(tag));
    }
    let end = tag.to_end().into_owned();
    w.write_event(Event::Start(tag))?;
    w.write_event(Event::Text(BytesText::new(&clean(text))))?;
    w.write_event(Event::End(end))
}

/// The text as quick-junit keeps it: a text without control characters (other than
/// newlines) passes unchanged; any other goes through quick-junit's own cleaning.
fn clean(text: &str) -> Cow<'_, str> {
    if plain(text) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(quick_junit::XmlString::new(text).into_string())
    }
}

/// No C0 control but the newline, no DEL, no C1 control (U+0080–U+009F, which UTF-8
/// encodes as 0xC2 0x80–0x9F): the only texts ANSI stripping leaves untouched for sure.
fn plain(text: &str) -> bool {
    let bytes = text.as_bytes();
    // Folded a block at a time rather than stopping at the first hit: the compiler turns
    // the inner loop into vector instructions, and long tracebacks are the common case.
    let control = |b: u8| (b < 0x20 && b != b'\n') || b == 0x7F;
    let simple = bytes
        .chunks(256)
        .all(|block| !block.iter().fold(false, |any, &b| any | control(b)));
    simple && (!bytes.contains(&0xC2) || !text.chars().any(|c| ('\u{80}'..='\u{9F}').contains(&c)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::junit::tests_report;

    fn test(id: &str, status: &str, ms: Option<f64>, details: Option<&str>) -> TestCase {
        TestCase {
            id: id.into(),
            status: status.into(),
            duration_ms: ms,
            details: details.map(String::from),
        }
    }

    /// Every status, odd ids, escapes, control characters, tabs, C1 controls, ANSI colour.
    fn corpus() -> Vec<TestCase> {
        let trace = "Traceback (most recent call last):\n  File \"x.py\", line 1\nAssertionError: 1 != 2 <&> 'q'\n";
        vec![
            test("a.B.test_ok", "success", Some(12.0), Some("ignored output")),
            test("a.B.test_fail", "fail", Some(1500.5), Some(trace)),
            test(
                "a.B.test_skip",
                "skip",
                None,
                Some("  \nFeature not enabled\n"),
            ),
            test("a.B.test_skip_bare", "skip", Some(0.0), None),
            test("a.B.test_xfail", "xfail", Some(3.0), Some(trace)),
            test("a.B.test_xfail_bare", "xfail", None, None),
            test("a.B.test_ux", "uxsuccess", Some(4.0), None),
            test("a.B.test_weird", "inprogress", Some(5.0), Some("torn")),
            test("setUpClass (a.B)", "fail", None, Some("class setup failed")),
            test("plain", "success", Some(f64::NAN), None),
            test("a.B.test_x(p.q)", "success", Some(-1.0), None),
            test(
                "<script>alert(1)</script>.\"q\"",
                "fail",
                None,
                Some("</failure>]]>&amp;"),
            ),
            test(
                "a.B.test_ansi",
                "fail",
                None,
                Some("\u{1b}[31mred\u{1b}[0m\nValueError: \u{1b}[1mbold"),
            ),
            test(
                "a.B.test_ctrl",
                "fail",
                None,
                Some("tab\there\r\nbell\u{7}\u{0}nul\u{7f}del"),
            ),
            test(
                "a.B.test_c1",
                "fail",
                None,
                Some("c1 \u{85} \u{9b}31m done\nE: é ü 日本 🙂"),
            ),
            test("a.B.test_\u{1b}[0mname", "success", None, None),
        ]
    }

    #[test]
    fn stream_renders_the_bytes_quick_junit_renders() {
        let tests = corpus();
        let reference = tests_report("smoke <&\"'>", &tests).to_string().unwrap();
        let ours = String::from_utf8(render(Vec::new(), "smoke <&\"'>", &tests).unwrap()).unwrap();
        assert_eq!(ours, reference);
    }

    #[test]
    fn every_single_case_renders_like_quick_junit() {
        for test in corpus() {
            let one = std::slice::from_ref(&test);
            let reference = tests_report("s", one).to_string().unwrap();
            assert_eq!(
                String::from_utf8(render(Vec::new(), "s", one).unwrap()).unwrap(),
                reference,
                "{test:?}"
            );
        }
    }

    #[test]
    fn an_empty_list_renders_like_quick_junit() {
        let reference = tests_report("none", &[]).to_string().unwrap();
        assert_eq!(
            String::from_utf8(render(Vec::new(), "none", &[]).unwrap()).unwrap(),
            reference
        );
    }

    #[test]
    fn only_texts_without_control_characters_skip_cleaning() {
        assert!(plain("Traceback\n  line é 日本 <&>"));
        for odd in [
            "a\tb",
            "a\rb",
            "\u{1b}[0m",
            "a\u{7f}",
            "a\u{85}",
            "a\u{9f}",
            "\u{0}",
        ] {
            assert!(!plain(odd), "{odd:?}");
        }
        assert!(plain("\u{a0}\u{c2}"), "U+00A0 and U+00C2 are printable");
    }
}
