//! `type = "inbox"`: a directory polled for telemetry files. A file is delivered
//! once its size and modification time have held still for one poll and differ
//! from its checkpoint; its checkpoint (that fingerprint) is committed with its
//! findings, so a file is either done or read again from the start.
//!
//! The inbox is a place others write into, so it is read as untrusted:
//! - a symbolic link is followed only to a file inside the inbox; a link that
//!   leads out (to `/etc/passwd`, say) is refused and named in the log;
//! - nothing of a file's content is ever logged, only its name and what kind of
//!   problem it has; names are logged as quoted, escaped strings, so a name
//!   with a newline cannot forge a log line.
//!
//! ```toml
//! [[sources]]
//! type = "inbox"
//! path = "/var/lib/vigil/inbox"   # default: <data_dir>/inbox
//! poll = "500ms"
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;
use vigil_model::Span;

use crate::component::{
    config_of, BuildContext, Checkpoint, Delivery, Inlet, Source, Telemetry,
};
use crate::PipelineError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    path: Option<PathBuf>,
    #[serde(default = "default_poll")]
    poll: Span,
}

fn default_poll() -> Span {
    Span::from_millis(500)
}

pub struct Inbox {
    name: String,
    root: PathBuf,
    poll: Duration,
}

pub fn build(ctx: &BuildContext<'_>, table: toml::Table) -> Result<Box<dyn Source>, PipelineError> {
    let c: Config = config_of("source", &ctx.name, table)?;
    let root = c.path.unwrap_or_else(|| ctx.data_dir.join("inbox"));
    Ok(Box::new(Inbox::new(&ctx.name, root, c.poll.duration())?))
}

impl Inbox {
    /// Watches `root` (made if missing) every `poll`.
    pub fn new(name: &str, root: PathBuf, poll: Duration) -> Result<Inbox, PipelineError> {
        std::fs::create_dir_all(&root)
            .map_err(|e| PipelineError::Io(format!("inbox {}: cannot create it", root.display()), e))?;
        Ok(Inbox {
            name: name.to_owned(),
            root,
            poll: poll.max(Duration::from_millis(10)),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Source for Inbox {
    fn name(&self) -> &str {
        &self.name
    }

    fn start(
        self: Box<Self>,
        inlet: Inlet,
    ) -> Result<Option<std::thread::JoinHandle<()>>, PipelineError> {
        tracing::info!(inbox = ?self.root, "watching for telemetry files");
        let t = std::thread::Builder::new()
            .name(format!("vigil-src-{}", self.name))
            .spawn(move || self.watch(&inlet))
            .map_err(|e| PipelineError::Io("starting the inbox thread".into(), e))?;
        Ok(Some(t))
    }
}

/// A file's size and modification time, which say whether it changed.
fn fingerprint(m: &std::fs::Metadata) -> Option<String> {
    let modified = m
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some(format!("size={} mtime_ns={modified}", m.len()))
}

/// Which file on disk a metadata describes (device and inode on Unix).
pub type FileId = (u64, u64);

#[cfg(unix)]
fn file_id(m: &std::fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn file_id(_m: &std::fs::Metadata) -> FileId {
    (0, 0)
}

/// Opens the file `examine` judged, and checks it is still that file: a path
/// swapped for a link between the look and the open is refused.
fn open_judged(real: &Path, id: FileId) -> Result<std::fs::File, &'static str> {
    let f = std::fs::File::open(real).map_err(|_| "unreadable")?;
    match f.metadata() {
        Ok(m) if m.is_file() && file_id(&m) == id => Ok(f),
        _ => Err("replaced while being opened"),
    }
}

/// What a path in the inbox turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// A file to read: the real path to open (links resolved), its metadata
    /// fingerprint, and its identity on disk.
    File(PathBuf, String, FileId),
    /// Refused, and why (never its content).
    Refused(&'static str),
    /// Gone or unreadable for now.
    Skip,
}

/// Looks at `path` (found under `root`, whose real path is `real_root`): a
/// regular file, or a link to one that stays inside the inbox.
pub fn examine(real_root: &Path, path: &Path) -> Entry {
    let Ok(link) = std::fs::symlink_metadata(path) else {
        return Entry::Skip;
    };
    let real = if link.file_type().is_symlink() {
        match std::fs::canonicalize(path) {
            Ok(r) if r.starts_with(real_root) => r,
            Ok(_) => return Entry::Refused("a symbolic link to outside the inbox"),
            Err(_) => return Entry::Refused("a symbolic link that leads nowhere"),
        }
    } else {
        path.to_owned()
    };
    match std::fs::metadata(&real) {
        Ok(m) if m.is_file() => match fingerprint(&m) {
            Some(fp) => Entry::File(real, fp, file_id(&m)),
            None => Entry::Skip,
        },
        Ok(_) => Entry::Refused("not a regular file"),
        Err(_) => Entry::Skip,
    }
}

impl Inbox {
    fn watch(self, inlet: &Inlet) {
        let real_root = match std::fs::canonicalize(&self.root) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(inbox = ?self.root, error = %e, "inbox unreadable");
                return;
            }
        };
        let source: Arc<str> = Arc::from(self.name.as_str());
        // What each file looked like at the last poll, what was handed over, and
        // what was refused (said once).
        let mut last_seen: HashMap<PathBuf, String> = HashMap::new();
        let mut handed: HashMap<PathBuf, String> = HashMap::new();
        let mut refused: HashMap<PathBuf, &'static str> = HashMap::new();
        // Files whose delivery was not committed: handed over again.
        let failed: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
        while !inlet.stopping() {
            for f in failed.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
                handed.remove(&f);
            }
            let mut files = Vec::new();
            vigil_ingest::walk_confined(&self.root, &mut |p| files.push(p), &mut |e| {
                tracing::warn!(path = ?e.path, error = %e.source, "inbox: cannot list");
            });
            files.sort();
            let mut now_seen = HashMap::new();
            for path in files {
                let (real, fp, id) = match examine(&real_root, &path) {
                    Entry::File(real, fp, id) => (real, fp, id),
                    Entry::Refused(why) => {
                        if refused.insert(path.clone(), why) != Some(why) {
                            tracing::warn!(file = ?path, "inbox: refused: {why}");
                        }
                        continue;
                    }
                    Entry::Skip => continue,
                };
                let steady = last_seen.get(&path) == Some(&fp);
                now_seen.insert(path.clone(), fp.clone());
                if !steady || handed.get(&path) == Some(&fp) {
                    continue;
                }
                let rel = path.strip_prefix(&self.root).unwrap_or(&path);
                let key = format!("inbox:{}", rel.display());
                match inlet.checkpoint(&key) {
                    Ok(Some(done)) if done == fp => {
                        handed.insert(path, fp);
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(file = ?path, error = %e, "inbox: checkpoint unreadable");
                        continue;
                    }
                }
                handed.insert(path.clone(), fp.clone());
                let opened = match open_judged(&real, id) {
                    Ok(f) => f,
                    Err(why) => {
                        tracing::warn!(file = ?path, "inbox: refused: {why}");
                        continue;
                    }
                };
                let file = path.clone();
                let retry = Arc::clone(&failed);
                let delivery = Delivery {
                    source: Arc::clone(&source),
                    items: vec![Telemetry::Reader {
                        name: path.display().to_string(),
                        reader: Box::new(opened),
                    }],
                    checkpoint: Some(Checkpoint { key, position: fp }),
                    complete: None,
                    ack: Some(Box::new(move |r| match r {
                        Ok(r) => {
                            for e in &r.errors {
                                // Errors name the record and the kind of
                                // problem, never the record's content.
                                tracing::warn!(file = ?file, error = ?e, "inbox: record refused");
                            }
                            tracing::info!(
                                file = ?file,
                                events = r.events,
                                duplicates = r.duplicates,
                                new_findings = r.new_findings,
                                updated_findings = r.updated_findings,
                                new_incidents = r.new_incidents,
                                "inbox file read"
                            );
                        }
                        Err(e) => {
                            tracing::error!(file = ?file, error = %e, "inbox: not stored; read again at the next poll");
                            retry.lock().unwrap_or_else(PoisonError::into_inner).push(file);
                        }
                    })),
                };
                if inlet.deliver(delivery).is_err() {
                    return;
                }
            }
            refused.retain(|p, _| now_seen.contains_key(p) || p.exists());
            last_seen = now_seen;
            // Sleep in short steps so that a stop is noticed quickly.
            let until = Instant::now() + self.poll;
            while Instant::now() < until && !inlet.stopping() {
                std::thread::sleep(Duration::from_millis(20).min(self.poll));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn links_are_followed_only_inside_the_inbox() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("passwd");
        std::fs::write(&secret, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        let inbox = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(inbox.path()).unwrap();
        let inside = root.join("trail.json");
        std::fs::write(&inside, "{}").unwrap();
        std::os::unix::fs::symlink(&secret, root.join("leak.json")).unwrap();
        std::os::unix::fs::symlink(&inside, root.join("alias.json")).unwrap();
        std::os::unix::fs::symlink(root.join("gone"), root.join("dangling.json")).unwrap();
        assert_eq!(
            examine(&root, &root.join("leak.json")),
            Entry::Refused("a symbolic link to outside the inbox")
        );
        assert!(matches!(examine(&root, &root.join("alias.json")), Entry::File(p, ..) if p == inside));
        let Entry::File(p, _, id) = examine(&root, &inside) else {
            panic!("a plain file inside is read")
        };
        assert_eq!(p, inside);
        assert!(open_judged(&inside, id).is_ok());
        // Swapped for a link to the outside after it was judged: refused.
        std::fs::remove_file(&inside).unwrap();
        std::os::unix::fs::symlink(&secret, &inside).unwrap();
        assert_eq!(
            open_judged(&inside, id).unwrap_err(),
            "replaced while being opened"
        );
        assert_eq!(
            examine(&root, &root.join("dangling.json")),
            Entry::Refused("a symbolic link that leads nowhere")
        );
    }
}
