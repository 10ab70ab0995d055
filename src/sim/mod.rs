//! The job API simulator (stub; being written).
