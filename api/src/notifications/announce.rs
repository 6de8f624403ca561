//! Telling open panels about new rows, after the commit that wrote them: this process's
//! panels directly, the other processes' over the bus, with one message per event for the
//! rows it created ([`EventRows`]) rather than one per user.

use std::{collections::HashMap, sync::Arc};

use entity::notification;
use uuid::Uuid;

use super::panel::{channel, Announcement};
use crate::state::AppState;

/// Announces new panel rows on their users' channels (after the commit that wrote them):
/// one message per user with their rows, so that a live panel shows them without reading the
/// database. The counts are not in it: only a panel that is open reads them (see
/// [`super::feed`]), so a publish costs nothing for users who are away.
///
/// This process's panels get the rows as values. The other processes get, for each event
/// (rows touched by one event share its position), its new rows as one [`EventRows`] message
/// and its bumped rows one per user, in the order of the positions, so that a panel elsewhere
/// still sees each user's rows in order: one message through Redis for an account-wide
/// event, not ten thousand.
pub async fn announce(app: &AppState, notifications: &[notification::Model]) {
    if notifications.is_empty() {
        return;
    }
    let mut by_user: HashMap<Uuid, Vec<Arc<notification::Model>>> = HashMap::new();
    for n in notifications {
        by_user.entry(n.user_id).or_default().push(Arc::new(n.clone()));
    }
    let local: Vec<(String, Arc<Announcement>)> = by_user.into_iter().map(|(user, rows)| (channel(user), Arc::new(Announcement::Rows { rows }))).collect();
    app.bus.deliver_values(&local);
    if app.bus.is_redis() {
        if let Err(e) = announce_elsewhere(app, notifications) {
            tracing::warn!(error = %e, "notifications not announced to the other processes");
        }
    }
}

fn announce_elsewhere(app: &AppState, notifications: &[notification::Model]) -> Result<(), serde_json::Error> {
    let mut by_position: std::collections::BTreeMap<Uuid, Vec<&notification::Model>> = std::collections::BTreeMap::new();
    for n in notifications {
        by_position.entry(n.position).or_default().push(n);
    }
    let mut messages = Vec::new();
    for rows in by_position.into_values() {
        let (new, bumped): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.count == 1);
        if let Some(&first) = new.first() {
            let rows = new.iter().map(|r| (r.user_id, r.id, r.position)).collect();
            messages.push((EVENT_ROWS.to_string(), serde_json::to_string(&EventRows { row: first.clone(), rows })?));
        }
        for row in bumped {
            messages.push((channel(row.user_id), serde_json::to_string(&Announcement::Rows { rows: vec![Arc::new(row.clone())] })?));
        }
    }
    app.bus.publish_remote(&messages);
    Ok(())
}

/// Bus topic of [`EventRows`].
pub const EVENT_ROWS: &str = "event-rows";

/// New rows of one event, as one message between processes: a row of them whole (new rows of
/// one event differ only in id, user and position) and each row's user, id and position.
#[derive(serde::Serialize, serde::Deserialize)]
struct EventRows {
    row: notification::Model,
    rows: Vec<(Uuid, Uuid, Uuid)>,
}

/// Turns an [`EventRows`] from another process into the announcements of the panels open in
/// this one; registered on the bus by [`crate::server::Server::bind`].
pub struct EventRowsExpander;

impl crate::bus::Expand for EventRowsExpander {
    fn expand(&self, payload: &str, open: &dyn Fn(&str) -> bool) -> Result<Vec<(String, crate::bus::Message)>, crate::bus::Unreadable> {
        let EventRows { row, rows } = serde_json::from_str(payload)?;
        Ok(rows
            .into_iter()
            .filter_map(|(user_id, id, position)| {
                let channel = channel(user_id);
                open(&channel).then(|| {
                    let row = Arc::new(notification::Model { id, user_id, position, ..row.clone() });
                    (channel, crate::bus::Message::of_value(Announcement::Rows { rows: vec![row] }))
                })
            })
            .collect())
    }
}
