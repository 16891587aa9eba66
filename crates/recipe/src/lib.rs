//! The Weft recipe document: parsing YAML or JSON, checking it with every problem located,
//! and the template and jq languages that recipes are written in. Pure: no I/O, no async.

pub mod compile;
pub mod detect;
pub mod duration;
mod filters;
pub mod jq;
pub mod jq_bounds;
mod jq_direct;
pub mod location;
pub mod lookup;
pub mod model;
pub mod node;
pub mod share;
pub mod template;
pub mod text;

pub use compile::{ActionInfo, Catalog, compile_recipe};
pub use location::{Problem, Problems, Span};
pub use model::Recipe;

/// The workspace a recipe belongs to when nobody says otherwise (the store's first
/// workspace has the same id).
pub const DEFAULT_WORKSPACE: &str = "default";
