//! Notifications: the catalogue of types; publishing ([`publish`]) and the writer that
//! batches it; the fan-out engine ([`fanout`]) with the switches it resolves ([`switches`]);
//! changing the Control and Roll-up settings ([`control`], [`roll_up`]); the panel, its
//! counts ([`counts`]), its live feed, and the announcements of new rows to open panels
//! ([`announce`]).

pub mod announce;
pub mod catalog;
pub mod control;
pub mod counts;
pub mod fanout;
pub mod feed;
pub mod panel;
pub mod publish;
pub mod roll_up;
pub mod switches;
pub mod writer;

pub use announce::announce;
