//! Expands the paths a user names into the files to decode: files as given,
//! directories walked recursively in a stable (sorted) order, hidden entries skipped.

use std::path::{Path, PathBuf};

/// A path that could not be listed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct WalkError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Calls `visit` for every file under `root` (or `root` itself when it is a file).
/// Errors listing a directory are passed to `on_error` and the walk goes on.
pub fn walk(root: &Path, visit: &mut dyn FnMut(PathBuf), on_error: &mut dyn FnMut(WalkError)) {
    let meta = match std::fs::metadata(root) {
        Ok(m) => m,
        Err(source) => {
            return on_error(WalkError {
                path: root.to_owned(),
                source,
            })
        }
    };
    if !meta.is_dir() {
        return visit(root.to_owned());
    }
    descend(root, true, visit, on_error);
}

/// As [`walk`], but for a directory others write into: symbolic links are
/// visited as entries (for the caller to judge where they lead) and never
/// descended into, so the walk stays inside `root`.
pub fn walk_confined(
    root: &Path,
    visit: &mut dyn FnMut(PathBuf),
    on_error: &mut dyn FnMut(WalkError),
) {
    descend(root, false, visit, on_error);
}

/// Visits the files under the directory `root`, sorted, depth first; `follow`:
/// whether links to directories are walked into (else every link is an entry).
fn descend(
    root: &Path,
    follow: bool,
    visit: &mut dyn FnMut(PathBuf),
    on_error: &mut dyn FnMut(WalkError),
) {
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(source) => {
                on_error(WalkError { path: dir, source });
                continue;
            }
        };
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(source) => {
                    on_error(WalkError {
                        path: dir.clone(),
                        source,
                    });
                    continue;
                }
            };
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            // Following links, as a user who links a log folder in expects;
            // or the entry itself, where a link may lead anywhere.
            let is_dir = if follow {
                std::fs::metadata(&path).map(|m| m.is_dir())
            } else {
                entry.file_type().map(|t| t.is_dir())
            };
            match is_dir {
                Ok(true) => dirs.push(path),
                Ok(false) => files.push(path),
                Err(source) => on_error(WalkError { path, source }),
            }
        }
        files.sort();
        files.into_iter().for_each(&mut *visit);
        dirs.sort();
        stack.extend(dirs.into_iter().rev());
    }
}
