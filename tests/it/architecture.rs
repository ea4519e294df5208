//! The shape of `src/`, read from its text: no import cycle, neither between top-level
//! modules nor between the modules of one folder; no file over 500 lines before its tests;
//! the command line known only to `cli` and `commands`.
//!
//! A module's references are its `crate::…`, `super::…` and `self::…` paths and, in a
//! folder's `mod.rs`, the paths through its declared child modules. An edge joins the two
//! distinct children of the lowest folder both ends share (a folder's `mod.rs` standing
//! for the folder itself), so `a::x → b::y` is `a → b` at the top and `x → y` inside a
//! folder only when `a == b`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::lab::ROOT;

type Module = Vec<String>;

/// The text of every module of `src/` before its tests, by module path.
fn modules() -> BTreeMap<Module, String> {
    let mut found = BTreeMap::new();
    collect(&Path::new(ROOT).join("src"), &mut Vec::new(), &mut found);
    found
}

fn collect(dir: &Path, prefix: &mut Module, found: &mut BTreeMap<Module, String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().to_string();
        let path = entry.path();
        if path.is_dir() {
            prefix.push(name);
            collect(&path, prefix, found);
            prefix.pop();
        } else if let Some(stem) = name.strip_suffix(".rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            let code = match text.find("#[cfg(test)]") {
                Some(at) => text[..at].to_string(),
                None => text,
            };
            let mut module = prefix.clone();
            if !matches!(stem, "mod" | "lib" | "main") {
                module.push(stem.to_string());
            }
            found.insert(module, code);
        }
    }
}

/// Every path the code names from `crate::`, `super::`, `self::` or a declared child.
fn references(module: &Module, code: &str, children: &BTreeSet<String>) -> Vec<Module> {
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for (at, _) in code.char_indices() {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':') {
            continue;
        }
        let rest = &code[at..];
        let (base, tail) = if let Some(t) = rest.strip_prefix("crate::") {
            (Vec::new(), t)
        } else if let Some(t) = rest.strip_prefix("super::") {
            (module[..module.len().saturating_sub(1)].to_vec(), t)
        } else if let Some(t) = rest.strip_prefix("self::") {
            (module.clone(), t)
        } else if let Some(child) = children
            .iter()
            .find(|c| rest.starts_with(&format!("{c}::")))
        {
            let mut base = module.clone();
            base.push(child.clone());
            (base, &rest[child.len() + 2..])
        } else {
            continue;
        };
        expand(base, tail, &mut out);
    }
    out
}

/// Reads `a::b::{c, d::e}` after a base path into full paths (`self` is the prefix).
fn expand(mut path: Module, text: &str, out: &mut Vec<Module>) {
    let mut rest = text;
    loop {
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if let Some(group) = rest.strip_prefix('{') {
            for item in split_group(group) {
                match item.trim() {
                    "self" | "" => out.push(path.clone()),
                    item => expand(path.clone(), item, out),
                }
            }
            return;
        }
        if ident.is_empty() {
            out.push(path);
            return;
        }
        path.push(ident.clone());
        rest = &rest[ident.len()..];
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => {
                out.push(path);
                return;
            }
        }
    }
}

/// The top-level comma-separated items of a `{…}` group (its opening brace already read).
fn split_group(text: &str) -> Vec<&str> {
    let (mut depth, mut start, mut items) = (0, 0, Vec::new());
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&text[start..i]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items
}

/// The longest known module a path starts with.
fn resolve(path: &Module, known: &BTreeMap<Module, String>) -> Module {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| known.contains_key(m))
        .unwrap_or_default()
}

/// Edges per folder: `folder → {(from child, to child)}`; `"."` stands for the folder.
fn edges(known: &BTreeMap<Module, String>) -> BTreeMap<Module, BTreeSet<(String, String)>> {
    let mut graph: BTreeMap<Module, BTreeSet<(String, String)>> = BTreeMap::new();
    for (module, code) in known {
        let children: BTreeSet<String> = known
            .keys()
            .filter(|k| k.len() == module.len() + 1 && k.starts_with(module))
            .map(|k| k.last().unwrap().clone())
            .collect();
        for target in references(module, code, &children) {
            let target = resolve(&target, known);
            if &target == module {
                continue;
            }
            let shared = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            let side = |m: &Module| m.get(shared).cloned().unwrap_or_else(|| ".".into());
            let pair = (side(module), side(&target));
            graph
                .entry(module[..shared].to_vec())
                .or_default()
                .insert(pair);
        }
    }
    graph
}

/// A cycle in a folder's graph, as the names along it.
fn cycle(pairs: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in pairs {
        next.entry(a).or_default().push(b);
    }
    fn visit<'a>(
        node: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| *n == node) {
            let mut found: Vec<String> = stack[at..].iter().map(|s| s.to_string()).collect();
            found.push(node.to_string());
            return Some(found);
        }
        if !done.insert(node) {
            return None;
        }
        stack.push(node);
        for n in next.get(node).into_iter().flatten() {
            if let Some(found) = visit(n, next, stack, done) {
                return Some(found);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    next.keys()
        .find_map(|n| visit(n, &next, &mut Vec::new(), &mut done))
}

#[test]
fn src_has_no_import_cycle_at_any_level() {
    let known = modules();
    assert!(known.len() > 40, "read only {} modules", known.len());
    let mut cycles = Vec::new();
    for (folder, pairs) in edges(&known) {
        if let Some(found) = cycle(&pairs) {
            cycles.push(format!(
                "in `crate::{}`: {}",
                folder.join("::"),
                found.join(" → ")
            ));
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_sees_a_cycle_it_is_shown() {
    let mut known = BTreeMap::new();
    known.insert(vec![], String::new());
    known.insert(
        vec!["a".to_string()],
        "mod x;\nuse crate::b::f;".to_string(),
    );
    known.insert(
        vec!["a".into(), "x".into()],
        "use super::y::{self, g};".into(),
    );
    known.insert(
        vec!["a".into(), "y".into()],
        "fn h() { super::x::k() }".into(),
    );
    known.insert(vec!["b".to_string()], "use crate::{c, a::x};".into());
    known.insert(vec!["c".to_string()], String::new());
    let graph = edges(&known);
    let top = cycle(&graph[&Vec::<String>::new()]).expect("a → b → a");
    assert_eq!(top.first(), top.last());
    assert!(graph[&Vec::<String>::new()].contains(&("b".into(), "c".into())));
    let inner = cycle(&graph[&vec!["a".to_string()]]).expect("x → y → x");
    assert_eq!(inner.len(), 3, "{inner:?}");
}

#[test]
fn no_file_is_over_500_lines_before_its_tests() {
    let long: Vec<String> = modules()
        .iter()
        .filter(|(_, code)| code.lines().count() > 500)
        .map(|(m, code)| format!("crate::{} ({} lines)", m.join("::"), code.lines().count()))
        .collect();
    assert!(long.is_empty(), "too long: {}", long.join(", "));
}

#[test]
fn only_the_commands_know_the_command_line() {
    let known = modules();
    let allowed = |m: &Module| m.is_empty() || m[0] == "cli" || m[0] == "commands";
    let offenders: Vec<String> = known
        .iter()
        .filter(|(m, code)| !allowed(m) && code.contains("crate::cli"))
        .map(|(m, _)| format!("crate::{}", m.join("::")))
        .collect();
    assert!(
        offenders.is_empty(),
        "import `cli`: {}",
        offenders.join(", ")
    );
}
