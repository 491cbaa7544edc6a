//! skewer's integration tests: one binary (faster to build and link), one module per area.

/// Helpers: running the real binary, temp dirs.
mod util;

/// `skewer plan`: tables and JSON on the sample histories, errors on bad ones.
mod plan_cli;
