//! The CRM's own objects that Herald mirrors: accounts, users, contacts (with persons and
//! assignees) and projects. Partners keep them in sync through the API; notifications,
//! reminders and mail linking read them.
//!
//! Each function checks the caller's rights, scopes every read and write to the caller's
//! account, validates input before writing, and runs its writes in one [`Change`]
//! (transaction + audit row).
//!
//! [`Change`]: crate::audit::Change

pub mod accounts;
pub mod add_ons;
pub mod contacts;
pub mod projects;
pub mod users;
