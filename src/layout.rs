//! The layering rules of the source tree, checked by reading it:
//!
//! - the HTTP adapter ([`crate::http`]) never touches the store: it parses, calls a flow of
//!   [`crate::flow`] and renders;
//! - the protocol library ([`crate::oauth`]) knows no resource types ([`crate::crd`]): it takes
//!   plain values (a client secret is its identity, hash and whether it authenticates);
//! - no source file is over 500 lines, no function over 60;
//! - no two files import each other, directly or through others (a module and the modules
//!   inside it aside: a parent declares its children, and they use its items).

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
fn no_source_file_is_over_500_lines_nor_a_function_over_60() {
    let mut over = vec![];
    {
        for (file, text) in sources("") {
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

/// The module path of a source file (`src/flow/token.rs` → `["flow", "token"]`).
fn module_of(file: &Path) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rel = file.strip_prefix(&src).expect("a file under src").with_extension("");
    let mut path: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    if matches!(path.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        path.pop();
    }
    path
}

/// The paths (`crate::a::b`, `super::c`, `self::d`) that the code lines of `text`, before its
/// unit tests, mention, resolved against the module `here` the file is.
fn mentioned_paths(text: &str, here: &[String]) -> Vec<Vec<String>> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
    let mut found = vec![];
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (start, _) in line.match_indices("::") {
            let head_start = line[..start]
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            let head = &line[head_start..start];
            if head_start > 0 && line[..head_start].ends_with("::") || !["crate", "super", "self"].contains(&head) {
                continue;
            }
            let rest: Vec<String> = line[head_start..]
                .split("::")
                .map(|p| {
                    p.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect::<String>()
                })
                .take_while(|p| !p.is_empty())
                .collect();
            let mut base: Vec<String> = if rest[0] == "crate" { vec![] } else { here.to_vec() };
            for part in &rest {
                match part.as_str() {
                    "crate" | "self" => {}
                    "super" => {
                        base.pop();
                    }
                    _ => base.push(part.clone()),
                }
            }
            found.push(base);
        }
    }
    found
}

/// The nodes of `edges` (node → the nodes it imports) from which an import path leads back.
fn on_circles(edges: &[Vec<usize>]) -> Vec<usize> {
    let mut on = vec![];
    for start in 0..edges.len() {
        let mut reached = edges[start].clone();
        let mut k = 0;
        while k < reached.len() {
            for &n in &edges[reached[k]] {
                if !reached.contains(&n) {
                    reached.push(n);
                }
            }
            k += 1;
        }
        if reached.contains(&start) {
            on.push(start);
        }
    }
    on
}

#[test]
fn no_two_files_import_each_other() {
    let files = sources("");
    let modules: Vec<Vec<String>> = files.iter().map(|(f, _)| module_of(f)).collect();
    let owner = |path: &[String]| {
        (0..=path.len())
            .rev()
            .find_map(|n| modules.iter().position(|m| m[..] == path[..n]))
    };
    let mut edges: Vec<Vec<usize>> = vec![vec![]; files.len()];
    for (i, (_, text)) in files.iter().enumerate() {
        for path in mentioned_paths(text, &modules[i]) {
            let Some(j) = owner(&path) else { continue };
            let (a, b) = (&modules[i], &modules[j]);
            if !(a.starts_with(b) || b.starts_with(a) || edges[i].contains(&j)) {
                edges[i].push(j);
            }
        }
    }
    let circles: Vec<String> = on_circles(&edges).into_iter().map(|i| modules[i].join("::")).collect();
    assert!(circles.is_empty(), "these files are on an import circle: {circles:?}");
}

#[test]
fn the_circle_rule_resolves_super_and_crate_paths() {
    let here: Vec<String> = ["flow", "token"].map(String::from).to_vec();
    let text = "use super::error::FlowError;\nuse crate::oauth::pkce;\n// crate::http::x\nlet a = self::b::c;\n";
    let paths = mentioned_paths(text, &here);
    let joined: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(joined, ["flow::error::FlowError", "oauth::pkce", "flow::token::b::c"]);
}

#[test]
fn the_circle_rule_finds_circles_through_other_files() {
    // 0 → 1 → 2 → 0 is a circle; 3 only imports into it.
    assert_eq!(on_circles(&[vec![1], vec![2], vec![0], vec![0]]), [0, 1, 2]);
    assert!(on_circles(&[vec![1], vec![2], vec![]]).is_empty());
}
