//! When digests are sent: a cron schedule in an IANA time zone, and the
//! windows between its occurrences. A window runs from one occurrence to
//! the next, so consecutive windows tile time and every event falls in
//! exactly one. Daylight saving follows the cron library's rules, pinned
//! by tests: a time that does not exist on the spring-forward day fires
//! at the first instant after the gap, and a time that happens twice on
//! the fall-back day fires once, at the first.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::str::FromStr;

/// A parsed `schedule` and `timezone`.
#[derive(Clone)]
pub struct Schedule {
    source: String,
    cron: croner::Cron,
    timezone: Tz,
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} in {}", self.source, self.timezone)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.timezone == other.timezone
    }
}

/// One window of a digest: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// What a digest has to do about its windows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing: the next window has not ended.
    Wait { until: DateTime<Utc> },
    /// This window ended (within the catch-up allowance): send it.
    Send(Window),
    /// Windows that ended before the catch-up allowance, merged into one:
    /// record them as skipped.
    Skip(Window),
}

impl Schedule {
    /// Parses a five-field cron expression (minute hour day-of-month month
    /// day-of-week) in `timezone`. The error names the field at fault.
    pub fn parse(cron: &str, timezone: &str) -> Result<Schedule, (&'static str, String)> {
        let source = cron.trim().to_owned();
        let fields = source.split_whitespace().count();
        if !source.starts_with('@') && fields != 5 {
            return Err((
                "schedule",
                format!(
                    "invalid schedule \"{source}\": expected 5 fields (minute hour day-of-month month day-of-week), found {fields}"
                ),
            ));
        }
        let parsed =
            croner::Cron::from_str(&source).map_err(|e| ("schedule", format!("invalid schedule \"{source}\": {e}")))?;
        let tz = Tz::from_str(timezone.trim()).map_err(|_| {
            (
                "timezone",
                format!("unknown time zone \"{timezone}\" (an IANA name such as \"Europe/Lisbon\", or \"UTC\")"),
            )
        })?;
        let schedule = Schedule { source, cron: parsed, timezone: tz };
        if schedule.next_after(Utc::now()).is_none() {
            return Err(("schedule", format!("schedule \"{}\" never fires", schedule.source)));
        }
        Ok(schedule)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The first occurrence strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.timezone);
        self.cron.find_next_occurrence(&local, false).ok().map(|d| d.with_timezone(&Utc))
    }

    /// The last occurrence at or before `t`.
    pub fn last_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.timezone);
        self.cron.find_previous_occurrence(&local, true).ok().map(|d| d.with_timezone(&Utc))
    }

    /// The last occurrence strictly before `t`.
    pub fn previous_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.timezone);
        self.cron.find_previous_occurrence(&local, false).ok().map(|d| d.with_timezone(&Utc))
    }

    /// The last window complete at `at`: from the occurrence before the
    /// last one, to the last one.
    pub fn last_complete(&self, at: DateTime<Utc>) -> Option<Window> {
        let end = self.last_at_or_before(at)?;
        Some(Window { start: self.previous_before(end)?, end })
    }

    /// The window before `window`, for comparisons: from the occurrence
    /// before its start to its start.
    pub fn window_before(&self, window: Window) -> Window {
        let start = self.previous_before(window.start).unwrap_or(window.start - (window.end - window.start));
        Window { start, end: window.start }
    }

    /// What to do at `now`, when the last window claimed ended at
    /// `last_end` (`None`: the digest never ran). Once a scheduled time has
    /// passed, everything since the last window is one window up to the
    /// latest scheduled time: a relay that was down, or a schedule changed
    /// to a shorter period, sends one digest, not one per time it missed.
    /// Time that ended more than `catch_up` before `now` is skipped. So
    /// windows tile time: no event falls between two windows or in two.
    pub fn due(&self, last_end: Option<DateTime<Utc>>, now: DateTime<Utc>, catch_up: std::time::Duration) -> Due {
        let horizon = now - chrono::Duration::from_std(catch_up).unwrap_or(chrono::Duration::MAX);
        let far = now + chrono::Duration::days(366);
        let Some(start) = last_end else {
            // First run: the last complete window, if recent enough.
            return match self.last_complete(now) {
                Some(w) if w.end >= horizon => Due::Send(w),
                _ => Due::Wait { until: self.next_after(now).unwrap_or(far) },
            };
        };
        let Some(first_end) = self.next_after(start) else { return Due::Wait { until: far } };
        if first_end > now {
            return Due::Wait { until: first_end };
        }
        let latest = self.last_at_or_before(now).filter(|t| *t >= first_end).unwrap_or(first_end);
        if first_end < horizon {
            // Up to the last scheduled time before the horizon, at once;
            // what follows it is sent on the next look.
            let skipped_to = self.previous_before(horizon).filter(|t| *t >= first_end).unwrap_or(first_end);
            return Due::Skip(Window { start, end: skipped_to });
        }
        Due::Send(Window { start, end: latest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::time::Duration;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn bad_schedules_and_zones_name_their_field() {
        let (field, e) = Schedule::parse("0 9 * *", "UTC").unwrap_err();
        assert_eq!(field, "schedule");
        assert!(e.contains("expected 5 fields"), "{e}");
        let (field, e) = Schedule::parse("61 9 * * *", "UTC").unwrap_err();
        assert_eq!(field, "schedule");
        assert!(e.starts_with("invalid schedule \"61 9 * * *\""), "{e}");
        let (field, e) = Schedule::parse("0 9 * * *", "Europe/Lisbn").unwrap_err();
        assert_eq!(
            (field, e.as_str()),
            ("timezone", "unknown time zone \"Europe/Lisbn\" (an IANA name such as \"Europe/Lisbon\", or \"UTC\")")
        );
        let (_, e) = Schedule::parse("0 0 30 2 *", "UTC").unwrap_err();
        assert!(e.contains("never fires"), "{e}");
    }

    #[test]
    fn windows_run_from_one_occurrence_to_the_next_in_the_time_zone() {
        let s = Schedule::parse("0 9 * * *", "Europe/Lisbon").unwrap();
        // Lisbon is UTC+1 in summer: 09:00 local is 08:00 UTC.
        let w = s.last_complete(utc(2026, 7, 15, 12, 0)).unwrap();
        assert_eq!(w, Window { start: utc(2026, 7, 14, 8, 0), end: utc(2026, 7, 15, 8, 0) });
        assert_eq!(s.window_before(w), Window { start: utc(2026, 7, 13, 8, 0), end: utc(2026, 7, 14, 8, 0) });
        // Exactly at an occurrence, that occurrence ends the window.
        assert_eq!(s.last_complete(utc(2026, 7, 15, 8, 0)).unwrap().end, utc(2026, 7, 15, 8, 0));
    }

    #[test]
    fn each_window_is_sent_once_it_has_ended() {
        let s = Schedule::parse("0 9 * * *", "UTC").unwrap();
        let last = Some(utc(2026, 7, 14, 9, 0));
        assert_eq!(s.due(last, utc(2026, 7, 15, 8, 59), DAY), Due::Wait { until: utc(2026, 7, 15, 9, 0) });
        let w = Window { start: utc(2026, 7, 14, 9, 0), end: utc(2026, 7, 15, 9, 0) };
        assert_eq!(s.due(last, utc(2026, 7, 15, 9, 0), DAY), Due::Send(w));
        // Down at 09:00, back at 20:00: the missed window is sent.
        assert_eq!(s.due(last, utc(2026, 7, 15, 20, 0), DAY), Due::Send(w));
    }

    #[test]
    fn windows_older_than_catch_up_are_skipped_together() {
        let s = Schedule::parse("0 9 * * *", "UTC").unwrap();
        // Last sent the window ending July 10th; back on the 15th at 12:00.
        let now = utc(2026, 7, 15, 12, 0);
        let skip = s.due(Some(utc(2026, 7, 10, 9, 0)), now, DAY);
        assert_eq!(skip, Due::Skip(Window { start: utc(2026, 7, 10, 9, 0), end: utc(2026, 7, 14, 9, 0) }));
        // Then the window ending within the allowance is sent.
        let send = s.due(Some(utc(2026, 7, 14, 9, 0)), now, DAY);
        assert_eq!(send, Due::Send(Window { start: utc(2026, 7, 14, 9, 0), end: utc(2026, 7, 15, 9, 0) }));
        // A digest that never ran sends the last window only if recent.
        assert!(matches!(s.due(None, now, DAY), Due::Send(w) if w.end == utc(2026, 7, 15, 9, 0)));
        assert!(matches!(s.due(None, now, Duration::from_secs(3600)), Due::Wait { .. }));
    }

    #[test]
    fn missed_times_within_catch_up_make_one_window() {
        let s = Schedule::parse("0 * * * *", "UTC").unwrap();
        // Hourly; the relay was down from 09:30 to 12:30.
        let w = Window { start: utc(2026, 7, 15, 9, 0), end: utc(2026, 7, 15, 12, 0) };
        assert_eq!(s.due(Some(utc(2026, 7, 15, 9, 0)), utc(2026, 7, 15, 12, 30), DAY), Due::Send(w));
        // A daily digest changed to hourly at 12:30 sends 09:00 to 12:00 once, then hourly.
        assert_eq!(s.due(Some(w.end), utc(2026, 7, 15, 12, 30), DAY), Due::Wait { until: utc(2026, 7, 15, 13, 0) });
    }

    #[test]
    fn a_changed_schedule_takes_over_from_the_last_window() {
        // Daily at 09:00 until now; changed to 18:00 at noon.
        let s = Schedule::parse("0 18 * * *", "UTC").unwrap();
        let last_end = Some(utc(2026, 7, 15, 9, 0));
        assert_eq!(s.due(last_end, utc(2026, 7, 15, 12, 0), DAY), Due::Wait { until: utc(2026, 7, 15, 18, 0) });
        let w = Window { start: utc(2026, 7, 15, 9, 0), end: utc(2026, 7, 15, 18, 0) };
        assert_eq!(s.due(last_end, utc(2026, 7, 15, 18, 0), DAY), Due::Send(w));
    }

    /// Every window a daily schedule sends between `from` and `to`, stepping
    /// an injected clock one minute at a time.
    fn windows_sent(s: &Schedule, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Window> {
        let mut sent = Vec::new();
        let mut last_end = Some(from);
        let mut now = from;
        while now <= to {
            match s.due(last_end, now, DAY) {
                Due::Send(w) => {
                    sent.push(w);
                    last_end = Some(w.end);
                }
                Due::Skip(w) => panic!("skipped {w:?}"),
                Due::Wait { .. } => now += chrono::Duration::minutes(1),
            }
        }
        sent
    }

    #[test]
    fn spring_forward_day_fires_once_at_the_first_instant_after_the_gap() {
        // Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        let s = Schedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
        let sent = windows_sent(&s, utc(2026, 3, 28, 1, 30), utc(2026, 3, 31, 0, 0));
        let ends: Vec<DateTime<Utc>> = sent.iter().map(|w| w.end).collect();
        // 02:30 CET = 01:30 UTC; on the day, 03:00 CEST = 01:00 UTC; after, 02:30 CEST = 00:30 UTC.
        assert_eq!(ends, vec![utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]);
        // The windows tile: each starts where the last ended.
        assert_eq!(sent[0].start, utc(2026, 3, 28, 1, 30));
        assert_eq!(sent[1].start, sent[0].end);
    }

    #[test]
    fn fall_back_day_fires_once_at_the_first_of_the_two_times() {
        // Berlin, 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
        let s = Schedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
        let sent = windows_sent(&s, utc(2026, 10, 24, 0, 30), utc(2026, 10, 27, 0, 0));
        let ends: Vec<DateTime<Utc>> = sent.iter().map(|w| w.end).collect();
        // 02:30 CEST = 00:30 UTC (the first); the second 02:30 (01:30 UTC) does not fire.
        assert_eq!(ends, vec![utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]);
        assert_eq!(sent[1].start, sent[0].end);
    }

    #[test]
    fn a_morning_digest_keeps_local_time_across_both_changes() {
        let s = Schedule::parse("0 9 * * *", "Europe/Lisbon").unwrap();
        let spring = windows_sent(&s, utc(2026, 3, 28, 9, 0), utc(2026, 3, 30, 12, 0));
        assert_eq!(
            spring.iter().map(|w| w.end).collect::<Vec<_>>(),
            vec![utc(2026, 3, 29, 8, 0), utc(2026, 3, 30, 8, 0)]
        );
        let autumn = windows_sent(&s, utc(2026, 10, 24, 8, 0), utc(2026, 10, 26, 12, 0));
        assert_eq!(
            autumn.iter().map(|w| w.end).collect::<Vec<_>>(),
            vec![utc(2026, 10, 25, 9, 0), utc(2026, 10, 26, 9, 0)]
        );
    }
}
