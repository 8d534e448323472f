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
            // Follow links, as a user who links a log folder in expects.
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => dirs.push(path),
                Ok(_) => files.push(path),
                Err(source) => on_error(WalkError { path, source }),
            }
        }
        files.sort();
        files.into_iter().for_each(&mut *visit);
        dirs.sort();
        stack.extend(dirs.into_iter().rev());
    }
}

/// As [`walk`], but for a directory others write into: symbolic links are
/// visited as entries (for the caller to judge where they lead) and never
/// descended into, so the walk stays inside `root`.
pub fn walk_confined(
    root: &Path,
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
            // The entry itself, not where a link leads.
            match entry.file_type() {
                Ok(t) if t.is_dir() => dirs.push(entry.path()),
                Ok(_) => files.push(entry.path()),
                Err(source) => on_error(WalkError {
                    path: entry.path(),
                    source,
                }),
            }
        }
        files.sort();
        files.into_iter().for_each(&mut *visit);
        dirs.sort();
        stack.extend(dirs.into_iter().rev());
    }
}
