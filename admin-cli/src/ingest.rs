//! `collections ingest`: files and folders (recursively) into a collection, one file at a time.
//! Files whose bytes the collection already holds under the same name are skipped without
//! being sent, so an interrupted run re-run finishes the job without duplicates. One file that
//! fails is reported and the rest go on.

use crate::backend::Backend;
use ayush_server::knowledge::documents;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// A file and the name it gets in the collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub path: PathBuf,
    pub source: String,
}

/// The files under `paths`: a file is named by its file name; a folder's files by their path
/// from the folder's parent (`wiki/eng/setup.md`), so two folders do not collide. Hidden files
/// and folders are skipped, as are symbolic links, which could lead out of what was named.
pub fn walk(paths: &[PathBuf]) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    for path in paths {
        let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.is_dir() {
            let base = path.canonicalize().map_err(|e| format!("{}: {e}", path.display()))?;
            let root = base.parent().unwrap_or(&base).to_path_buf();
            collect(&base, &root, &mut items)?;
        } else if meta.is_file() {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| format!("{}: the file name is not UTF-8", path.display()))?;
            items.push(Item { path: path.clone(), source: name.to_string() });
        } else {
            return Err(format!("{}: neither a file nor a folder", path.display()));
        }
    }
    let mut seen = HashMap::new();
    for item in &items {
        if let Some(other) = seen.insert(item.source.clone(), item.path.clone()) {
            return Err(format!(
                "{} and {} would both be named {:?} in the collection",
                other.display(),
                item.path.display(),
                item.source
            ));
        }
    }
    Ok(items)
}

fn collect(dir: &Path, root: &Path, items: &mut Vec<Item>) -> Result<(), String> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| format!("{}: {e}", path.display()))?;
        if kind.is_dir() {
            collect(&path, root, items)?;
        } else if kind.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let source = rel
                .to_str()
                .ok_or_else(|| format!("{}: the path is not UTF-8", path.display()))?
                .replace('\\', "/");
            items.push(Item { path, source });
        }
    }
    Ok(())
}

/// Sends every file; with `dry_run`, says for each what would happen, extracting it here to
/// report its format and passages, and sends nothing.
pub fn run(
    backend: &dyn Backend,
    collection: &str,
    paths: &[PathBuf],
    dry_run: bool,
) -> Result<Value, String> {
    let items = walk(paths)?;
    let stored: HashMap<String, String> = backend
        .list_documents(collection)?
        .as_array()
        .map(|docs| {
            docs.iter()
                .filter_map(|d| Some((d["source"].as_str()?.to_string(), d["sha256"].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let tty = std::io::stderr().is_terminal();
    let total = items.len();
    let mut counts: HashMap<&'static str, u64> = HashMap::new();
    let mut failures = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let outcome = one(backend, collection, item, &stored, dry_run);
        let (status, line) = match &outcome {
            Ok((status, detail)) => (*status, format!("{status}{detail}")),
            Err(e) => ("failed", format!("failed: {e}")),
        };
        *counts.entry(status).or_default() += 1;
        if let Err(e) = outcome {
            failures.push(json!({"source": item.source, "error": e}));
        }
        if tty {
            eprint!("\r\x1b[2K[{}/{total}] {}: {line}", i + 1, item.source);
            if status == "failed" {
                eprintln!();
            }
        } else {
            eprintln!("[{}/{total}] {}: {line}", i + 1, item.source);
        }
    }
    if tty && total > 0 {
        eprintln!();
    }
    let summary = json!({
        "collection": collection,
        "files": total,
        "added": counts.get("added").copied().unwrap_or(0) + counts.get("would add").copied().unwrap_or(0),
        "replaced": counts.get("replaced").copied().unwrap_or(0) + counts.get("would replace").copied().unwrap_or(0),
        "unchanged": counts.get("unchanged").copied().unwrap_or(0),
        "failed": failures.len(),
        "failures": failures,
        "dry_run": dry_run,
    });
    Ok(summary)
}

fn one(
    backend: &dyn Backend,
    collection: &str,
    item: &Item,
    stored: &HashMap<String, String>,
    dry_run: bool,
) -> Result<(&'static str, String), String> {
    let bytes = std::fs::read(&item.path).map_err(|e| format!("{}: {e}", item.path.display()))?;
    let known = stored.get(&item.source);
    if known == Some(&documents::sha256_hex(&bytes)) {
        return Ok(("unchanged", String::new()));
    }
    if dry_run {
        let p = documents::prepare(&item.source, bytes).map_err(|e| e.message)?;
        let status = if known.is_some() { "would replace" } else { "would add" };
        return Ok((status, format!(" ({}, {} passages)", p.format.as_str(), p.chunks.len())));
    }
    let answer = backend.add_document(collection, &item.source, bytes)?;
    let status = match answer["status"].as_str() {
        Some("added") => "added",
        Some("replaced") => "replaced",
        _ => "unchanged",
    };
    Ok((status, format!(" ({} passages)", answer["document"]["chunks"].as_i64().unwrap_or(0))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_walked_in_order_and_named_from_their_parent() {
        let dir = tempfile::tempdir().unwrap();
        let wiki = dir.path().join("wiki");
        std::fs::create_dir_all(wiki.join("eng")).unwrap();
        std::fs::create_dir_all(wiki.join(".git")).unwrap();
        std::fs::write(wiki.join("b.md"), "b").unwrap();
        std::fs::write(wiki.join("eng/a.md"), "a").unwrap();
        std::fs::write(wiki.join(".hidden"), "h").unwrap();
        std::fs::write(wiki.join(".git/config"), "x").unwrap();
        let single = dir.path().join("one.txt");
        std::fs::write(&single, "1").unwrap();
        let items = walk(&[wiki.clone(), single]).unwrap();
        let names: Vec<_> = items.iter().map(|i| i.source.as_str()).collect();
        assert_eq!(names, ["wiki/b.md", "wiki/eng/a.md", "one.txt"]);
        let clash = walk(&[wiki.join("b.md"), dir.path().join("b.md")]);
        assert!(clash.is_err() || !dir.path().join("b.md").exists());
        std::fs::write(dir.path().join("b.md"), "other").unwrap();
        let clash = walk(&[wiki.join("b.md"), dir.path().join("b.md")]).unwrap_err();
        assert!(clash.contains("would both be named"), "{clash}");
    }
}
