//! The sources, by the `type` their `[[sources]]` table names. A new source is
//! a file here with a `build` function, and its name in the list below.

use crate::component::{BuildContext, Source};
use crate::PipelineError;

/// Builds a source from its table (its `type` and `name` already taken out).
pub type Build = fn(&BuildContext<'_>, toml::Table) -> Result<Box<dyn Source>, PipelineError>;

macro_rules! registry {
    ($($kind:ident),* $(,)?) => {
        $(pub mod $kind;)*
        /// Every source type and its builder.
        pub const REGISTRY: &[(&str, Build)] = &[$((stringify!($kind), $kind::build)),*];
    };
}

registry!(inbox, http, demo, sqs);
