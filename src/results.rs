//! Smoke-test results: subunit v2 streams and JUnit XML read into [`TestCase`]s,
//! counted like `subunit-stats`, compared across phases and written back as JUnit XML.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::cli::ResultsArgs;
use crate::evidence::{Counts, TestCase};
use crate::exit::{self, Kind};
use crate::{junit, subunit};

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
    let tests = junit_xml::parse(text).map_err(|e| {
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

#[derive(Serialize)]
struct JsonOut<'a> {
    format: Format,
    counts: Counts,
    tests: &'a [TestCase],
}

/// `rollci results FILE [--junit OUT] [--json]`: converts and counts; exits 0 even when
/// tests failed (it is a converter).
pub fn command(args: &ResultsArgs) -> anyhow::Result<u8> {
    let loaded = load(&args.file)?;
    for note in &loaded.notes {
        eprintln!("note: {note}");
    }
    if let Some(out) = &args.junit {
        let report = junit::tests_report(&suite_name(&args.file), &loaded.tests);
        junit::write(&report, out)?;
    }
    let counts = counts(&loaded.tests);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        let json = JsonOut {
            format: loaded.format,
            counts,
            tests: &loaded.tests,
        };
        serde_json::to_writer_pretty(&mut out, &json).context("failed to write JSON")?;
        writeln!(out).context("failed to write JSON")?;
    } else {
        writeln!(out, "{}", counts_line(&counts)).context("failed to write counts")?;
    }
    out.flush().context("failed to write to stdout")?;
    Ok(exit::OK)
}

/// `tests 2487, passed 2415, failed 72, skipped 0, xfail 0, uxsuccess 0`.
pub fn counts_line(c: &Counts) -> String {
    format!(
        "tests {}, passed {}, failed {}, skipped {}, xfail {}, uxsuccess {}",
        c.tests, c.passed, c.failed, c.skipped, c.xfail, c.uxsuccess
    )
}

fn suite_name(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| *s != "-")
        .unwrap_or("results")
        .to_string()
}

/// A small JUnit XML reader: `<testcase>` elements with `<failure>`, `<error>` and
/// `<skipped>` children, wherever they sit under `<testsuites>`/`<testsuite>`.
mod junit_xml {
    use crate::evidence::TestCase;

    /// One piece of markup.
    #[derive(Debug, PartialEq)]
    enum Token<'a> {
        Open {
            name: &'a str,
            attrs: Vec<(&'a str, String)>,
            empty: bool,
        },
        Close(&'a str),
        Text(String),
    }

    /// The test case being read.
    struct Open {
        test: TestCase,
        /// Inside a `<failure>`, `<error>` or `<skipped>` child: its text is the details.
        in_outcome: bool,
    }

    /// Parses a JUnit XML document into test results.
    pub fn parse(text: &str) -> Result<Vec<TestCase>, String> {
        let mut tests = Vec::new();
        let mut current: Option<Open> = None;
        let mut saw_root = false;
        let mut pos = 0;
        while let Some((token, next)) = next_token(text, pos)? {
            pos = next;
            saw_root |= matches!(&token, Token::Open { name, .. }
                if matches!(*name, "testsuites" | "testsuite" | "testcase"));
            apply(token, &mut current, &mut tests)?;
        }
        if let Some(open) = current {
            return Err(format!("`<testcase>` `{}` is not closed", open.test.id));
        }
        if !saw_root {
            return Err("no `<testsuites>`, `<testsuite>` or `<testcase>` element".into());
        }
        Ok(tests)
    }

    fn apply(
        token: Token<'_>,
        current: &mut Option<Open>,
        tests: &mut Vec<TestCase>,
    ) -> Result<(), String> {
        match token {
            Token::Open {
                name: "testcase",
                attrs,
                empty,
            } => {
                if current.is_some() {
                    return Err("`<testcase>` inside another `<testcase>`".into());
                }
                let test = new_case(&attrs)?;
                if empty {
                    tests.push(test);
                } else {
                    *current = Some(Open {
                        test,
                        in_outcome: false,
                    });
                }
            }
            Token::Open { name, attrs, empty } => {
                if let Some(open) = current.as_mut() {
                    outcome(open, name, &attrs, empty);
                }
            }
            Token::Close("testcase") => {
                let open = current.take().ok_or("`</testcase>` without `<testcase>`")?;
                tests.push(open.test);
            }
            Token::Close(name) => {
                if let Some(open) = current.as_mut() {
                    open.in_outcome &= !matches!(name, "failure" | "error" | "skipped");
                }
            }
            Token::Text(text) => {
                if let Some(open) = current.as_mut().filter(|o| o.in_outcome) {
                    append(&mut open.test.details, &text);
                }
            }
        }
        Ok(())
    }

    fn new_case(attrs: &[(&str, String)]) -> Result<TestCase, String> {
        let get = |key: &str| attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
        let name = get("name").ok_or("a `<testcase>` has no `name`")?;
        let id = match get("classname").filter(|c| !c.is_empty()) {
            Some(class) => format!("{class}.{name}"),
            None => name.clone(),
        };
        let duration_ms = get("time")
            .and_then(|t| t.trim().parse::<f64>().ok())
            .map(|secs| secs * 1e3);
        Ok(TestCase {
            id,
            status: "success".into(),
            duration_ms,
            details: None,
        })
    }

    /// A child of a test case: failures and errors fail it, `skipped` skips it; their
    /// `message` and text become the details.
    fn outcome(open: &mut Open, name: &str, attrs: &[(&str, String)], empty: bool) {
        let status = match name {
            "failure" | "error" => "fail",
            "skipped" => "skip",
            _ => return,
        };
        // A failure wins over a skip reported for the same case.
        if open.test.status != "fail" {
            open.test.status = status.into();
        }
        if let Some((_, message)) = attrs.iter().find(|(k, _)| *k == "message") {
            append(&mut open.test.details, message);
        }
        open.in_outcome = !empty;
    }

    fn append(details: &mut Option<String>, text: &str) {
        if text.trim().is_empty() {
            return;
        }
        match details {
            Some(d) => {
                d.push('\n');
                d.push_str(text);
            }
            None => *details = Some(text.to_string()),
        }
    }

    /// The token at `pos` and where the next one starts; `None` at the end.
    fn next_token(text: &str, pos: usize) -> Result<Option<(Token<'_>, usize)>, String> {
        let rest = &text[pos..];
        if rest.is_empty() {
            return Ok(None);
        }
        if !rest.starts_with('<') {
            let end = rest.find('<').map_or(text.len(), |i| pos + i);
            return Ok(Some((Token::Text(unescape(&text[pos..end])), end)));
        }
        let skip = |open: &str, close: &str| -> Result<Option<usize>, String> {
            if !rest.starts_with(open) {
                return Ok(None);
            }
            let end = rest[open.len()..]
                .find(close)
                .ok_or_else(|| format!("`{open}` at byte {pos} is not closed"))?;
            Ok(Some(pos + open.len() + end + close.len()))
        };
        if let Some(end) = skip("<![CDATA[", "]]>")? {
            let inner = &text[pos + 9..end - 3];
            return Ok(Some((Token::Text(inner.to_string()), end)));
        }
        for (open, close) in [("<?", "?>"), ("<!--", "-->"), ("<!", ">")] {
            if let Some(end) = skip(open, close)? {
                return next_token(text, end);
            }
        }
        tag(text, pos).map(Some)
    }

    /// A start, empty or end tag at `pos`.
    fn tag(text: &str, pos: usize) -> Result<(Token<'_>, usize), String> {
        let end = tag_end(text, pos).ok_or_else(|| format!("tag at byte {pos} is not closed"))?;
        let inner = &text[pos + 1..end];
        if let Some(name) = inner.strip_prefix('/') {
            return Ok((Token::Close(name.trim()), end + 1));
        }
        let (inner, empty) = match inner.strip_suffix('/') {
            Some(i) => (i, true),
            None => (inner, false),
        };
        let name_end = inner
            .find(|c: char| c.is_whitespace())
            .unwrap_or(inner.len());
        let name = &inner[..name_end];
        if name.is_empty() {
            return Err(format!("tag without a name at byte {pos}"));
        }
        let attrs = attributes(&inner[name_end..]).map_err(|e| format!("{e} at byte {pos}"))?;
        Ok((Token::Open { name, attrs, empty }, end + 1))
    }

    /// The `>` closing the tag at `pos`, skipping quoted attribute values.
    fn tag_end(text: &str, pos: usize) -> Option<usize> {
        let mut quote: Option<u8> = None;
        for (i, &b) in text.as_bytes()[pos..].iter().enumerate() {
            match (quote, b) {
                (None, b'"' | b'\'') => quote = Some(b),
                (Some(q), _) if q == b => quote = None,
                (None, b'>') => return Some(pos + i),
                _ => {}
            }
        }
        None
    }

    fn attributes(mut s: &str) -> Result<Vec<(&str, String)>, String> {
        let mut attrs = Vec::new();
        loop {
            s = s.trim_start();
            if s.is_empty() {
                return Ok(attrs);
            }
            let eq = s.find('=').ok_or("an attribute without a value")?;
            let key = s[..eq].trim();
            let value = s[eq + 1..].trim_start();
            let quote = value
                .chars()
                .next()
                .filter(|c| matches!(c, '"' | '\''))
                .ok_or("an unquoted attribute value")?;
            let close = value[1..]
                .find(quote)
                .ok_or("an attribute value without its closing quote")?;
            attrs.push((key, unescape(&value[1..1 + close])));
            s = &value[close + 2..];
        }
    }

    /// Replaces the five named entities and numeric character references; anything else
    /// is kept as it is.
    pub fn unescape(s: &str) -> String {
        if !s.contains('&') {
            return s.to_string();
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(amp) = rest.find('&') {
            out.push_str(&rest[..amp]);
            rest = &rest[amp..];
            let decoded = rest
                .find(';')
                .and_then(|semi| entity(&rest[1..semi]).map(|c| (c, semi + 1)));
            match decoded {
                Some((c, len)) => {
                    out.push(c);
                    rest = &rest[len..];
                }
                None => {
                    out.push('&');
                    rest = &rest[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    fn entity(name: &str) -> Option<char> {
        match name {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => {
                let code = match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => name.strip_prefix('#')?.parse().ok()?,
                };
                char::from_u32(code)
            }
        }
    }
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
        let tests = junit_xml::parse(xml).unwrap();
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
            assert!(junit_xml::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn own_junit_round_trips() {
        let mut failing = t("m.C.test_<b>&\"", "fail");
        failing.details = Some("Traceback\nValueError: <no>".into());
        let tests = vec![t("m.C.ok", "success"), failing, t("m.C.s", "skip")];
        let xml = junit::tests_report("r", &tests).to_string().unwrap();
        let back = junit_xml::parse(&xml).unwrap();
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
