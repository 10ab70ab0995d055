//! The status vocabulary every service is mapped to, so that one alert
//! rule covers them all: `INIT`, `RUNNING`, `SUCCESS`, `FAIL`,
//! `PENDING_PAYMENT`, or a service's own word upper-cased where none of
//! these fits. Each service adapter (`src/services/`) maps its own words;
//! nothing else knows them.

use std::fmt;

/// A job's status in the common vocabulary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Status {
    /// Being initialised.
    #[default]
    Init,
    /// In progress.
    Running,
    /// Done; final.
    Success,
    /// Failed; final.
    Fail,
    /// A yearly/monthly order waits for payment.
    PendingPayment,
    /// A word no common status fits, upper-cased (not final).
    Other(Box<str>),
}

impl Status {
    /// Reads a status of the common vocabulary (as recorded or printed);
    /// any other word becomes [`Status::Other`], upper-cased.
    pub fn parse(word: &str) -> Status {
        match word {
            "INIT" => Status::Init,
            "RUNNING" => Status::Running,
            "SUCCESS" => Status::Success,
            "FAIL" => Status::Fail,
            "PENDING_PAYMENT" => Status::PendingPayment,
            other => Status::other(other),
        }
    }

    /// [`Status::Other`] of a service's word, upper-cased.
    pub fn other(word: &str) -> Status {
        if word.bytes().any(|b| b.is_ascii_lowercase()) {
            Status::Other(word.to_ascii_uppercase().into_boxed_str())
        } else {
            Status::Other(word.into())
        }
    }

    /// The word of the common vocabulary.
    pub fn as_str(&self) -> &str {
        match self {
            Status::Init => "INIT",
            Status::Running => "RUNNING",
            Status::Success => "SUCCESS",
            Status::Fail => "FAIL",
            Status::PendingPayment => "PENDING_PAYMENT",
            Status::Other(other) => other,
        }
    }

    /// SUCCESS and FAIL: the job will never change again.
    pub fn is_final(&self) -> bool {
        matches!(self, Status::Success | Status::Fail)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary() {
        for word in ["INIT", "RUNNING", "SUCCESS", "FAIL", "PENDING_PAYMENT"] {
            assert_eq!(Status::parse(word).as_str(), word);
            assert!(!matches!(Status::parse(word), Status::Other(_)));
        }
        assert_eq!(Status::parse("WAITING_EXECUTE").as_str(), "WAITING_EXECUTE");
        assert_eq!(Status::parse("Listening").as_str(), "LISTENING");
        assert!(Status::Fail.is_final() && Status::Success.is_final());
        assert!(!Status::PendingPayment.is_final() && !Status::other("x").is_final());
    }
}
