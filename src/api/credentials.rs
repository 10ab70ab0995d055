//! The credential chain (stub; being written).
