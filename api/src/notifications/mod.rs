//! Notifications: the catalogue of types now; per-user Control and Roll-up settings, event
//! fan-out and the live panel build on it.

pub mod catalog;
pub mod control;
pub mod fanout;
pub mod feed;
pub mod panel;
pub mod roll_up;
pub mod writer;
