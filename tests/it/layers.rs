//! The folders of src/ import each other without a cycle, and raft imports
//! none of the features that ride on its log (docs/architecture.md,
//! "Folders and layers"). Reads the sources as text: `crate::<folder>`
//! outside test modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Folder -> the folders its non-test code names as `crate::<folder>`.
fn imports() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let folders: BTreeSet<String> = std::fs::read_dir(&src)
        .expect("src readable")
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut graph = Graph::new();
    for folder in &folders {
        let mut files = Vec::new();
        rust_files(&src.join(folder), &mut files);
        let uses = graph.entry(folder.clone()).or_default();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("source readable");
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let name: String = code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if name != *folder && folders.contains(&name) {
                    uses.insert(name);
                }
            }
        }
    }
    graph
}

/// A path from `from` back to itself, if there is one.
fn cycle_through(graph: &Graph, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![(from.to_string(), vec![from.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in graph.get(&at).into_iter().flatten() {
            if next == from {
                let mut found = path.clone();
                found.push(next.clone());
                return Some(found);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_import_cycle_crosses_folders() {
    let graph = imports();
    assert!(graph.contains_key("raft") && graph.contains_key("sql"), "{graph:?}");
    for folder in graph.keys() {
        if let Some(cycle) = cycle_through(&graph, folder) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn raft_imports_no_feature_that_rides_on_its_log() {
    let graph = imports();
    let raft = &graph["raft"];
    for above in ["sync", "changes", "queue", "server", "daemon", "client"] {
        assert!(!raft.contains(above), "raft imports {above}: {raft:?}");
    }
}
