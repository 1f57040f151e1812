//! The shape of the crate, checked: dependencies between top-level modules go one way, and the
//! cores (state and math) do no I/O and know nothing of the shell. Read from the `use
//! crate::…` paths of `src/` (comments and test code left out), so that a change that breaks
//! the shape fails `cargo test`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules holding state and math only.
const CORES: &[&str] = &[
    "base",
    "event",
    "projection",
    "sla",
    "clustering",
    "recurring",
    "staffing",
];

/// What a core may not name: I/O, the wall clock, the runtime, and the shell's modules.
const FORBIDDEN_IN_CORES: &[&str] = &[
    "tokio::",
    "reqwest::",
    "std::fs",
    "std::net",
    "SystemTime::now",
    "Utc::now",
    "Local::now",
    "Instant::now",
    "crate::query",
    "crate::api",
    "crate::service",
    "crate::telemetry",
    "crate::log",
    "crate::kafka",
    "crate::monitor",
    "crate::clock",
    "crate::alert",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "tests") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|e| e == "rs")
            && p.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(p);
        }
    }
}

/// The library's top-level modules and the code of each (comments and tests left out).
fn modules() -> BTreeMap<String, String> {
    let src = src();
    let mut names: BTreeSet<String> = BTreeSet::new();
    for e in std::fs::read_dir(&src).unwrap().flatten() {
        let p = e.path();
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        if ["lib", "main", "cli", "web", "architecture"].contains(&stem.as_str()) {
            continue;
        }
        if p.is_dir() || p.extension().is_some_and(|x| x == "rs") {
            names.insert(stem);
        }
    }
    names
        .into_iter()
        .map(|m| {
            let mut files = vec![src.join(format!("{m}.rs"))];
            rust_files(&src.join(&m), &mut files);
            let mut code = String::new();
            for f in files.iter().filter(|f| f.exists()) {
                let text = std::fs::read_to_string(f).unwrap();
                for line in text.lines() {
                    let t = line.trim_start();
                    if t.starts_with("#[cfg(test)]") {
                        break;
                    }
                    if !t.starts_with("//") {
                        code.push_str(line);
                        code.push('\n');
                    }
                }
            }
            (m, code)
        })
        .collect()
}

/// The top-level modules `code` names through `crate::`.
fn uses(code: &str, modules: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::X, b}`: the first segment of each item.
            let end = group.find('}').unwrap_or(group.len());
            group[..end]
                .split(',')
                .map(|item| item.trim().split("::").next().unwrap_or(""))
                .collect()
        } else {
            vec![
                rest.split(|c: char| !c.is_alphanumeric() && c != '_')
                    .next()
                    .unwrap_or(""),
            ]
        };
        for n in names {
            if modules.contains_key(n) {
                out.insert(n.to_string());
            }
        }
    }
    out
}

#[test]
fn dependencies_between_top_level_modules_go_one_way() {
    let modules = modules();
    assert!(modules.contains_key("projection") && modules.contains_key("query"));
    let graph: BTreeMap<&str, BTreeSet<String>> = modules
        .iter()
        .map(|(m, code)| {
            let mut deps = uses(code, &modules);
            deps.remove(m);
            (m.as_str(), deps)
        })
        .collect();
    let mut both_ways = Vec::new();
    for (a, deps) in &graph {
        for b in deps {
            if a < &b.as_str() && graph[b.as_str()].contains(*a) {
                both_ways.push(format!("{a} ↔ {b}"));
            }
        }
    }
    assert!(
        both_ways.is_empty(),
        "two-way dependencies between top-level modules: {both_ways:?}"
    );
}

#[test]
fn the_cores_do_no_io_and_know_nothing_of_the_shell() {
    let modules = modules();
    let mut found = Vec::new();
    for core in CORES {
        let code = &modules[*core];
        for f in FORBIDDEN_IN_CORES {
            if code.contains(f) {
                found.push(format!("{core} uses {f}"));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn library_errors_are_typed() {
    let modules = modules();
    let n: usize = modules
        .values()
        .map(|code| {
            code.lines()
                .filter(|l| l.contains("Result<") && l.contains(", String>"))
                .count()
        })
        .sum();
    assert_eq!(
        n, 0,
        "library signatures returning Result<_, String>: use a typed error (thiserror)"
    );
}

/// Longest a library or CLI function may grow, in lines: past this it does several things.
const MAX_FUNCTION_LINES: usize = 100;

/// The functions of `code` longer than `max` lines, as `name (lines)`. A function runs from
/// its `fn` line to the first line that closes a block at the `fn` line's indentation.
fn long_functions(code: &str, max: usize) -> Vec<String> {
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        let head = ["pub ", "pub(crate) ", "pub(super) ", "async ", "const "]
            .iter()
            .fold(t, |t, p| t.strip_prefix(p).unwrap_or(t));
        let Some(name) = head.strip_prefix("fn ") else {
            continue;
        };
        if line.trim_end().ends_with(';') {
            continue;
        }
        let close = " ".repeat(indent) + "}";
        let end = lines[i + 1..]
            .iter()
            .position(|l| l.trim_end() == close)
            .map_or(lines.len() - i, |n| n + 2);
        if end > max {
            let name: String = name
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push(format!("{name} ({end} lines)"));
        }
    }
    found
}

#[test]
fn functions_stay_readable() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut found = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for long in long_functions(code, MAX_FUNCTION_LINES) {
            found.push(format!("{}: {long}", f.display()));
        }
    }
    assert!(
        found.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines (split them where they do several things): {found:#?}"
    );
}

#[test]
fn the_function_length_check_measures() {
    let code = "fn short() {\n    1\n}\n\n    pub fn long() {\n        a();\n        b();\n        c();\n    }\n";
    assert_eq!(long_functions(code, 4), vec!["long (5 lines)".to_string()]);
    assert!(long_functions(code, 5).is_empty());
}
