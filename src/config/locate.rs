//! Where a key of the lab file is: the line a deserialization error or a validation
//! problem points at.

use std::path::Path;

/// Turns a deserialization error into `file:line: `key`: message`.
pub(super) fn describe_error(
    text: &str,
    path: &Path,
    err: &serde_path_to_error::Error<toml::de::Error>,
) -> String {
    let mut key = err.path().to_string();
    let inner = err.inner();
    let line = inner
        .span()
        .map(|span| line_at(text, span.start))
        .unwrap_or_else(|| line_of_key(text, &key));
    // Internally tagged tables (`[provider]`) hide the last key from the path: the
    // offending line names it.
    let assigned = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim());
    if let Some(name) = assigned.filter(|k| !k.is_empty() && !key.ends_with(*k)) {
        key = if key == "." {
            name.to_string()
        } else {
            format!("{key}.{name}")
        };
    }
    let message = inner.message().trim_end();
    if key == "." || key.is_empty() {
        format!("{}:{line}: {message}", path.display())
    } else {
        format!("{}:{line}: `{key}`: {message}", path.display())
    }
}

/// 1-based line number of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Best-effort line of a key path (`upgrade.components[1]`, `lab.name`): the `[[table]]`
/// header of that index, the `[table]` header, or the `key =` line; else its parent's line.
pub(super) fn line_of_key(text: &str, key: &str) -> usize {
    let mut path = key.to_string();
    loop {
        if let Some(line) = find_key(text, &path) {
            return line;
        }
        match path.rfind(['.', '[']) {
            Some(cut) => path.truncate(cut),
            None => return 1,
        }
    }
}

fn find_key(text: &str, path: &str) -> Option<usize> {
    let (table, index) = match path.strip_suffix(']').and_then(|p| p.rsplit_once('[')) {
        Some((table, index)) => (table, index.parse::<usize>().ok()),
        None => (path, None),
    };
    let headers = text.lines().enumerate().filter(|(_, l)| {
        let l = l.trim();
        l.starts_with('[') && l.trim_matches(['[', ']']).trim() == table
    });
    if let Some((line, _)) = headers.clone().nth(index.unwrap_or(0)) {
        return Some(line + 1);
    }
    let (parent, leaf) = table.rsplit_once('.').unwrap_or(("", table));
    let in_parent = |l: &str| l.split('=').next().is_some_and(|k| k.trim() == leaf);
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.starts_with('[') {
            current = l.trim_matches(['[', ']']).trim().to_string();
        } else if current == parent && in_parent(l) {
            return Some(i + 1);
        }
    }
    None
}

/// A lab file that is not UTF-8: where its first bad byte is.
pub fn not_utf8(path: &Path, bytes: &[u8], err: std::str::Utf8Error) -> String {
    let good = &bytes[..err.valid_up_to()];
    let line = good.iter().filter(|b| **b == b'\n').count() + 1;
    let column = good.len() - good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) + 1;
    format!(
        "{}:{line}: not UTF-8 text (byte 0x{:02x} at column {column}); a lab file is UTF-8",
        path.display(),
        bytes[err.valid_up_to()]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const TEXT: &str = "[lab]\nname = \"x\"\n\n[[deploy.actions]]\nname = \"a\"\n\n[[deploy.actions]]\nname = \"b\"\n\n[upgrade]\nmode = \"rolling\"\n";

    #[test]
    fn key_lines_are_found_by_index_and_parent() {
        assert_eq!(line_of_key(TEXT, "lab.name"), 2);
        assert_eq!(line_of_key(TEXT, "deploy.actions[0]"), 4);
        assert_eq!(line_of_key(TEXT, "deploy.actions[1]"), 7);
        assert_eq!(line_of_key(TEXT, "upgrade.mode"), 11);
        assert_eq!(
            line_of_key(TEXT, "upgrade.components"),
            10,
            "falls back to the parent table"
        );
        assert_eq!(line_of_key(TEXT, "nothing.here"), 1);
    }

    #[test]
    fn an_action_with_both_playbook_and_command_is_refused_with_its_line() {
        let text = format!(
            "{}\n[[deploy.actions]]\nname = \"c\"\nplaybook = \"p.yml\"\ncommand = [\"true\"]\n",
            "[lab]\nname = \"x\"\nfrom_release = \"A\"\nto_release = \"B\"\n[provider]\nkind = \"local\"\n[upgrade]\nmode = \"all-at-once\"\naction = { name = \"u\", command = [\"true\"] }\n"
        );
        let err = Config::parse(&text, Path::new("lab.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("lab.toml:11: `deploy.actions[0]`: set either"),
            "{err}"
        );
    }
}
