//! What Vigil's tests need from the machine they run on: the conformance suite's
//! data and the Python peers (moto_server, awscurl, schemathesis). Only tests and
//! build scripts use it; it knows where things are, not what is in them.
//!
//! ## Conformance data
//!
//! Vigil's own tests run on inputs the project wrote. The conformance suite checks
//! Vigil against material nobody here wrote: Elastic's AWS log samples, the SigmaHQ
//! AWS rules, Stratus Red Team's and invictus-ir's attack logs. That material is
//! never copied into the repository; it is found, in this order, at
//!
//! 1. `$VIGIL_CONFORMANCE_DATA`, when set;
//! 2. `../shared/data` beside the checkout (the team's machines and CI);
//! 3. `~/.cache/vigil/conformance`, which `scripts/conformance-data` fills from the
//!    upstream repositories at pinned commits when the network allows.
//!
//! A crate with conformance tests calls [`build_script`] from its `build.rs`; when
//! no data is found that sets the `no_conformance_data` cfg, and each conformance
//! test carries
//! `#[cfg_attr(no_conformance_data, ignore = "conformance data not found")]`, so
//! the test output lists it as ignored, by name, with the reason. The one test that
//! needs the team's labels of an attack log (which no upstream checkout has) is
//! ignored under `no_attack_labels` as well.
//!
//! ## Python peers
//!
//! `scripts/test` installs the pinned peers into a virtualenv
//! (`~/.cache/vigil/venv`, or `$VIGIL_VENV`) and names its `bin` in
//! `VIGIL_PY_BIN`; [`python_tool`] finds a peer there, in the default virtualenv,
//! or on `PATH`, and otherwise fails the test saying how to install it.

use std::path::{Path, PathBuf};

/// The labelled attack log that only the team's copy of the data holds.
const LABELS: &str = "attack-logs/invictus-sigma-aws/LABELS.tsv";

/// The environment variable that names the data directory.
pub const ENV: &str = "VIGIL_CONFORMANCE_DATA";

/// A Python peer the tests call (`moto_server`, `awscurl`, `st` of schemathesis):
/// from `$VIGIL_PY_BIN`, else the virtualenv `scripts/test` makes, else `PATH`.
/// Fails the test with how to install it when it is nowhere.
pub fn python_tool(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("VIGIL_PY_BIN").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    if let Some(v) = std::env::var_os("VIGIL_VENV").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(v).join("bin"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(h).join(".cache/vigil/venv/bin"));
    }
    if let Some(paths) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&paths));
    }
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed. Run scripts/test, which installs the Python peers \
                 (awscurl, schemathesis, moto[server], cargo-lambda) at the versions pinned in \
                 scripts/lib/python-tools.sh into ~/.cache/vigil/venv; or install them \
                 yourself and set VIGIL_PY_BIN to the directory holding {name}."
            )
        })
}

/// The workspace root (this crate lives in `crates/vigil-testkit`).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `~/.cache/vigil/conformance`, where `scripts/conformance-data` puts its checkout.
fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/vigil/conformance"))
}

/// The places looked at, in order, each with how it was named.
fn candidates() -> Vec<(String, PathBuf)> {
    let mut c = Vec::new();
    if let Some(p) = std::env::var_os(ENV).filter(|p| !p.is_empty()) {
        c.push((format!("${ENV}"), PathBuf::from(p)));
    }
    c.push(("../shared/data".into(), workspace().join("../shared/data")));
    if let Some(p) = cache_dir() {
        c.push(("~/.cache/vigil/conformance".into(), p));
    }
    c
}

/// The conformance data directory, or why there is none. A directory counts when
/// it holds at least one of the collections (`elastic-aws`, `sigma-aws`,
/// `attack-logs`); a variable that names a missing directory is an error rather
/// than a silent fall-through, so a typo does not quietly skip the suite.
pub fn locate() -> Result<PathBuf, String> {
    let mut looked = Vec::new();
    for (name, p) in candidates() {
        let holds = ["elastic-aws", "sigma-aws", "attack-logs"]
            .iter()
            .any(|d| p.join(d).is_dir());
        if holds {
            return Ok(p);
        }
        if name.starts_with('$') {
            return Err(format!(
                "{ENV}={} holds no conformance data (elastic-aws, sigma-aws or attack-logs)",
                p.display()
            ));
        }
        looked.push(format!("{name} ({})", p.display()));
    }
    Err(format!(
        "no conformance data: looked at {}; set {ENV} or run scripts/conformance-data",
        looked.join(", ")
    ))
}

/// The data directory for a conformance test. Panics with the reason when there is
/// none: a test only gets here when its build found the data, or when it was run
/// with `--ignored` on purpose.
pub fn conformance_data() -> PathBuf {
    locate().unwrap_or_else(|why| panic!("{why}"))
}

/// For a crate's `build.rs`: sets `cfg(no_conformance_data)` when no data is found,
/// and asks Cargo to look again when the answer could change (the variable, or a
/// directory appearing where one is looked for).
pub fn build_script() {
    println!("cargo::rustc-check-cfg=cfg(no_conformance_data)");
    println!("cargo::rustc-check-cfg=cfg(no_attack_labels)");
    println!("cargo::rerun-if-env-changed={ENV}");
    println!("cargo::rerun-if-env-changed=HOME");
    // Cargo scans a watched directory recursively, so never an ancestor as large
    // as ~/.cache/vigil (which holds the build output): the cache checkout is
    // watched only once it exists.
    for (name, p) in candidates() {
        if name.starts_with('~') && !p.exists() {
            continue;
        }
        // A directory's modification time changes when an entry is added or
        // removed: watch the nearest existing ancestor of each candidate, so that
        // `shared/` appearing beside the checkout rebuilds, without watching a
        // path that does not exist (which Cargo would take as always changed).
        // At most two levels up (`data`, then `shared`, then the directory
        // holding the checkout), and never a filesystem root: Cargo walks a
        // watched directory whole, and a path that is gone (a checkout that
        // moved) must not turn into watching `/`.
        let mut watch: &Path = &p;
        let mut up = 0;
        while !watch.exists() && up < 2 {
            match watch.parent() {
                Some(parent) => watch = parent,
                None => break,
            }
            up += 1;
        }
        if watch.exists() && watch.parent().is_some() {
            println!("cargo::rerun-if-changed={}", watch.display());
        }
    }
    // No warning when there is none: a user building the binary has no use for
    // the news; the tests say it, by name, when they run.
    match locate() {
        Err(_) => {
            println!("cargo::rustc-cfg=no_conformance_data");
            println!("cargo::rustc-cfg=no_attack_labels");
        }
        // The invictus-ir attack log's labels are the team's reading of it, in
        // ../shared only: an upstream checkout has the log but not the labels.
        Ok(dir) if !dir.join(LABELS).is_file() => {
            println!("cargo::rustc-cfg=no_attack_labels");
        }
        Ok(_) => {}
    }
}
