//! Embeds the built-in rules of `content/rules` (and the test cases kept beside them)
//! in the library, so the binary needs no files at run time.

use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    // A directory's own change (a file added or removed) must rebuild too.
    println!("cargo:rerun-if-changed={}", dir.display());
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
            out.push(p);
        }
    }
}

fn main() {
    // Whether the conformance tests' third-party data is on this machine.
    vigil_testkit::build_script();
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest.join("../../content/rules");
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let mut rules = String::from("pub static RULES: &[(&str, &str)] = &[\n");
    let mut tests = String::from("pub static TESTS: &[(&str, &str)] = &[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let rel = f.strip_prefix(&root).unwrap_or(f);
        let name = format!("builtin:{}", rel.display());
        let line = format!(
            "    ({:?}, include_str!({:?})),\n",
            name,
            f.canonicalize().unwrap_or_else(|_| f.clone())
        );
        let n = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if n.ends_with(".tests.yml") || n.ends_with(".tests.yaml") {
            tests.push_str(&line);
        } else {
            rules.push_str(&line);
        }
    }
    rules.push_str("];\n");
    tests.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("builtin.rs");
    std::fs::write(out, rules + &tests).expect("OUT_DIR is writable");
}
