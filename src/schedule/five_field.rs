//! The familiar five-field form `min hour dom month dow`, rewritten into the `cron` crate's
//! six-field form `sec min hour dom month dow`.
//!
//! Two things differ between classic cron and the `cron` crate, and both are handled here rather
//! than left to surprise:
//!
//! - Day-of-week numbers: classic cron counts 0 (or 7) = Sunday, 1 = Monday … 6 = Saturday; the
//!   `cron` crate counts 1 = Sunday … 7 = Saturday. The day-of-week field is therefore read with the
//!   classic numbering and handed to the crate as day names (`MON,TUE,…`), so `30 2 * * 1-5` means
//!   weekdays, as everyone expects.
//! - Day of month *and* day of week: when both are restricted (neither starts with `*`), classic cron
//!   runs on days matching *either*; the `cron` crate requires *both*. Such an expression is refused
//!   with [`ScheduleError::DayOfMonthAndDayOfWeek`] instead of silently meaning something else.

use super::ScheduleError;

/// Day names in classic cron order: index 0 = Sunday … 6 = Saturday (7 is Sunday again).
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Rewrites the five whitespace-separated `fields` of `expression` into the six-field text the
/// `cron` crate parses (a `0` seconds field first, the day of week as names).
pub(super) fn to_six_fields(expression: &str, fields: &[&str]) -> Result<String, ScheduleError> {
    let [minute, hour, day_of_month, month, day_of_week] = fields else {
        return Err(ScheduleError::FieldCount {
            expression: expression.to_owned(),
            count: fields.len(),
        });
    };
    let unrestricted = |field: &str| field.starts_with('*') || field == "?";
    if !unrestricted(day_of_month) && !unrestricted(day_of_week) {
        return Err(ScheduleError::DayOfMonthAndDayOfWeek {
            expression: expression.to_owned(),
            day_of_month: (*day_of_month).to_owned(),
            day_of_week: (*day_of_week).to_owned(),
        });
    }
    let day_of_week =
        day_of_week_as_names(day_of_week).map_err(|reason| ScheduleError::Invalid {
            expression: expression.to_owned(),
            reason,
        })?;
    Ok(format!(
        "0 {minute} {hour} {day_of_month} {month} {day_of_week}"
    ))
}

/// Reads a classic day-of-week field (`*`, `?`, `1`, `1-5`, `*/2`, `1-5/2`, `1/2`, names such as
/// `mon-fri`, comma lists of these; 0 and 7 are Sunday) and returns it as a comma list of day
/// names, or unchanged when it is `*` or `?`.
fn day_of_week_as_names(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_owned());
    }
    let mut days = [false; 7];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: usize = step.parse().ok().filter(|&step| step > 0).ok_or_else(|| {
                    format!("day of week {item:?}: the step {step:?} is not a positive number")
                })?;
                (range, Some(step))
            }
            None => (item, None),
        };
        let (first, last) = if range == "*" {
            (0, 7)
        } else if let Some((first, last)) = range.split_once('-') {
            (day(first)?, day(last)?)
        } else {
            let first = day(range)?;
            // `1/2` is classic shorthand for `1-7/2`.
            (first, if step.is_some() { 7 } else { first })
        };
        if first > last {
            return Err(format!(
                "day of week {item:?}: the range runs backwards (0 or 7 is Sunday, 1 Monday … 6 Saturday)"
            ));
        }
        for number in (first..=last).step_by(step.unwrap_or(1)) {
            days[number % 7] = true;
        }
    }
    Ok(DAY_NAMES
        .iter()
        .zip(days)
        .filter(|(_, included)| *included)
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(","))
}

/// One classic day of week: a number 0–7 (0 and 7 are Sunday) or an English name (`mon`,
/// `monday`), case-insensitive.
fn day(text: &str) -> Result<usize, String> {
    if let Ok(number) = text.parse::<usize>() {
        return if number <= 7 {
            Ok(number)
        } else {
            Err(format!(
                "day of week {text:?} is out of range (0 or 7 is Sunday, 1 Monday … 6 Saturday)"
            ))
        };
    }
    let lower = text.to_ascii_lowercase();
    FULL_NAMES
        .iter()
        .position(|name| lower == *name || lower == name[..3])
        .ok_or_else(|| {
            format!("{text:?} is not a day of the week (0–7, or a name such as mon or monday)")
        })
}

/// The English day names, Sunday first; the first three letters are accepted too.
const FULL_NAMES: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
