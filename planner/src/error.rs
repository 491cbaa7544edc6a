//! The planner's errors. Every variant is bad input (a record, a parameter, a plan file);
//! broken invariants inside the planner are bugs and panic in debug builds instead.

/// What the planner refuses, and why.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A planning parameter is out of range (reducers, spare, window, target size).
    #[error("{0}")]
    InvalidParams(String),
    /// A history record is well-formed JSON but not a valid run.
    #[error("run {run_id:?}: {reason}")]
    BadRun { run_id: String, reason: String },
    /// Two history records claim the same run.
    #[error("run {run_id:?} appears twice in the history")]
    DuplicateRun { run_id: String },
    /// A serialised plan decodes but breaks a plan invariant (edited by hand, or corrupt).
    #[error("invalid plan: {0}")]
    BadPlan(String),
    /// A serialised plan does not decode.
    #[error("cannot decode plan: {0}")]
    Decode(String),
}
