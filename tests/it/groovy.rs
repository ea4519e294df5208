//! The Jenkins shared library (`vars/`): the Groovy pipeline harness (`jenkins/test/run`, the
//! demo Jenkinsfile through the steps and this build's `rollci`) and `npm-groovy-lint`
//! (`jenkins/test/lint`), each asserted to exit 0 with its output printed.

use std::path::Path;
use std::process::Command;

use crate::lab::ROOT;

fn run_script(script: &str) {
    let path = Path::new(ROOT).join(script);
    let venv = Path::new(ROOT).join(".venv/bin");
    let out = Command::new(&path)
        .current_dir(ROOT)
        .env("ROLLCI_TEST_BIN", env!("CARGO_BIN_EXE_rollci"))
        .env(
            "PATH",
            format!(
                "{}:{}",
                venv.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .unwrap_or_else(|e| panic!("failed to run `{script}`: {e}"));
    println!(
        "--- {script} -> {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "`{script}` failed");
}

#[test]
fn groovy_pipeline_harness_passes() {
    run_script("jenkins/test/run");
}

#[test]
fn groovy_lint_is_clean() {
    run_script("jenkins/test/lint");
}
