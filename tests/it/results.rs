//! `rollci results` on real subunit v2 streams made by python-subunit and stestr (and the
//! shared tempest stream): counts equal to `subunit-stats`, JUnit readable, edge cases.

use std::path::{Path, PathBuf};
use std::process::Command as Std;

use assert_cmd::Command;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const TEMPEST: &str = "/work/shared/data/tempest-unit.subunit";

/// A tiny unittest module with every outcome, a class-level setup error and output.
const MODULE: &str = r#"
import sys, unittest
class Mixed(unittest.TestCase):
    def test_pass(self):
        print("hello from stdout")
    def test_fail(self):
        self.assertEqual(1, 2)
    def test_error(self):
        raise ValueError("boom <&>")
    @unittest.skip("not today")
    def test_skip(self):
        pass
    @unittest.expectedFailure
    def test_xfail(self):
        self.assertEqual(1, 2)
    @unittest.expectedFailure
    def test_uxsuccess(self):
        pass
    def test_stderr(self):
        sys.stderr.write("to stderr\n")
    def test_unicode(self):
        print("3 m\u00b3 of output")
class BrokenSetup(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        raise RuntimeError("class setup failed")
    def test_never_runs(self):
        pass
"#;

fn venv(tool: &str) -> PathBuf {
    Path::new(ROOT).join(".venv/bin").join(tool)
}

/// A temp dir holding the test module.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("test_mixed.py"), MODULE).unwrap();
    let conf = "[DEFAULT]\ntest_path=.\ntop_dir=.\n";
    std::fs::write(dir.path().join(".stestr.conf"), conf).unwrap();
    dir
}

/// Runs a venv tool in `dir` and returns its stdout.
fn tool(dir: &Path, name: &str, args: &[&str]) -> Vec<u8> {
    let out = Std::new(venv(name))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success() || name == "subunit-stats",
        "{name}: {out:?}"
    );
    out.stdout
}

/// The stream `python -m subunit.run test_mixed` writes (test stdout interleaved).
fn subunit_run(dir: &Path) -> PathBuf {
    let bytes = tool(dir, "python", &["-m", "subunit.run", "test_mixed"]);
    let path = dir.join("run.subunit");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// What `subunit-stats` prints for a stream: total, passed, failed, skipped.
fn subunit_stats(stream: &Path) -> [u64; 4] {
    let out = Std::new(venv("subunit-stats"))
        .stdin(std::fs::File::open(stream).unwrap())
        .output()
        .unwrap();
    // It passes non-subunit output through first, so look for the labels anywhere.
    let text = String::from_utf8_lossy(&out.stdout);
    let number = |label: &str| -> u64 {
        let at = text
            .find(label)
            .unwrap_or_else(|| panic!("{label}: {text}"))
            + label.len();
        let digits: String = text[at..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    };
    [
        "Total tests:",
        "Passed tests:",
        "Failed tests:",
        "Skipped tests:",
    ]
    .map(number)
}

fn rollci(args: &[&str]) -> std::process::Output {
    Command::cargo_bin("rollci")
        .unwrap()
        .args(args)
        .output()
        .unwrap()
}

fn results_json(stream: &Path) -> Value {
    let out = rollci(&["results", stream.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// rollci's counts in subunit-stats' terms (it counts xfail and uxsuccess as passed).
fn as_stats(json: &Value) -> [u64; 4] {
    let c = |k: &str| json["counts"][k].as_u64().unwrap();
    [
        c("tests"),
        c("passed") + c("xfail") + c("uxsuccess"),
        c("failed"),
        c("skipped"),
    ]
}

fn assert_same_counts(stream: &Path) -> Value {
    let json = results_json(stream);
    assert_eq!(
        as_stats(&json),
        subunit_stats(stream),
        "{}",
        stream.display()
    );
    json
}

fn status_of<'a>(json: &'a Value, id: &str) -> &'a str {
    let tests = json["tests"].as_array().unwrap();
    let test = tests.iter().find(|t| t["id"] == id);
    test.unwrap_or_else(|| panic!("no {id}"))["status"]
        .as_str()
        .unwrap()
}

#[test]
fn subunit_run_stream_counts_like_subunit_stats() {
    let dir = project();
    let json = assert_same_counts(&subunit_run(dir.path()));
    let c = &json["counts"];
    assert_eq!(c["tests"], 9);
    assert_eq!(
        (c["failed"].as_u64(), c["skipped"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(
        (c["xfail"].as_u64(), c["uxsuccess"].as_u64()),
        (Some(1), Some(1))
    );
    // The class-level setup error is one failing test named after the class.
    assert_eq!(
        status_of(&json, "setUpClass (test_mixed.BrokenSetup)"),
        "fail"
    );
    let tests = json["tests"].as_array().unwrap();
    let error = tests
        .iter()
        .find(|t| t["id"] == "test_mixed.Mixed.test_error")
        .unwrap();
    assert!(
        error["details"]
            .as_str()
            .unwrap()
            .contains("ValueError: boom <&>")
    );
    let skip = tests
        .iter()
        .find(|t| t["id"] == "test_mixed.Mixed.test_skip")
        .unwrap();
    assert_eq!(skip["details"], "not today");
}

#[test]
fn stestr_streams_count_like_subunit_stats() {
    let dir = project();
    let run = tool(
        dir.path(),
        "stestr",
        &["run", "--subunit", "--concurrency", "2"],
    );
    let last = tool(dir.path(), "stestr", &["last", "--subunit"]);
    for (name, bytes) in [("run", run), ("last", last)] {
        let path = dir.path().join(format!("{name}.subunit"));
        std::fs::write(&path, bytes).unwrap();
        let json = assert_same_counts(&path);
        assert_eq!(json["counts"]["tests"], 9, "{name}");
    }
}

#[test]
fn same_id_twice_and_text_garbage_count_like_subunit_stats() {
    let dir = project();
    let stream = std::fs::read(subunit_run(dir.path())).unwrap();
    let mut doubled = b"runner banner\n".to_vec();
    doubled.extend_from_slice(&stream);
    doubled.extend_from_slice(b"\x01 noise between runs \xff\xfe\n");
    doubled.extend_from_slice(&stream);
    doubled.extend_from_slice(b"trailing text");
    let path = dir.path().join("doubled.subunit");
    std::fs::write(&path, doubled).unwrap();
    let json = assert_same_counts(&path);
    // Every final status is a result, as in subunit-stats: the doubled id counts twice.
    assert_eq!(json["counts"]["tests"], 18);
}

#[test]
fn truncated_stream_fails_the_torn_test_like_subunit_stats() {
    let dir = project();
    let stream = std::fs::read(subunit_run(dir.path())).unwrap();
    // A runner killed mid-write: the stream ends in the first 12 bytes of a packet.
    let first = stream.iter().position(|&b| b == 0xB3).unwrap();
    let mut torn = stream.clone();
    torn.extend_from_slice(&stream[first..first + 12]);
    let path = dir.path().join("torn.subunit");
    std::fs::write(&path, torn).unwrap();
    let json = assert_same_counts(&path);
    assert_eq!(status_of(&json, "subunit.parser"), "fail");
}

#[test]
fn tempest_stream_has_2487_tests_72_failing() {
    let stream = Path::new(TEMPEST);
    let json = assert_same_counts(stream);
    assert_eq!(json["counts"]["tests"], 2487);
    assert_eq!(json["counts"]["failed"], 72);
    let out = rollci(&["results", TEMPEST]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        "tests 2487, passed 2415, failed 72, skipped 0, xfail 0, uxsuccess 0"
    );
}

/// Test cases, failures (incl. errors) and skips in a JUnit file, read by Python's parser
/// (which also proves the file is well-formed XML).
fn junit_counts(xml: &Path) -> [u64; 3] {
    let script = r#"
import sys, xml.etree.ElementTree as E
text = open(sys.argv[1], 'rb').read()
root = E.fromstring(text[text.index(b'<'):])
cases = list(root.iter('testcase'))
bad = sum(1 for c in cases if c.find('failure') is not None or c.find('error') is not None)
skip = sum(1 for c in cases if c.find('skipped') is not None)
print(len(cases), bad, skip)
"#;
    let out = Std::new(venv("python"))
        .args(["-c", script, xml.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let n: Vec<u64> = text
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    [n[0], n[1], n[2]]
}

#[test]
fn junit_output_matches_subunit2junitxml_and_reads_back() {
    let dir = project();
    let stream = subunit_run(dir.path());
    let ours = dir.path().join("ours.xml");
    let out = rollci(&[
        "results",
        stream.to_str().unwrap(),
        "--junit",
        ours.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let theirs = dir.path().join("theirs.xml");
    let xml = Std::new(venv("subunit2junitxml"))
        .stdin(std::fs::File::open(&stream).unwrap())
        .output()
        .unwrap();
    std::fs::write(&theirs, xml.stdout).unwrap();
    assert_eq!(junit_counts(&ours), junit_counts(&theirs));
    // Both JUnit files read back into the same counts (xfail reads back as a pass).
    let back = |p: &Path| results_json(p)["counts"].clone();
    assert_eq!(back(&ours), back(&theirs));
    assert_eq!(back(&ours)["failed"], 4);
}

#[test]
fn stdin_is_read_with_a_dash() {
    let out = Command::cargo_bin("rollci")
        .unwrap()
        .args(["results", "-", "--json"])
        .pipe_stdin(TEMPEST)
        .unwrap()
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["counts"]["tests"], 2487);
}

#[test]
fn malformed_files_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 4] = [
        ("empty.subunit", b"", "is empty"),
        (
            "text.log",
            b"just a log\n",
            "neither a subunit v2 stream nor JUnit XML",
        ),
        (
            "bad.xml",
            b"<testsuite><testcase name='x'>",
            "not valid JUnit XML",
        ),
        (
            "junk.subunit",
            b"\xb3\x28\x03\x0c\x03foo\0\0\0\0",
            "bad checksum",
        ),
    ];
    for (name, body, message) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        let out = rollci(&["results", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(message) && err.contains(name), "{name}: {err}");
    }
}
