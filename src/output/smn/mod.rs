//! SMN topics: a [`Transport`](crate::output::delivery::Transport) that
//! publishes each queued event to a Simple Message Notification topic.

pub mod message;
