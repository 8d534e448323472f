//! The crate graph keeps its shape: persistence, response and the API share
//! detection's types through vigil-model and never compile the Sigma engine.

use std::process::Command;

#[test]
fn store_respond_and_server_do_not_depend_on_detection() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(&root)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let deps = |name: &str| -> Vec<String> {
        let p = packages
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} is in the workspace"));
        p["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for name in ["vigil-store", "vigil-respond", "vigil-server"] {
        let d = deps(name);
        assert!(d.iter().any(|d| d == "vigil-model"), "{name}: {d:?}");
        assert!(
            !d.iter().any(|d| d == "vigil-detect"),
            "{name} depends on vigil-detect: {d:?}"
        );
    }
}
