//! `calibrate`: every course of a track replayed over the reference period, with what it
//! cost, read from the store citizen by citizen (visits included); the arithmetic is
//! `model::calibrate`'s.

use crate::domain::Track;
use crate::mapping::Mappings;
use crate::model::calibrate::{CourseCost, course_costs};
use crate::model::{RecordKind, compute_courses, resolve_history};
use crate::store::Store;
use chrono::NaiveDate;

/// The cost of every course of `track` with a day in `from..=to`, the course rules replayed
/// (every course decided afresh, as of `to`). Reads only.
pub async fn collect(
    store: &Store,
    mappings: &Mappings,
    tz: chrono_tz::Tz,
    track: Track,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<Vec<CourseCost>> {
    let mut out = Vec::new();
    store
        .for_each_citizen(&RecordKind::ALL, |_who, versions| {
            let history = resolve_history(&versions, tz);
            let courses = compute_courses(&history, mappings, to).courses;
            out.extend(course_costs(
                &history, &courses, mappings, tz, track, from, to,
            ));
        })
        .await?;
    Ok(out)
}
