//! Tells the conformance tests whether their third-party data is on this machine
//! (see the `vigil-testkit` crate), and folds identical code in the release binary.

fn main() {
    vigil_testkit::build_script();
    fold_identical_code();
}

/// With the SDK's service crates built unoptimized (see the workspace's release
/// profile), many of their functions come out byte for byte the same; LLD's
/// identical code folding links each once (67 → 62 MB). Only where the linker is
/// known to be LLD: Rust's default on x86_64 Linux since 1.90, unless the build
/// names a linker of its own. Elsewhere the binary is simply a little larger.
fn fold_identical_code() {
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let target = std::env::var("TARGET").unwrap_or_default();
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let own_linker = flags.contains("linker") || std::env::var_os("RUSTC_LINKER").is_some();
    if !release || target != "x86_64-unknown-linux-gnu" || own_linker || !rustc_has_lld() {
        return;
    }
    println!("cargo::rustc-link-arg-bins=-Wl,--icf=all");
}

/// Whether this rustc links x86_64 Linux binaries with its bundled LLD (1.90 on).
fn rustc_has_lld() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = std::process::Command::new(rustc).arg("--version").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let minor = text
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    minor.is_some_and(|m| m >= 90)
}
