//! Weft integration tests: one binary, a module per area.
