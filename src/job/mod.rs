//! The identity of a watched job and the vocabulary shared by every
//! service.

pub mod id;
