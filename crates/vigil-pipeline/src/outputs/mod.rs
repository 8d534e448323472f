//! The outputs, by the `type` their `[[outputs]]` table names. A new output is a
//! file here with a `build` function, and its name in the list below. (The
//! store and the response trigger are wired by the service itself: the store is
//! always there, and response has its own section.)

use crate::component::{BuildContext, Output};
use crate::PipelineError;

pub mod respond;
pub mod store;

/// Builds an output from its table (its `type` and `name` already taken out).
pub type Build = fn(&BuildContext<'_>, toml::Table) -> Result<Box<dyn Output>, PipelineError>;

macro_rules! registry {
    ($($kind:ident),* $(,)?) => {
        $(pub mod $kind;)*
        /// Every configurable output type and its builder.
        pub const REGISTRY: &[(&str, Build)] = &[$((stringify!($kind), $kind::build)),*];
    };
}

registry!(jsonl);
