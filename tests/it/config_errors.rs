//! Bad lab files: a clear error naming the file, the line and the key, and exit code 2.

use crate::lab::{Lab, demo_text, unique_block};

fn error_for(text: &str) -> (Lab, String) {
    let lab = Lab::with_text(text);
    let out = lab.expect(&["provision"], 2);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !lab.workspace().exists(),
        "a bad config touched the workspace"
    );
    (lab, stderr)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let text = demo_text(unique_block()).replace("retries = 4", "retries = 4\nretires = 2");
    let (lab, err) = error_for(&text);
    let expected = format!("{}:{}", lab.config.display(), line_of(&text, "retires = 2"));
    assert!(err.contains(&expected), "{err}");
    assert!(err.contains("unknown field `retires`"), "{err}");
}

#[test]
fn wrong_type_names_file_line_and_key() {
    let text = demo_text(unique_block()).replace("nodes = 3", "nodes = \"three\"");
    let (lab, err) = error_for(&text);
    let expected = format!(
        "{}:{}",
        lab.config.display(),
        line_of(&text, "nodes = \"three\"")
    );
    assert!(err.contains(&expected), "{err}");
    assert!(err.contains("`provider.nodes`"), "{err}");
}

#[test]
fn missing_required_field_names_it() {
    let text = demo_text(unique_block()).replace("to_release = \"B\"\n", "");
    let (lab, err) = error_for(&text);
    assert!(err.contains(&format!("{}:", lab.config.display())), "{err}");
    assert!(err.contains("missing field `to_release`"), "{err}");
    assert!(err.contains("`lab`"), "{err}");
}

#[test]
fn bad_value_and_inconsistent_upgrade_are_reported() {
    let text = demo_text(unique_block())
        .replace("on_failure = \"virtual\"", "on_failure = \"everything\"");
    let (_, err) = error_for(&text);
    assert!(err.contains("on_failure"), "{err}");
    assert!(err.contains("unknown variant `everything`"), "{err}");
    let text = demo_text(unique_block()).replace("mode = \"rolling\"", "mode = \"all-at-once\"");
    let (lab, err) = error_for(&text);
    assert!(err.contains(&format!("{}:", lab.config.display())), "{err}");
    assert!(err.contains("`upgrade.action`: missing"), "{err}");
}

#[test]
fn missing_lab_file_is_a_usage_error() {
    let lab = Lab::with_text("");
    std::fs::remove_file(&lab.config).unwrap();
    let out = lab.expect(&["deploy"], 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read lab file"));
}

/// What a hostile user (or a Jenkins parameter) puts in a field: shell metacharacters,
/// quotes, a newline, a path out of the workspace, a NUL, 10,000 characters.
fn hostile_values() -> Vec<(&'static str, String)> {
    vec![
        ("shell", "a;rm -rf /tmp/x$(id)`id`|&".into()),
        ("quotes", "a'b\\\"c".into()),
        ("newline", "a\\nb".into()),
        ("dotdot", "../../etc/passwd".into()),
        ("nul", "a\\u0000b".into()),
        ("long", "n".repeat(10_000)),
    ]
}

/// Every name of the lab file (they become file names, inventory keys, Jenkins stage names
/// and cloud resource names) refuses each hostile value, naming the file, the line and
/// the key, before anything is created.
#[test]
fn hostile_names_are_refused_naming_the_field_in_every_name_field() {
    let base = demo_text(unique_block());
    let fields = [
        ("lab.name", "name = \"demo\""),
        ("provision.host", "name = \"prepare-host\""),
        ("deploy.actions", "name = \"deploy\""),
        ("verify.actions", "name = \"verify\""),
        ("persistent", "name = \"record-alpha\""),
        ("upgrade.components", "name = \"node1\""),
        ("probes", "name = \"api\""),
    ];
    for (key, line) in fields {
        assert!(base.contains(line), "{line} not in the demo lab");
        for (what, value) in hostile_values() {
            let text = base.replacen(line, &format!("name = \"{value}\""), 1);
            let (lab, err) = error_for(&text);
            let at = format!("{}:", lab.config.display());
            assert!(
                err.contains(key),
                "{key} / {what}: the key is not named: {err}"
            );
            assert!(
                err.contains(&at),
                "{key} / {what}: the file is not named: {err}"
            );
            assert!(
                err.len() < 2_000,
                "{key} / {what}: the error repeats the value whole"
            );
        }
    }
}

/// Releases are carried literally (see `pipeline::shell_metacharacters_in_releases_arrive_
/// literally`), except what no process can carry: a NUL, a newline, 10,000 characters are
/// refused naming the key (lab file) or the flag (command line, Jenkins parameter).
#[test]
fn releases_no_process_can_carry_are_refused_naming_the_key_or_the_flag() {
    let base = demo_text(unique_block());
    for (what, value) in hostile_values() {
        if !["newline", "nul", "long"].contains(&what) {
            continue;
        }
        let text = base.replacen(
            "from_release = \"A\"",
            &format!("from_release = \"{value}\""),
            1,
        );
        let (lab, err) = error_for(&text);
        let expected = format!(
            "{}:{}",
            lab.config.display(),
            line_of(&text, &format!("from_release = \"{}", &value[..1]))
        );
        assert!(err.contains(&expected), "{what}: {err}");
        assert!(err.contains("`lab.from_release`"), "{what}: {err}");
    }
    let lab = Lab::demo("");
    let out = lab.expect(&["--to-release", "B\nforged: line", "provision"], 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--to-release (or ROLLCI_TO_RELEASE)"), "{err}");
    assert!(
        !lab.workspace().exists(),
        "a bad release touched the workspace"
    );
}

/// A lab file that is not UTF-8 names the line and column of its first bad byte.
#[test]
fn a_lab_file_that_is_not_utf8_names_the_line() {
    let lab = Lab::demo("");
    let mut bytes = std::fs::read(&lab.config).unwrap();
    let at = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
    bytes.splice(at..at, b"# caf\xe9\n".iter().copied());
    std::fs::write(&lab.config, bytes).unwrap();
    let out = lab.expect(&["provision"], 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:2: not UTF-8 text (byte 0xe9 at column 6)",
            lab.config.display()
        )),
        "{err}"
    );
}
