//! The layering rules of the source tree, checked by reading it:
//!
//! - the HTTP adapter ([`crate::http`]) never touches the store: it parses, calls a flow of
//!   [`crate::flow`] and renders;
//! - the protocol library ([`crate::oauth`]) knows no resource types ([`crate::crd`]): it takes
//!   plain values (a client secret is its identity, hash and whether it authenticates);
//! - no file of the protocol layer and its adapter is over 500 lines, no function over 60.

use std::path::{Path, PathBuf};

/// The `.rs` files under `src/<dir>`, with their text.
fn sources(dir: &str) -> Vec<(PathBuf, String)> {
    let mut out = vec![];
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir)];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("the source tree is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a readable source file");
                out.push((path, text));
            }
        }
    }
    assert!(!out.is_empty(), "no sources under src/{dir}");
    out
}

/// The code lines (not comments) of `dir` that mention `path`, as `file:line: text`.
fn mentions(dir: &str, path: &str) -> Vec<String> {
    let mut found = vec![];
    for (file, text) in sources(dir) {
        for (n, line) in text.lines().enumerate() {
            if !line.trim_start().starts_with("//") && line.contains(path) {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    found
}

/// Fails with every code line of `src/<dir>` that mentions `path`, and `why`.
fn assert_never_mentions(dir: &str, path: &str, why: &str) {
    let found = mentions(dir, path);
    assert!(found.is_empty(), "{why}:\n{}", found.join("\n"));
}

#[test]
fn the_http_adapter_never_imports_the_store() {
    assert_never_mentions("http", "crate::store", "src/http must go through crate::flow");
}

#[test]
fn the_protocol_library_never_imports_the_resource_types() {
    assert_never_mentions("oauth", "crate::crd", "src/oauth takes plain values, not resources");
}

/// The functions of `text` longer than `max` lines (from `fn` to the closing brace at the
/// same indentation, as rustfmt writes them), as `name (lines)`.
fn long_functions(text: &str, max: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut long = vec![];
    for (i, line) in lines.iter().enumerate() {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let signature = [
            "fn ",
            "pub fn ",
            "async fn ",
            "pub async fn ",
            "pub(crate) fn ",
            "pub(crate) async fn ",
        ]
        .iter()
        .find_map(|p| body.strip_prefix(p));
        let Some(signature) = signature.filter(|_| !body.ends_with(';')) else {
            continue;
        };
        let closing = format!("{indent}}}");
        let end = lines[i..].iter().position(|l| *l == closing).unwrap_or(0);
        if end + 1 > max {
            let name = signature.split(['(', '<']).next().unwrap_or_default();
            long.push(format!("{name} ({} lines)", end + 1));
        }
    }
    long
}

#[test]
fn no_file_of_the_protocol_layer_is_over_500_lines_nor_a_function_over_60() {
    let mut over = vec![];
    for dir in ["http", "oauth", "flow"] {
        for (file, text) in sources(dir) {
            let lines = text.lines().count();
            if lines > 500 {
                over.push(format!("{}: {lines} lines", file.display()));
            }
            for f in long_functions(&text, 60) {
                over.push(format!("{}: fn {f}", file.display()));
            }
        }
    }
    assert!(over.is_empty(), "split these:\n{}", over.join("\n"));
}

#[test]
fn the_function_length_rule_measures_from_signature_to_closing_brace() {
    let text = "fn short() {\n    1\n}\n\n    pub async fn long(x: u8) -> u8 {\n        a\n        b\n    }\n";
    assert_eq!(long_functions(text, 3), ["long (4 lines)"]);
    assert!(long_functions(text, 4).is_empty());
}
