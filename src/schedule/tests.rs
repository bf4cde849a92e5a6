use super::*;
use chrono::{NaiveDate, Weekday};
use chrono_tz::Europe::Copenhagen;

const CPH: Tz = Copenhagen;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// An unambiguous, existing Copenhagen wall-clock time as an instant.
fn cph(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    CPH.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .unwrap()
        .to_utc()
}

fn job(expr: &str) -> JobSchedule {
    JobSchedule::parse(expr).unwrap_or_else(|e| panic!("{e}"))
}

/// Every run in (from, to], by iterating `next_after`.
fn runs(job: &JobSchedule, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut at = from;
    while let Some(next) = job.next_after(at, CPH) {
        assert!(next > at, "{job}: next_after({at}) = {next}");
        if next > to {
            break;
        }
        out.push(next);
        at = next;
    }
    out
}

/// The transition nights: (date, spring).
const NIGHTS: [((i32, u32, u32), bool); 4] = [
    ((2026, 3, 29), true),
    ((2026, 10, 25), false),
    ((2027, 3, 28), true),
    ((2027, 10, 31), false),
];

#[test]
fn one_run_per_night_over_the_transition_nights() {
    for ((y, m, d), spring) in NIGHTS {
        let day = NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let before = day.pred_opt().unwrap();
        let after = day.succ_opt().unwrap();
        let midnight = |date: NaiveDate| {
            CPH.from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap())
                .single()
                .unwrap()
                .to_utc()
        };
        let at = |date: NaiveDate, h, mi| cph(date.year(), date.month(), date.day(), h, mi);
        for (expr, minute) in [("30 2 * * *", 30), ("0 2 * * *", 0)] {
            let job = job(expr);
            let found = runs(&job, midnight(before), midnight(after.succ_opt().unwrap()));
            let transition = if spring {
                // The gap: 02:00 CET → 03:00 CEST; both jobs run at 03:00 CEST = 01:00 UTC.
                utc(y, m, d, 1, 0)
            } else {
                // The repeated hour: the first (CEST, UTC+2) pass only.
                utc(y, m, d, 0, minute)
            };
            assert_eq!(
                found,
                vec![at(before, 2, minute), transition, at(after, 2, minute)],
                "{expr} around {day}"
            );
            // The runs inside the transition day, by local date: exactly one.
            let on_day = found
                .iter()
                .filter(|r| r.with_timezone(&CPH).date_naive() == day)
                .count();
            assert_eq!(on_day, 1, "{expr} on {day}");
        }
    }
}

#[test]
fn the_documented_instants() {
    // Spring 2026: 02:30 does not exist; the run is at 03:00 CEST = 01:00 UTC.
    let nightly = job("30 2 * * *");
    let spring = nightly.next_after(utc(2026, 3, 28, 12, 0), CPH).unwrap();
    assert_eq!(spring, utc(2026, 3, 29, 1, 0));
    assert_eq!(
        spring.with_timezone(&CPH).to_rfc3339(),
        "2026-03-29T03:00:00+02:00"
    );
    // Autumn 2026: 02:30 occurs twice; the run is at the first, 02:30 CEST = 00:30 UTC.
    let autumn = nightly.next_after(utc(2026, 10, 24, 12, 0), CPH).unwrap();
    assert_eq!(
        autumn.with_timezone(&CPH).to_rfc3339(),
        "2026-10-25T02:30:00+02:00"
    );
    // And not again from inside the repeated hour, in either pass.
    for after in [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 0, 45),
        utc(2026, 10, 25, 1, 15),
    ] {
        assert_eq!(
            nightly.next_after(after, CPH),
            Some(utc(2026, 10, 26, 1, 30))
        );
    }
    // Between the earliest and latest occurrence of 02:00: 02:30 CEST still lies ahead.
    assert_eq!(
        nightly.next_after(utc(2026, 10, 25, 0, 0), CPH),
        Some(utc(2026, 10, 25, 0, 30))
    );
    // In the spring, once the gap end has passed, the next run is the next night.
    for after in [utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 30)] {
        assert_eq!(
            nightly.next_after(after, CPH),
            Some(utc(2026, 3, 30, 0, 30))
        );
    }
    assert_eq!(
        nightly.next_after(utc(2026, 3, 29, 0, 59), CPH),
        Some(utc(2026, 3, 29, 1, 0))
    );
}

#[test]
fn interval_job_runs_in_both_passes_of_the_repeated_hour() {
    let half_hourly = job("*/30 * * * *");
    assert_eq!(
        runs(
            &half_hourly,
            utc(2026, 10, 24, 22, 45),
            utc(2026, 10, 25, 2, 45)
        ),
        vec![
            utc(2026, 10, 24, 23, 0),  // 01:00 CEST
            utc(2026, 10, 24, 23, 30), // 01:30 CEST
            utc(2026, 10, 25, 0, 0),   // 02:00 CEST
            utc(2026, 10, 25, 0, 30),  // 02:30 CEST
            utc(2026, 10, 25, 1, 0),   // 02:00 CET
            utc(2026, 10, 25, 1, 30),  // 02:30 CET
            utc(2026, 10, 25, 2, 0),   // 03:00 CET
            utc(2026, 10, 25, 2, 30),  // 03:30 CET
        ]
    );
    // Started from inside either pass, it continues with the next half hour.
    for (after, next) in [
        (utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 30)),
        (utc(2026, 10, 25, 0, 10), utc(2026, 10, 25, 0, 30)),
        (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 0)),
        (utc(2026, 10, 25, 0, 45), utc(2026, 10, 25, 1, 0)),
        (utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 1, 30)),
        (utc(2026, 10, 25, 1, 15), utc(2026, 10, 25, 1, 30)),
        (utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 2, 0)),
    ] {
        assert_eq!(
            half_hourly.next_after(after, CPH),
            Some(next),
            "after {after}"
        );
    }
    let hourly = job("0 * * * *");
    assert_eq!(
        runs(&hourly, utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 2, 30)),
        vec![
            utc(2026, 10, 25, 0, 0),
            utc(2026, 10, 25, 1, 0),
            utc(2026, 10, 25, 2, 0)
        ]
    );
    let at_hourly = job("@hourly");
    assert_eq!(
        runs(
            &at_hourly,
            utc(2026, 10, 24, 23, 30),
            utc(2026, 10, 25, 2, 30)
        ),
        runs(&hourly, utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 2, 30))
    );
}

#[test]
fn interval_job_runs_once_for_the_spring_gap() {
    let half_hourly = job("*/30 * * * *");
    assert_eq!(
        runs(&half_hourly, utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 2, 0)),
        vec![
            utc(2026, 3, 29, 0, 30), // 01:30 CET
            utc(2026, 3, 29, 1, 0),  // 03:00 CEST, covering 02:00, 02:30 and 03:00
            utc(2026, 3, 29, 1, 30), // 03:30 CEST
            utc(2026, 3, 29, 2, 0),  // 04:00 CEST
        ]
    );
    let quarterly = job("*/15 * * * *");
    let found = runs(&quarterly, utc(2026, 3, 29, 0, 40), utc(2026, 3, 29, 1, 20));
    assert_eq!(
        found,
        vec![
            utc(2026, 3, 29, 0, 45),
            utc(2026, 3, 29, 1, 0),
            utc(2026, 3, 29, 1, 15)
        ]
    );
    let hourly = job("0 * * * *");
    assert_eq!(
        runs(&hourly, utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 2, 30)),
        vec![
            utc(2026, 3, 29, 0, 0),
            utc(2026, 3, 29, 1, 0),
            utc(2026, 3, 29, 2, 0)
        ]
    );
}

#[test]
fn runs_per_local_day_through_both_years() {
    let from = cph(2026, 1, 1, 0, 0);
    let to = cph(2028, 1, 1, 0, 0);
    let per_day = |expr: &str| {
        let mut counts = std::collections::BTreeMap::<NaiveDate, usize>::new();
        for run in runs(
            &job(expr),
            from - TimeDelta::nanoseconds(1),
            to - TimeDelta::nanoseconds(1),
        ) {
            *counts
                .entry(run.with_timezone(&CPH).date_naive())
                .or_default() += 1;
        }
        counts
    };
    let spring = [
        NaiveDate::from_ymd_opt(2026, 3, 29).unwrap(),
        NaiveDate::from_ymd_opt(2027, 3, 28).unwrap(),
    ];
    let autumn = [
        NaiveDate::from_ymd_opt(2026, 10, 25).unwrap(),
        NaiveDate::from_ymd_opt(2027, 10, 31).unwrap(),
    ];
    for expr in [
        "30 2 * * *",
        "0 2 * * *",
        "59 2 * * *",
        "0 3 * * *",
        "@daily",
    ] {
        let counts = per_day(expr);
        assert_eq!(counts.len(), 730, "{expr}");
        assert!(counts.values().all(|&n| n == 1), "{expr}: {counts:?}");
    }
    // Every half hour: 48 runs a day; 46 on the spring days (02:00 and 02:30 fold into 03:00),
    // 50 on the autumn days (02:00 and 02:30 twice).
    for (day, n) in per_day("*/30 * * * *") {
        let expected = if spring.contains(&day) {
            46
        } else if autumn.contains(&day) {
            50
        } else {
            48
        };
        assert_eq!(n, expected, "*/30 on {day}");
    }
    // A job every hour from 01 to 03 o'clock is a time of day, not an interval: on the autumn
    // days 02:00 runs once; on the spring days 02:00 folds into 03:00.
    for (day, n) in per_day("0 1-3 * * *") {
        let expected = if spring.contains(&day) { 2 } else { 3 };
        assert_eq!(n, expected, "0 1-3 on {day}");
    }
}

#[test]
fn next_after_is_strictly_increasing_from_every_hour_of_2026_and_2027() {
    let jobs = [
        "30 2 * * *",
        "0 2 * * *",
        "*/30 * * * *",
        "*/15 * * * *",
        "0 * * * *",
        "0 1-3 * * *",
        "0 30 2 * * *",
        "30 */20 2 * * *",
        "0 4 * * 0",
    ];
    for expr in jobs {
        let job = job(expr);
        let mut at = utc(2025, 12, 31, 23, 0);
        let mut previous_next: Option<DateTime<Utc>> = None;
        while at < utc(2028, 1, 1, 0, 0) {
            for start in [
                at,
                at + TimeDelta::nanoseconds(1),
                at + TimeDelta::minutes(30),
            ] {
                let next = job.next_after(start, CPH).unwrap();
                assert!(next > start, "{expr}: next_after({start}) = {next}");
                // The next run is never before one found from an earlier start.
                if let Some(previous) = previous_next {
                    assert!(
                        next >= previous,
                        "{expr}: {start} gives {next} < {previous}"
                    );
                }
                previous_next = Some(next);
                // Nothing is skipped: the run before `next` is at or before `start`.
                assert!(
                    job.last_missed(start, next - TimeDelta::nanoseconds(1), CPH)
                        .is_none(),
                    "{expr}: a run between {start} and {next}"
                );
                assert_eq!(job.last_missed(start, next, CPH), Some(next), "{expr}");
            }
            at += TimeDelta::hours(1);
        }
    }
}

/// An independent oracle for minute-level jobs: walks every UTC minute and applies the rule
/// directly to the wall clock.
fn oracle(job: &JobSchedule, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    let mut at = from + TimeDelta::minutes(1);
    while at <= to {
        let local = at.with_timezone(&CPH).naive_local();
        let earlier = (at - TimeDelta::minutes(1))
            .with_timezone(&CPH)
            .naive_local();
        let scheduled = |wall: NaiveDateTime| job.schedule.includes(wall.and_utc());
        let runs = if local - earlier > TimeDelta::minutes(1) {
            // The first minute after a gap: any scheduled time in the gap or now.
            let mut wall = earlier + TimeDelta::minutes(1);
            let mut any = false;
            while wall <= local {
                any |= scheduled(wall);
                wall += TimeDelta::minutes(1);
            }
            any
        } else if scheduled(local) {
            // The second pass of a repeated time runs only for interval jobs.
            let second_pass = matches!(
                CPH.from_local_datetime(&local),
                LocalResult::Ambiguous(_, latest) if latest.to_utc() == at
            );
            !second_pass || job.interval
        } else {
            false
        };
        if runs {
            out.push(at);
        }
        at += TimeDelta::minutes(1);
    }
    out
}

#[test]
fn agrees_with_a_minute_by_minute_oracle_around_the_transitions() {
    let jobs = [
        "30 2 * * *",
        "0 2 * * *",
        "0 3 * * *",
        "*/15 * * * *",
        "*/7 * * * *",
        "0 * * * *",
        "0 1-3 * * *",
        "10,50 2 * * *",
        "* 2 * * *",
    ];
    for ((y, m, d), _) in NIGHTS {
        let from = utc(y, m, d, 0, 0) - TimeDelta::hours(4);
        let to = utc(y, m, d, 0, 0) + TimeDelta::hours(6);
        for expr in jobs {
            let job = job(expr);
            assert_eq!(
                runs(&job, from, to),
                oracle(&job, from, to),
                "{expr} on {y}-{m}-{d}"
            );
        }
    }
}

#[test]
fn five_and_six_field_forms_give_the_same_runs() {
    let from = utc(2027, 1, 3, 0, 0);
    let to = utc(2027, 1, 17, 0, 0);
    for (five, six) in [
        ("30 2 * * *", "0 30 2 * * *"),
        ("*/15 8-16 * * 1-5", "0 */15 8-16 * * MON-FRI"),
        (
            "*/15 8-16 * * mon-fri",
            "0 */15 8-16 * * Mon,Tue,Wed,Thu,Fri",
        ),
        ("0 6 1,15 * *", "0 0 6 1,15 * *"),
        ("0 4 * * 0", "0 0 4 * * SUN"),
        ("0 4 * * 7", "0 0 4 * * SUN"),
        ("0 4 * * */2", "0 0 4 * * SUN,TUE,THU,SAT"),
        // As in cronie, `1/2` is `1-7/2`, and 7 is Sunday.
        ("0 4 * * 1/2", "0 0 4 * * MON,WED,FRI,SUN"),
        ("0 4 * * 5-7", "0 0 4 * * FRI,SAT,SUN"),
        ("0 0 * * *", "@daily"),
        ("0 0 * * 0", "@weekly"),
    ] {
        let (five, six) = (job(five), job(six));
        let found = runs(&five, from, to);
        assert!(!found.is_empty(), "{five}");
        assert_eq!(found, runs(&six, from, to), "{five} vs {six}");
    }
    // The seven-field form with a year.
    assert_eq!(
        runs(
            &job("0 30 2 * * * 2027"),
            utc(2026, 12, 30, 0, 0),
            utc(2027, 1, 2, 0, 0)
        ),
        vec![utc(2027, 1, 1, 1, 30)]
    );
}

#[test]
fn days_of_week_are_numbered_as_in_classic_cron() {
    let monday = job("0 2 * * 1");
    let run = monday.next_after(utc(2027, 1, 1, 0, 0), CPH).unwrap();
    assert_eq!(run.with_timezone(&CPH).weekday(), Weekday::Mon);
    let sunday = job("0 4 * * 0");
    let run = sunday.next_after(utc(2027, 1, 1, 0, 0), CPH).unwrap();
    assert_eq!(run.with_timezone(&CPH).weekday(), Weekday::Sun);
}

#[test]
fn invalid_expressions_name_the_expression() {
    for expr in [
        "30 25 * * *",
        "61 2 * * *",
        "30 2 * * 8",
        "30 2 * * 5-1",
        "30 2 * * */0",
        "30 2 * * funday",
        "30 2 32 * *",
        "30 2 * 13 *",
        "0 2 1 * 1",
        "* * *",
        "0 0 0 0 0 0 0 0",
        "@fortnightly",
        "@daily 2",
        "x 2 * * *",
        "0 60 2 * * *",
    ] {
        let error = JobSchedule::parse(expr).expect_err(expr);
        let message = error.to_string();
        assert!(message.contains(&format!("`{expr}`")), "{message}");
        assert!(message.len() > expr.len() + 24, "{message}");
    }
    assert!(matches!(
        JobSchedule::parse("   "),
        Err(ScheduleError::Empty { .. })
    ));
    assert!(matches!(
        JobSchedule::parse("0 2 1 * 1"),
        Err(ScheduleError::DayOfMonthAndDayOfWeek { .. })
    ));
    assert!(matches!(
        JobSchedule::parse("* * *"),
        Err(ScheduleError::FieldCount { count: 3, .. })
    ));
    // A restricted day of month with `*`-led day of week is fine, and so is the reverse.
    job("0 2 1 * *");
    job("0 2 */2 * 1");
    job("0 2 * * 1");
}

#[test]
fn expression_display_and_from_str() {
    let job: JobSchedule = "  30 2 * * *  ".parse().unwrap();
    assert_eq!(job.expression(), "30 2 * * *");
    assert_eq!(job.to_string(), "30 2 * * *");
    assert_eq!(format!("{job}"), job.expression());
    for shorthand in ["@hourly", "@daily", "@weekly", "@monthly", "@yearly"] {
        assert_eq!(self::job(shorthand).expression(), shorthand);
    }
}

#[test]
fn deserializes_from_a_string() {
    #[derive(Deserialize)]
    struct Job {
        schedule: JobSchedule,
    }
    let parsed: Job = toml::from_str("schedule = \"30 2 * * *\"").unwrap();
    assert_eq!(parsed.schedule.expression(), "30 2 * * *");
    let parsed: JobSchedule = serde_json::from_str("\"0 30 2 * * *\"").unwrap();
    assert_eq!(parsed.to_string(), "0 30 2 * * *");
    let error = toml::from_str::<Job>("schedule = \"30 25 * * *\"")
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("invalid schedule `30 25 * * *`"), "{error}");
    assert!(serde_json::from_str::<JobSchedule>("42").is_err());
}

#[test]
fn last_missed_catches_up_once_with_the_latest_run() {
    let nightly = job("30 2 * * *");
    // Down for three and a half days: the 02:30 run of 2027-01-04 (CET, UTC+1).
    assert_eq!(
        nightly.last_missed(utc(2027, 1, 1, 0, 0), utc(2027, 1, 4, 12, 0), CPH),
        Some(cph(2027, 1, 4, 2, 30))
    );
    assert_eq!(cph(2027, 1, 4, 2, 30), utc(2027, 1, 4, 1, 30));
    // Nothing missed.
    assert_eq!(
        nightly.last_missed(utc(2027, 1, 4, 2, 0), utc(2027, 1, 4, 12, 0), CPH),
        None
    );
    assert_eq!(
        nightly.last_missed(utc(2027, 1, 4, 12, 0), utc(2027, 1, 4, 12, 0), CPH),
        None
    );
    assert_eq!(
        nightly.last_missed(utc(2027, 1, 4, 12, 0), utc(2027, 1, 4, 11, 0), CPH),
        None
    );
    // The interval is (since, now]: a run at `since` is not missed, a run at `now` is.
    let run = utc(2027, 1, 4, 1, 30);
    assert_eq!(nightly.last_missed(run, utc(2027, 1, 4, 12, 0), CPH), None);
    assert_eq!(
        nightly.last_missed(run - TimeDelta::nanoseconds(1), run, CPH),
        Some(run)
    );
    assert_eq!(
        nightly.last_missed(utc(2027, 1, 1, 0, 0), run, CPH),
        Some(run)
    );
    assert_eq!(
        nightly.last_missed(utc(2027, 1, 1, 0, 0), run - TimeDelta::nanoseconds(1), CPH),
        Some(utc(2027, 1, 3, 1, 30))
    );
    // Over the transitions.
    assert_eq!(
        nightly.last_missed(utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 1, 0), CPH),
        Some(utc(2026, 3, 29, 1, 0))
    );
    assert_eq!(
        nightly.last_missed(utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 0, 59), CPH),
        None
    );
    assert_eq!(
        nightly.last_missed(utc(2026, 10, 25, 0, 40), utc(2026, 10, 25, 1, 40), CPH),
        None,
        "02:30 CET is not a run of a time-of-day job"
    );
    assert_eq!(
        nightly.last_missed(utc(2026, 10, 24, 12, 0), utc(2026, 10, 25, 1, 40), CPH),
        Some(utc(2026, 10, 25, 0, 30))
    );
    let half_hourly = job("*/30 * * * *");
    assert_eq!(
        half_hourly.last_missed(utc(2026, 10, 25, 0, 40), utc(2026, 10, 25, 1, 10), CPH),
        Some(utc(2026, 10, 25, 1, 0))
    );
    assert_eq!(
        half_hourly.last_missed(utc(2026, 10, 25, 0, 10), utc(2026, 10, 25, 0, 40), CPH),
        Some(utc(2026, 10, 25, 0, 30))
    );
}

#[test]
fn last_missed_agrees_with_iterating_next_after() {
    for expr in ["30 2 * * *", "*/30 * * * *", "0 1-3 * * *", "0 4 * * 0"] {
        let job = job(expr);
        let all = runs(&job, utc(2025, 12, 20, 0, 0), utc(2028, 1, 10, 0, 0));
        let mut now = utc(2026, 1, 1, 0, 0);
        while now < utc(2028, 1, 1, 0, 0) {
            for down in [
                TimeDelta::minutes(20),
                TimeDelta::hours(5),
                TimeDelta::days(9),
            ] {
                let since = now - down;
                let expected = Some(all.partition_point(|&r| r <= now))
                    .filter(|&end| end > 0)
                    .map(|end| all[end - 1])
                    .filter(|&r| r > since);
                assert_eq!(
                    job.last_missed(since, now, CPH),
                    expected,
                    "{expr}: ({since}, {now}]"
                );
            }
            now += TimeDelta::minutes(50);
        }
    }
}

#[test]
fn other_time_zones_and_extremes() {
    // UTC has no transitions.
    let nightly = job("30 2 * * *");
    assert_eq!(
        nightly.next_after(utc(2026, 3, 29, 0, 0), chrono_tz::UTC),
        Some(utc(2026, 3, 29, 2, 30))
    );
    // New York springs forward at 02:00 to 03:00 (2026-03-08), back at 02:00 to 01:00 (2026-11-01).
    let ny = chrono_tz::America::New_York;
    assert_eq!(
        nightly
            .next_after(utc(2026, 3, 8, 0, 0), ny)
            .map(|r| r.with_timezone(&ny).to_rfc3339()),
        Some("2026-03-08T03:00:00-04:00".to_owned())
    );
    let one_thirty = job("30 1 * * *");
    assert_eq!(
        one_thirty
            .next_after(utc(2026, 11, 1, 0, 0), ny)
            .map(|r| r.with_timezone(&ny).to_rfc3339()),
        Some("2026-11-01T01:30:00-04:00".to_owned())
    );
    // Samoa skipped 2011-12-30 entirely: that day's run happens at the end of the gap.
    let apia = chrono_tz::Pacific::Apia;
    let mut at = utc(2011, 12, 29, 0, 0);
    let mut found = Vec::new();
    for _ in 0..3 {
        at = nightly.next_after(at, apia).unwrap();
        found.push(at.with_timezone(&apia).to_rfc3339());
    }
    assert_eq!(
        found,
        [
            "2011-12-29T02:30:00-10:00",
            "2011-12-31T00:00:00+14:00",
            "2011-12-31T02:30:00+14:00"
        ]
    );
    // A schedule that never matches (30 February) has no runs, and says so.
    let never = job("0 0 30 2 *");
    assert_eq!(never.next_after(utc(2026, 1, 1, 0, 0), CPH), None);
    assert_eq!(
        never.last_missed(utc(1970, 1, 1, 0, 0), utc(2026, 1, 1, 0, 0), CPH),
        None
    );
    // No runs past the years the schedule knows; no panics at chrono's limits.
    assert_eq!(nightly.next_after(utc(2100, 12, 31, 12, 0), CPH), None);
    assert_eq!(nightly.next_after(DateTime::<Utc>::MAX_UTC, CPH), None);
    assert_eq!(
        nightly.last_missed(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC, CPH),
        None
    );
    assert_eq!(
        nightly.last_missed(DateTime::<Utc>::MIN_UTC, utc(1971, 1, 1, 12, 0), CPH),
        Some(utc(1971, 1, 1, 1, 30))
    );
}

#[test]
fn invalid_field_is_named() {
    for (expr, expected) in [
        (
            "30 25 * * *",
            "the hour field `25` is invalid (allowed: 0–23",
        ),
        (
            "x 2 * * *",
            "the minute field `x` is invalid (allowed: 0–59",
        ),
        ("0 60 2 * * *", "the minute field `60` is invalid"),
        (
            "0 0 2 * * 8",
            "the day-of-week field `8` is invalid (allowed: 1–7 with 1 = Sunday",
        ),
        ("30 2 * 13 *", "the month field `13` is invalid"),
        ("0 30 2 * * * 1969", "the year field `1969` is invalid"),
        (
            "30 2 * * 8",
            "day of week \"8\" is out of range (0 or 7 is Sunday",
        ),
        ("@fortnightly", "unknown shorthand"),
    ] {
        let message = JobSchedule::parse(expr).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("invalid schedule `{expr}`: {expected}")),
            "{message}"
        );
        assert!(!message.contains('\n'), "{message}");
    }
}
