//! Every check Vigil runs, by area.

pub mod iam;
pub mod logging;
pub mod network;
pub mod storage;

use crate::check::Check;

/// Every check, in a fixed order.
pub fn all() -> impl Iterator<Item = &'static Check> {
    iam::CHECKS
        .iter()
        .chain(storage::CHECKS)
        .chain(logging::CHECKS)
        .chain(logging::MONITORS)
        .chain(network::CHECKS)
}

pub fn by_id(id: &str) -> Option<&'static Check> {
    all().find(|c| c.id == id)
}

/// Vigil's checks that judge what Prowler's check `name` judges.
pub fn for_prowler(name: &str) -> impl Iterator<Item = &'static Check> + '_ {
    all().filter(move |c| c.prowler.contains(&name))
}
