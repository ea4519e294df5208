//! Property tests of what reads hostile input: the subunit v2 parser (random and mutated
//! streams never panic; valid ones count like python-subunit's `subunit-stats`), the JUnit
//! reader (never panics; what rollci writes reads back the same), the escapes (Groovy and
//! XML literals mean exactly their value), and the lab-file parser (never panics; every
//! error names the file and a line). Bounded case counts keep CI quick; a failure proptest
//! finds is saved under `tests/it/properties.proptest-regressions` and replayed first.

use std::io::Write;
use std::process::{Command, Stdio};

use proptest::prelude::*;
use rollci::results::subunit::{self, Packet, Status, Timestamp, write};
use rollci::templates::escape;
use rollci::workspace::evidence::TestCase;

use crate::lab::ROOT;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/it/properties.proptest-regressions"
            )),
        )),
        ..ProptestConfig::default()
    }
}

const STATUSES: [Status; 5] = [
    Status::Success,
    Status::Fail,
    Status::Skip,
    Status::XFail,
    Status::UxSuccess,
];

/// A test of a generated stream: its id, final status and an optional attachment.
fn a_test() -> impl Strategy<Value = (String, usize, Option<Vec<u8>>)> {
    (
        "[a-zA-Z0-9_.\\[\\]-]{1,40}",
        0..STATUSES.len(),
        // Text, as its MIME type says: subunit-stats dies on a traceback that is not UTF-8.
        proptest::option::of("\\PC{0,100}".prop_map(String::into_bytes)),
    )
}

/// The bytes python-subunit would write for these tests: inprogress, an attachment, the
/// final status; `noise` between packets as a test runner's own prints.
fn stream(tests: &[(String, usize, Option<Vec<u8>>)], noise: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (id, status, file)) in tests.iter().enumerate() {
        let at = Timestamp {
            secs: 1_800_000_000 + i as u32,
            nanos: 0,
        };
        out.extend(write::packet(&Packet {
            status: Some(Status::InProgress),
            test_id: Some(id),
            timestamp: Some(at),
            ..Default::default()
        }));
        if !noise.contains(&subunit::SIGNATURE) {
            out.extend_from_slice(noise);
        }
        if let Some(bytes) = file {
            out.extend(write::packet(&Packet {
                test_id: Some(id),
                mime_type: Some("text/plain;charset=utf8"),
                file: Some(("traceback", bytes)),
                eof: true,
                ..Default::default()
            }));
        }
        out.extend(write::packet(&Packet {
            status: Some(STATUSES[*status]),
            test_id: Some(id),
            timestamp: Some(at),
            ..Default::default()
        }));
    }
    out
}

fn subunit_stats(bytes: &[u8]) -> Option<String> {
    let tool = format!("{ROOT}/.venv/bin/subunit-stats");
    let mut child = Command::new(&tool)
        .arg("--no-passthrough")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn stat(report: &str, label: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` in {report}"))
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn random_bytes_never_panic_the_subunit_parser(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let parsed = subunit::parse(&bytes);
        prop_assert!(parsed.packets <= bytes.len());
    }

    #[test]
    fn mutated_valid_streams_never_panic_and_lose_no_intact_test(
        tests in proptest::collection::vec(a_test(), 1..8),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = stream(&tests, b"");
        for (at, value) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= value | 1;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let parsed = subunit::parse(&bytes);
        // Every final result comes from some packet, or is the parser's own failure.
        let results = parsed.tests.iter().filter(|t| t.id != "subunit.parser").count();
        prop_assert!(results <= 3 * tests.len());
    }
}

proptest! {
    #![proptest_config(config(24))]

    /// The counts of a valid stream equal python-subunit's own (`subunit-stats`).
    #[test]
    fn valid_streams_count_like_subunit_stats(
        tests in proptest::collection::vec(a_test(), 0..12),
        noise in "\\PC{0,20}",
    ) {
        // Text between packets, as a runner prints it: python-subunit decodes that output
        // as UTF-8 and swallows a packet's signature byte when the output ends in a
        // truncated character (see the test below), so random bytes would compare its bug.
        let bytes = stream(&tests, noise.as_bytes());
        let counts = rollci::results::counts(&subunit::parse(&bytes).tests);
        let Some(report) = subunit_stats(&bytes) else {
            panic!("subunit-stats is missing: `make test-deps` installs it in .venv");
        };
        prop_assert_eq!(counts.tests, stat(&report, "Total tests:"));
        prop_assert_eq!(counts.passed + counts.xfail + counts.uxsuccess, stat(&report, "Passed tests:"));
        prop_assert_eq!(counts.failed, stat(&report, "Failed tests:"));
        prop_assert_eq!(counts.skipped, stat(&report, "Skipped tests:"));
    }
}

/// Found by the property above: output ending in a UTF-8 lead byte (0xCF) just before a
/// packet makes python-subunit read the signature 0xB3 as the character's second byte
/// (U+03F3) and lose the packet: subunit-stats reports the test as failed (never
/// finished). rollci keeps the packet, whose CRC proves it intact, and the test passed.
#[test]
fn a_packet_after_a_truncated_utf8_character_is_kept() {
    let tests = [("t".to_string(), 0, None)];
    let bytes = stream(&tests, b"i0\xcf");
    let counts = rollci::results::counts(&subunit::parse(&bytes).tests);
    assert_eq!((counts.tests, counts.passed, counts.failed), (1, 1, 0));
    let report = subunit_stats(&bytes).expect("subunit-stats in .venv");
    assert_eq!(
        stat(&report, "Failed tests:"),
        1,
        "python-subunit's own reading: {report}"
    );
}

fn test_case() -> impl Strategy<Value = TestCase> {
    (
        "\\PC{1,30}",
        prop::sample::select(vec!["success", "fail", "skip"]),
        proptest::option::of("[^\u{0}-\u{8}\u{b}\u{c}\u{e}-\u{1f}\u{fffe}\u{ffff}]{0,80}"),
    )
        .prop_map(|(id, status, details)| TestCase {
            id: id.trim().to_string().replace(['\r'], "") + "x",
            status: status.into(),
            duration_ms: None,
            details: details.filter(|d| status != "success" && !d.trim().is_empty()),
        })
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn random_text_never_panics_the_junit_reader(text in "\\PC{0,400}", xml in "(<[a-z/ =\"]{0,12}>|&[a-z#0-9]{0,5};?|[a-z ]{0,8}){0,40}") {
        let _ = rollci::results::junit::parse(&text);
        let _ = rollci::results::junit::parse(&format!("<testsuite>{xml}</testsuite>"));
    }

    /// What rollci writes as JUnit reads back as the same tests and statuses.
    #[test]
    fn junit_written_by_rollci_reads_back(tests in proptest::collection::vec(test_case(), 0..10)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.xml");
        rollci::reports::junit::stream::write_tests("suite", &tests, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let back = rollci::results::junit::parse(&text).unwrap();
        prop_assert_eq!(back.len(), tests.len());
        for (a, b) in tests.iter().zip(&back) {
            prop_assert_eq!(&a.status, &b.status);
            prop_assert!(b.id.ends_with(a.id.rsplit('.').next().unwrap()), "{} vs {}", a.id, b.id);
        }
    }

    /// A Groovy single-quoted literal: nothing in it can end it or start an interpolation,
    /// and undoing the escapes gives the value back.
    #[test]
    fn groovy_literals_mean_exactly_their_value(value in "\\PC{0,60}|[\\\\'$\n\r\t<\u{2028}\u{0}]{0,20}") {
        let inner = escape::groovy_content(&value);
        prop_assert!(!inner.contains('\n') && !inner.contains('\r') && !inner.contains('<'));
        prop_assert_eq!(unescape_groovy(&inner), value);
    }

    /// XML text: parsed back by quick-xml it is the value, whatever the value.
    #[test]
    fn xml_text_means_exactly_its_value(value in "\\PC{0,60}|[&<>\"'\r\n\t]{0,20}") {
        if let Ok(text) = escape::xml_text(&value) {
            let back = quick_xml::escape::unescape(&text).unwrap();
            prop_assert_eq!(back.as_ref(), value.as_str());
            prop_assert!(!text.contains('<') && !text.contains('"'));
        }
    }

    /// The lab-file parser never panics, and every error names the file and a line.
    #[test]
    fn the_lab_parser_never_panics_and_errors_name_a_line(
        name in "\\PC{0,30}",
        nodes in "[0-9a-z\"-]{0,4}",
        extra in prop::sample::select(vec!["", "port = -1", "[[probes]]\nname = \"p\"\nurl = 3", "[verify.rally]\ncommand = []", "x = {", "[[upgrade.components]]\nname = \"../x\"\ncommand = [\"true\"]"]),
    ) {
        let text = format!(
            "[lab]\nname = {name:?}\nfrom_release = \"A\"\nto_release = \"B\"\n[provider]\nkind = \"local\"\nnodes = {nodes}\n[upgrade]\nmode = \"rolling\"\n[[upgrade.components]]\nname = \"c\"\ncommand = [\"true\"]\n{extra}\n"
        );
        if let Err(err) = rollci::config::Config::parse(&text, std::path::Path::new("lab.toml")) {
            let said = err.to_string();
            prop_assert!(said.starts_with("lab.toml:"), "{}", said);
            let line: Option<usize> = said["lab.toml:".len()..].split(':').next().and_then(|n| n.parse().ok());
            prop_assert!(line.is_some_and(|n| n >= 1 && n <= text.lines().count() + 1), "{}", said);
        }
    }
}

/// Groovy's single-quoted string escapes, for the escapes `groovy_content` writes.
fn unescape_groovy(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}
