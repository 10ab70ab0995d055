//! Talking to Huawei Cloud: request signing (SDK-HMAC-SHA256), the
//! credential chain, the HTTP client and the classification of answers.
//! Nothing here knows a particular service's job API; see
//! `src/services/` for those.

pub mod client;
pub mod credentials;
pub mod error;
pub mod secret;
pub mod sign;
pub mod transport;
