//! Workflow communications (seeds/003): workflows of ordered actions that customers go
//! through, sent automatically at the organisation's time on business days.
//!
//! [`calendar`]: each account's scheduling time and business days; [`groups`]: groups of
//! users that may send; [`templates`]: subjects and bodies over customer, contact and sender
//! fields; [`definitions`]: workflows and their actions, saved whole; [`plan`]: customers in
//! workflows and their planned actions, re-planned on change, to-dos regenerated when
//! contacts are corrected; [`send`]: the daily runs (a worker step) with the sender rules and
//! the to-do fallback; [`letters`]: letters as PDF and the postal provider; [`views`]: the
//! actions list, the customer timeline and the team activity.
pub mod calendar;
pub mod definitions;
pub mod groups;
pub mod letters;
pub mod plan;
pub mod send;
pub mod templates;
pub mod views;
