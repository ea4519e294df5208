//! `rollci results FILE [--junit OUT] [--json]`: a faster `subunit2junitxml`.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::cli::ResultsArgs;
use crate::exit;
use crate::reports::junit;
use crate::results::{Format, counts, counts_line, load};
use crate::workspace::evidence::{Counts, TestCase};

#[derive(Serialize)]
struct JsonOut<'a> {
    format: Format,
    counts: Counts,
    tests: &'a [TestCase],
}

/// `rollci results FILE [--junit OUT] [--json]`: converts and counts; exits 0 even when
/// tests failed (it is a converter).
pub fn run(args: &ResultsArgs) -> anyhow::Result<u8> {
    let loaded = load(&args.file)?;
    for note in &loaded.notes {
        crate::say_err!("note: {note}");
    }
    if let Some(out) = &args.junit {
        junit::write_tests(&suite_name(&args.file), &loaded.tests, out)?;
    }
    let counts = counts(&loaded.tests);
    // A reader that stops early (`| head`) ends the command quietly: it only reads.
    if args.json {
        let json = JsonOut {
            format: loaded.format,
            counts,
            tests: &loaded.tests,
        };
        let mut text = serde_json::to_vec_pretty(&json).context("failed to encode JSON")?;
        text.push(b'\n');
        crate::console::out_bytes(&text);
    } else {
        crate::say!("{}", counts_line(&counts));
    }
    Ok(exit::OK)
}

fn suite_name(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| *s != "-")
        .unwrap_or("results")
        .to_string()
}
