//! Activities and everything that reminds people of them: the activity settings page
//! (seeds/001), the activities the CRM keeps in sync, the reminder and escalation plan, and
//! the SMS gateway that texts go through. The worker's scheduler and delivery read these.

pub mod plan;
pub mod records;
pub mod settings;
pub mod sms;
