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
