//! skewer's integration tests: one binary (faster to build and link), one module per area.

/// Helpers: running the real binary, temp dirs.
mod util;

/// `skewer plan`: tables and JSON on the sample histories, errors on bad ones.
mod plan_cli;

/// A naive explode and seeded random records, the reference for the real explode.
mod reference;

/// `skewer run` and `skewer gen`: every dialect end to end, output layout, determinism.
mod run;

/// Writing safely: crash at every publish step, recovery, the lock, bad-record limits.
mod publish;

/// Bad input of every kind: rejected with its place and reason, never a panic.
mod malformed;

/// Real HubSpot payload shapes, each file's rows against the expected rows.
mod hubspot;

/// `skewer inspect`: a healthy dataset passes; unsorted, stray and unlisted files fail.
mod inspect;

/// `skewer replay`: dates in order, missing and failing ones reported, resumable.
mod replay;

/// `--mode merge`: increments merged into stored partitions, untouched ones kept byte for
/// byte, crashes, bad stored files.
mod merge;

/// Seeded mutation fuzzing of the JSON parser and of whole runs over corrupt files.
mod fuzz;

/// Multi-process runs (`--hosts`) on 127.0.0.1: the one-process bytes, a killed process,
/// processes that differ.
mod cluster;

/// Plans that see tonight's input: drifted histories, one process and two.
mod drift;

/// S3 in and out against a real S3-compatible server (s3s-fs) on 127.0.0.1.
#[cfg(feature = "s3")]
mod s3;
