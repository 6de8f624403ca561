//! When an account's automatic communications go out (seeds/003): once a day at its
//! scheduling time (08:30 by default, 24-hour) in its time zone, on business days only:
//! Monday to Friday, less the holidays the account adds.
//!
//! A run is named by its local date. The run for date `d` sends every automatic action due
//! on or before `d`, so an action falling due on a weekend or a holiday goes out with the
//! next business day's run, and a worker that was down catches up with one run (the latest
//! business day whose time has come), not one per missed day.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use entity::{account, communication_calendar};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter};
use uuid::Uuid;

use crate::{
    audit::Change,
    auth::Caller,
    error::{ApiError, ApiResult},
    state::AppState,
};

/// The default scheduling time.
pub fn default_time() -> NaiveTime {
    NaiveTime::from_hms_opt(8, 30, 0).expect("08:30 is a time")
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
    pub tz: Tz,
    pub time: NaiveTime,
    pub holidays: BTreeSet<NaiveDate>,
}

impl Calendar {
    pub fn new(tz: Tz, time: NaiveTime, holidays: impl IntoIterator<Item = NaiveDate>) -> Self {
        Self { tz, time, holidays: holidays.into_iter().collect() }
    }

    pub fn is_business_day(&self, d: NaiveDate) -> bool {
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !self.holidays.contains(&d)
    }

    /// `d` if it is a business day, else the next one.
    pub fn business_day_from(&self, d: NaiveDate) -> NaiveDate {
        let mut day = d;
        // A year of holidays cannot hide every business day for long; the bound only guards
        // against a calendar made of nothing but holidays.
        for _ in 0..(366 * 2) {
            if self.is_business_day(day) {
                return day;
            }
            day = day.succ_opt().unwrap_or(day);
        }
        day
    }

    /// The business day before `d` (strictly).
    pub fn business_day_before(&self, d: NaiveDate) -> NaiveDate {
        let mut day = d.pred_opt().unwrap_or(d);
        for _ in 0..(366 * 2) {
            if self.is_business_day(day) {
                return day;
            }
            day = day.pred_opt().unwrap_or(day);
        }
        day
    }

    /// The moment of `d`'s run: the scheduling time on `d` in the time zone. When a
    /// daylight-saving change skips that time (02:30 on a spring-forward night) the run is at
    /// the first moment after the gap; when it happens twice (autumn), at the first.
    pub fn run_at(&self, d: NaiveDate) -> DateTime<Utc> {
        let local = d.and_time(self.time);
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            LocalResult::None => {
                // Walk forward a minute at a time to the end of the gap (at most a few hours).
                let mut probe = local;
                for _ in 0..(24 * 60) {
                    probe += Duration::minutes(1);
                    if let Some(t) = self.tz.from_local_datetime(&probe).earliest() {
                        return t.with_timezone(&Utc);
                    }
                }
                Utc.from_utc_datetime(&local)
            }
        }
    }

    /// The local date at `now`.
    pub fn today(&self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.tz).date_naive()
    }

    /// The run due at `now`, if one: the latest business day whose run time has come, if it
    /// is later than `last_run` (the date of the account's last run).
    pub fn due_run(&self, now: DateTime<Utc>, last_run: Option<NaiveDate>) -> Option<NaiveDate> {
        let today = self.today(now);
        let mut candidate = self.business_day_from(today);
        if candidate != today || self.run_at(candidate) > now {
            candidate = self.business_day_before(today);
        }
        match last_run {
            Some(done) if done >= candidate => None,
            _ => Some(candidate),
        }
    }

    /// The next run after `now` (for display: "next send").
    pub fn next_run(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut day = self.business_day_from(self.today(now));
        if self.run_at(day) <= now {
            day = self.business_day_from(day.succ_opt().unwrap_or(day));
        }
        self.run_at(day)
    }
}

/// An account's calendar as set (the defaults when never saved) and its version (0: never).
pub async fn load(db: &impl ConnectionTrait, account: &account::Model) -> ApiResult<(Calendar, i32)> {
    let tz: Tz = account.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let Some(row) = communication_calendar::Entity::find_by_id(account.id).one(db).await? else {
        return Ok((Calendar::new(tz, default_time(), []), 0));
    };
    let time = parse_time(&row.scheduling_time).unwrap_or_else(default_time);
    let holidays: Vec<NaiveDate> = serde_json::from_value(row.holidays.clone()).unwrap_or_default();
    Ok((Calendar::new(tz, time, holidays), row.version))
}

/// "08:30" → 08:30; 24-hour, two digits each.
pub fn parse_time(value: &str) -> Option<NaiveTime> {
    let (h, m) = value.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}

/// The calendar page (company admins, READ keys).
pub async fn get(db: &impl ConnectionTrait, caller: &Caller) -> ApiResult<(Calendar, i32)> {
    caller.require_admin_or_read_key()?;
    let account = account::Entity::find_by_id(caller.account_id).one(db).await?.ok_or(ApiError::NotFound("account"))?;
    load(db, &account).await
}

pub struct CalendarInput {
    pub expected_version: i32,
    /// 24-hour "HH:MM".
    pub scheduling_time: String,
    pub holidays: Vec<NaiveDate>,
}

/// Saves the scheduling time and the holidays (company admins, WRITE keys); audited.
pub async fn change(app: &AppState, caller: &Caller, input: CalendarInput) -> ApiResult<(Calendar, i32)> {
    caller.require_admin_or_write_key()?;
    let time = parse_time(&input.scheduling_time)
        .ok_or_else(|| ApiError::bad_input("input.schedulingTime", format!("{:?} is not a 24-hour time such as 08:30", input.scheduling_time)))?;
    let mut seen = BTreeSet::new();
    for (i, day) in input.holidays.iter().enumerate() {
        if !seen.insert(*day) {
            return Err(ApiError::bad_input(format!("input.holidays[{i}]"), format!("{day} is listed twice")));
        }
    }
    if seen.len() > 1000 {
        return Err(ApiError::bad_input("input.holidays", "at most 1,000 holidays"));
    }
    let mut change = Change::begin(app, caller).await?;
    let account = account::Entity::find_by_id(caller.account_id).one(change.db()).await?.ok_or(ApiError::NotFound("account"))?;
    let (before, version) = load(change.db(), &account).await?;
    if version != input.expected_version {
        return Err(ApiError::Conflict(format!("the calendar changed since version {} (now {version}): reload and try again", input.expected_version)));
    }
    let row = communication_calendar::Model {
        account_id: account.id,
        scheduling_time: time.format("%H:%M").to_string(),
        holidays: serde_json::to_value(&seen).map_err(|e| ApiError::Internal(e.into()))?,
        version: version + 1,
        updated_at: Utc::now(),
        updated_by: caller.user_id(),
    };
    let stale = || ApiError::Conflict("the calendar was changed by someone else meanwhile: reload and try again".into());
    if version == 0 {
        row.clone().into_active_model().reset_all().insert(change.db()).await.map_err(|e| match e.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => stale(),
            _ => e.into(),
        })?;
    } else {
        communication_calendar::Entity::update(row.clone().into_active_model().reset_all())
            .filter(communication_calendar::Column::Version.eq(version))
            .exec(change.db())
            .await
            .map_err(|e| match e {
                sea_orm::DbErr::RecordNotUpdated => stale(),
                e => e.into(),
            })?;
    }
    let snapshot = |c: &Calendar| serde_json::json!({ "schedulingTime": c.time.format("%H:%M").to_string(), "holidays": c.holidays });
    let after = Calendar::new(before.tz, time, seen);
    change.record(account.id, "communication_calendar.changed", "CommunicationCalendar", account.id, Some(&snapshot(&before)), Some(&snapshot(&after))).await?;
    change.commit().await?;
    Ok((after, version + 1))
}

/// The local date of `account`'s last run (started), if any.
pub async fn last_run(db: &impl ConnectionTrait, account_id: Uuid) -> ApiResult<Option<NaiveDate>> {
    use sea_orm::{QueryOrder, QuerySelect};
    Ok(entity::workflow_run::Entity::find()
        .select_only()
        .column(entity::workflow_run::Column::RunOn)
        .filter(entity::workflow_run::Column::AccountId.eq(account_id))
        .order_by_desc(entity::workflow_run::Column::RunOn)
        .into_tuple::<NaiveDate>()
        .one(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn utc(y: i32, m: u32, day: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, day, h, mi, 0).unwrap()
    }

    fn paris() -> Calendar {
        Calendar::new(chrono_tz::Europe::Paris, default_time(), [d(2026, 12, 25)])
    }

    #[test]
    fn times_are_24_hour() {
        assert_eq!(parse_time("08:30"), Some(default_time()));
        assert_eq!(parse_time("23:59"), NaiveTime::from_hms_opt(23, 59, 0));
        for bad in ["25:00", "8:30", "08:60", "0830", "noon", "24:00"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn business_days_skip_weekends_and_holidays() {
        let c = paris();
        assert!(c.is_business_day(d(2026, 12, 4)), "a Friday");
        assert!(!c.is_business_day(d(2026, 12, 5)), "a Saturday");
        assert_eq!(c.business_day_from(d(2026, 12, 5)), d(2026, 12, 7), "Saturday's actions go on Monday");
        assert_eq!(c.business_day_from(d(2026, 12, 25)), d(2026, 12, 28), "Christmas (a Friday) to Monday");
        assert_eq!(c.business_day_before(d(2026, 12, 28)), d(2026, 12, 24));
    }

    #[test]
    fn the_run_is_at_the_scheduling_time_in_the_time_zone() {
        let c = paris();
        // Winter: Paris is UTC+1.
        assert_eq!(c.run_at(d(2026, 12, 7)), utc(2026, 12, 7, 7, 30));
        assert_eq!(c.due_run(utc(2026, 12, 7, 7, 29), Some(d(2026, 12, 4))), None, "not before 08:30");
        assert_eq!(c.due_run(utc(2026, 12, 7, 7, 30), Some(d(2026, 12, 4))), Some(d(2026, 12, 7)));
        assert_eq!(c.due_run(utc(2026, 12, 7, 9, 0), Some(d(2026, 12, 7))), None, "once a day");
        let tokyo = Calendar::new(chrono_tz::Asia::Tokyo, NaiveTime::from_hms_opt(17, 0, 0).unwrap(), []);
        assert_eq!(tokyo.run_at(d(2026, 12, 7)), utc(2026, 12, 7, 8, 0));
        let ny = Calendar::new(chrono_tz::America::New_York, default_time(), []);
        assert_eq!(ny.run_at(d(2026, 7, 6)), utc(2026, 7, 6, 12, 30), "summer: UTC-4");
    }

    #[test]
    fn daylight_saving_changes_keep_the_local_time() {
        let ny = Calendar::new(chrono_tz::America::New_York, default_time(), []);
        // 2026-03-08 is a Sunday (the change); Friday before is UTC-5, Monday after UTC-4.
        assert_eq!(ny.run_at(d(2026, 3, 6)), utc(2026, 3, 6, 13, 30));
        assert_eq!(ny.run_at(d(2026, 3, 9)), utc(2026, 3, 9, 12, 30));
        // A scheduling time inside the skipped hour runs at its end.
        let night = Calendar::new(chrono_tz::America::New_York, NaiveTime::from_hms_opt(2, 30, 0).unwrap(), []);
        assert_eq!(night.run_at(d(2026, 3, 8)), utc(2026, 3, 8, 7, 0), "03:00 EDT");
        // Twice in the autumn: the first.
        let night = Calendar::new(chrono_tz::America::New_York, NaiveTime::from_hms_opt(1, 30, 0).unwrap(), []);
        assert_eq!(night.run_at(d(2026, 11, 1)), utc(2026, 11, 1, 5, 30), "01:30 EDT, not EST");
    }

    #[test]
    fn a_worker_that_was_down_catches_up_with_one_run() {
        let c = paris();
        // Down from Thursday's run to Monday noon: one run, Monday's.
        assert_eq!(c.due_run(utc(2026, 12, 7, 11, 0), Some(d(2026, 12, 2))), Some(d(2026, 12, 7)));
        // Back on Saturday: Friday's run (it sends what is due up to Friday).
        assert_eq!(c.due_run(utc(2026, 12, 5, 10, 0), Some(d(2026, 12, 3))), Some(d(2026, 12, 4)));
        // Back on Monday before 08:30: still Friday's.
        assert_eq!(c.due_run(utc(2026, 12, 7, 6, 0), Some(d(2026, 12, 3))), Some(d(2026, 12, 4)));
        assert_eq!(c.due_run(utc(2026, 12, 7, 6, 0), Some(d(2026, 12, 4))), None);
        assert_eq!(c.next_run(utc(2026, 12, 4, 9, 0)), utc(2026, 12, 7, 7, 30), "after Friday's run: Monday");
    }
}
