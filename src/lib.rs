//! skewer
