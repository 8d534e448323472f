//! Rules from files and directories: `.yml`/`.yaml` files found recursively,
//! rule files apart from test files (`*.tests.yml`), and the detector built from
//! them and the built-in rules.

use std::path::{Path, PathBuf};

use crate::sigma::{is_test_file, RuleIssue};
use crate::testcases::RuleTexts;
use crate::{Detector, DetectorConfig};

/// Builds the detector: built-in rules (unless `config.builtin` is off), then the
/// rules under `paths`, with filters applied across all of them.
pub fn build_detector(paths: &[PathBuf], config: &DetectorConfig) -> (Detector, Vec<RuleIssue>) {
    let texts = read_rules(paths, config.builtin);
    let (det, mut issues) = texts.0.detector(config);
    let mut all = texts.1;
    all.append(&mut issues);
    (det, all)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>, issues: &mut Vec<RuleIssue>) {
    match std::fs::read_dir(path) {
        Ok(entries) => {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    collect(&p, out, issues);
                } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
                    out.push(p);
                }
            }
        }
        Err(_) if path.is_file() => out.push(path.to_owned()),
        Err(e) => issues.push(RuleIssue {
            origin: path.to_owned(),
            rule: None,
            unsupported: false,
            message: e.to_string(),
        }),
    }
}

/// Reads rule files (not test files) under `paths`.
pub fn read_rules(paths: &[PathBuf], builtin: bool) -> (RuleTexts, Vec<RuleIssue>) {
    let (files, issues) = read_files(paths, false);
    (RuleTexts { files, builtin }, issues)
}

/// The rule files (`tests`: the test files instead) under `paths`, with their
/// text, and what could not be read.
pub fn read_files(paths: &[PathBuf], tests: bool) -> (Vec<(PathBuf, String)>, Vec<RuleIssue>) {
    let mut found = Vec::new();
    let mut issues = Vec::new();
    for p in paths {
        collect(p, &mut found, &mut issues);
    }
    found.sort();
    let mut files = Vec::new();
    for f in found {
        if is_test_file(&f) != tests {
            continue;
        }
        match std::fs::read_to_string(&f) {
            Ok(t) => files.push((f, t)),
            Err(e) => issues.push(RuleIssue {
                origin: f,
                rule: None,
                unsupported: false,
                message: e.to_string(),
            }),
        }
    }
    (files, issues)
}
