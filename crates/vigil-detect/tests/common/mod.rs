//! What the vigil-detect integration tests share.

use std::path::{Path, PathBuf};

/// Public data no one on the team wrote (`../shared/data` beside the checkout, or
/// `VIGIL_SHARED_DATA`), read in place, never copied into the repository.
pub fn shared() -> PathBuf {
    std::env::var("VIGIL_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}
