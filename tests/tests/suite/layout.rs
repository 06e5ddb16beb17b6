//! The module graph of the host and of the two largest plugins is one way
//! (ARCHITECTURE.md): no module reaches, through `crate::` paths, a module
//! that reaches back to it. Read from the sources, so a change that closes
//! a circle fails here, naming it, before it is reviewed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use polysync_tests::workspace;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The code without its comments and string literals (a path in a doc
/// comment or a message is not an import).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

fn ident_at(text: &str) -> &str {
    let end = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len());
    &text[..end]
}

/// The top-level modules `text` names after `prefix` (`crate::`, or
/// `super::` in a file at the crate's root): `crate::store::X` and every
/// item of `crate::{store::X, runs}`.
fn named_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in text.match_indices(prefix) {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &text[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if item_start && depth == 0 => {
                        out.insert(ident_at(&group[i..]).to_owned());
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident_at(rest).to_owned());
        }
    }
    out
}

/// Each top-level module of the crate at `src` and the top-level modules
/// it names.
fn graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    let mut files = vec![src.to_path_buf()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let rel = path.strip_prefix(src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = code_only(&std::fs::read_to_string(&path).unwrap());
        let mut named = named_after(&text, "crate::");
        if rel.components().count() == 1 {
            named.extend(named_after(&text, "super::"));
        }
        named.remove(&top);
        graph.entry(top).or_default().extend(named);
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for named in graph.values_mut() {
        named.retain(|m| modules.contains(m));
    }
    graph
}

/// A circle through `from`, if there is one: the path back to it.
fn circle_through(graph: &Graph, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        for next in &graph[path.last().unwrap()] {
            if next == from {
                return Some([path.clone(), vec![from.to_owned()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push([path.clone(), vec![next.clone()]].concat());
            }
        }
    }
    None
}

fn circles(crate_dir: &str) -> Vec<String> {
    let graph = graph(&workspace().join(crate_dir).join("src"));
    assert!(graph.len() > 5, "{crate_dir}: read {} modules only: {graph:?}", graph.len());
    graph.keys().filter_map(|m| circle_through(&graph, m)).map(|c| c.join(" -> ")).collect()
}

#[test]
fn the_host_and_plugin_modules_import_one_way() {
    for dir in ["host", "providers/kube-jobs", "providers/ecs"] {
        let found = circles(dir);
        assert!(found.is_empty(), "{dir} has import circles (ARCHITECTURE.md says one way):\n{}", found.join("\n"));
    }
}

#[test]
fn the_reader_sees_grouped_imports_and_ignores_comments_and_strings() {
    let text = code_only(
        "use crate::{store::{Stamp, Store}, runs};\n// crate::serve\nlet s = \"crate::cli\";\nuse super::config;",
    );
    let crate_named: Vec<String> = named_after(&text, "crate::").into_iter().collect();
    assert_eq!(crate_named, ["runs", "store"]);
    assert_eq!(named_after(&text, "super::").into_iter().collect::<Vec<_>>(), ["config"]);
    let graph: Graph =
        [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")].into_iter().fold(Graph::new(), |mut g, (from, to)| {
            g.entry(from.into()).or_default().insert(to.into());
            g.entry(to.into()).or_default();
            g
        });
    assert_eq!(circle_through(&graph, "a").unwrap().join(" -> "), "a -> b -> c -> a");
    assert_eq!(circle_through(&graph, "d"), None);
}
