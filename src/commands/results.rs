//! `rollci results FILE [--junit OUT] [--json]`: a faster `subunit2junitxml`.

use std::io::Write;
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
        eprintln!("note: {note}");
    }
    if let Some(out) = &args.junit {
        junit::write_tests(&suite_name(&args.file), &loaded.tests, out)?;
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

fn suite_name(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| *s != "-")
        .unwrap_or("results")
        .to_string()
}
