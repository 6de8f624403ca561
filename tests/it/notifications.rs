//! Notifications: the catalogue of types as the settings page reads it.

use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_settings_page_reads_every_type_with_its_rules() {
    let app = spawn_app().await;
    let (_, token) = app.user("Una", "USER").await;
    let body = app
        .gql(Some(&token), "{ notificationTypes { type label concernsContact stronglyEncouraged requiresAddOn requiresIntegration } }", json!({}))
        .await;
    let types = body["data"]["notificationTypes"].as_array().expect("a list").clone();
    assert_eq!(types.len(), 44);
    let find = |t: &str| -> Value { types.iter().find(|i| i["type"] == t).cloned().unwrap_or_else(|| panic!("{t} missing")) };
    assert_eq!(types[0]["type"], "ACCOUNT_PAUSED", "the settings page's order");
    assert_eq!(
        find("THUMBTACK"),
        json!({"type": "THUMBTACK", "label": "ThumbTack", "concernsContact": true, "stronglyEncouraged": false, "requiresAddOn": null, "requiresIntegration": "THUMBTACK"})
    );
    assert_eq!(find("TEXT_RECEIVED")["requiresAddOn"], "TEXT_MESSAGING");
    assert_eq!(find("EMAIL_FAILED_ERROR")["stronglyEncouraged"], true);
    assert_eq!(find("CLIENT_EXPORT")["concernsContact"], false, "AU switches do not apply to exports");
    for raised in ["ACTIVITY_REMINDER", "LATE_ACTIVITY", "INTEGRATION_REAUTHENTICATION_REQUIRED", "CONTACT_MAPPING_ERROR", "DATA_SYNC_SUMMARY", "INTEGRATION_ENABLED", "INTEGRATION_DISABLED", "AUTOMATED_COMMUNICATION_NEEDS_ATTENTION"] {
        find(raised);
    }
}
