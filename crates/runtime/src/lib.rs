//! This layer grows with `weft serve`; see DESIGN.md for its place.
