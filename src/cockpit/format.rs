//! How the cockpit writes things for people: Danish, as Danish readers expect them.
//! Amounts `1.552.635,00 kr.`, dates `1. februar 2027`, months `februar 2027`, shares
//! `12,5 %`, numbers `1.234` and `1,5`.

use crate::domain::{CourseKind, Track};
use crate::model::YearMonth;
use crate::model::figures::{FigureDef, Unit};
use chrono::{Datelike, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};

const MONTHS: [&str; 12] = [
    "januar",
    "februar",
    "marts",
    "april",
    "maj",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "december",
];

/// `1.552.635,00 kr.` (rounded half away from zero to øre).
pub fn kroner(amount: Decimal) -> String {
    crate::explain::kroner(amount)
}

/// `1. februar 2027`.
pub fn date(day: NaiveDate) -> String {
    format!(
        "{}. {} {}",
        day.day(),
        MONTHS[day.month0() as usize],
        day.year()
    )
}

/// `februar 2027`.
pub fn month(m: YearMonth) -> String {
    format!("{} {}", MONTHS[(m.month - 1) as usize], m.year)
}

/// `feb.` (`maj`, `juni`, `juli` in full), for chart axes.
pub fn month_short(m: YearMonth) -> String {
    let name = MONTHS[(m.month - 1) as usize];
    if name.len() <= 4 {
        name.to_owned()
    } else {
        format!("{}.", &name[..3])
    }
}

/// A number with Danish separators: `1.234`, `-1.234,5`, at most `decimals` decimals
/// (rounded half away from zero; trailing zeros dropped).
pub fn number(d: Decimal, decimals: u32) -> String {
    let d = d
        .round_dp_with_strategy(decimals, RoundingStrategy::MidpointAwayFromZero)
        .normalize();
    let text = d.abs().to_string();
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i.to_owned(), Some(f.to_owned())),
        None => (text, None),
    };
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(c);
    }
    let sign = if d.is_sign_negative() && !d.is_zero() {
        "-"
    } else {
        ""
    };
    match frac {
        Some(f) => format!("{sign}{grouped},{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// A share 0-1 as a percentage with one decimal always, so that a column of them lines up:
/// `12,5 %`, `50,0 %`.
pub fn percent(share: Decimal) -> String {
    let text = number(share * Decimal::from(100), 1);
    if text.contains(',') {
        format!("{text} %")
    } else {
        format!("{text},0 %")
    }
}

/// A figure's value as people read it, by its unit; `None` is "ingen data".
pub fn figure_value(def: &FigureDef, value: Option<Decimal>) -> String {
    let Some(v) = value else {
        return if def.id == "continuity" {
            "ingen data fra kilden".to_owned()
        } else {
            "ingen data".to_owned()
        };
    };
    match def.unit {
        Unit::Count => number(v, 0),
        Unit::Share => percent(v),
        Unit::Ratio => number(v, 2),
        Unit::Money => kroner(v),
        Unit::Minutes => format!("{} min.", number(v, 0)),
    }
}

/// The track, in Danish.
pub fn track(t: Option<Track>) -> &'static str {
    match t {
        Some(Track::Care) => "pleje",
        Some(Track::Nursing) => "sygepleje",
        None => "begge spor",
    }
}

/// The course kind, in Danish.
pub fn kind(k: CourseKind) -> &'static str {
    match k {
        CourseKind::Development => "udviklingsforløb",
        CourseKind::Stabilisation => "stabiliseringsforløb",
        CourseKind::Individual => "individuelt forløb",
    }
}

/// Why a course ended, in Danish.
pub fn end_reason(reason: &str) -> &'static str {
    match reason {
        "planned" => "planlagt slut",
        "death" => "dødsfald",
        "moved_out" => "fraflytning",
        "nursing_home" => "plejebolig",
        "before_recorded_course" => "før et registreret forløb",
        _ => "andet",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn amounts_dates_and_numbers_the_danish_way() {
        assert_eq!(kroner(dec("1552635")), "1.552.635,00 kr.");
        assert_eq!(kroner(dec("-0.005")), "-0,01 kr.");
        assert_eq!(date("2027-02-01".parse().unwrap()), "1. februar 2027");
        assert_eq!(date("2027-12-31".parse().unwrap()), "31. december 2027");
        let m = YearMonth {
            year: 2027,
            month: 5,
        };
        assert_eq!(month(m), "maj 2027");
        assert_eq!(month_short(m), "maj");
        assert_eq!(
            month_short(YearMonth {
                year: 2027,
                month: 9
            }),
            "sep."
        );
        assert_eq!(number(dec("1234567"), 0), "1.234.567");
        assert_eq!(number(dec("-1234.55"), 1), "-1.234,6");
        assert_eq!(number(dec("1.50"), 2), "1,5");
        assert_eq!(number(dec("-0.001"), 2), "0");
        assert_eq!(percent(dec("0.125")), "12,5 %");
        assert_eq!(percent(dec("1")), "100,0 %");
        assert_eq!(percent(dec("0.5")), "50,0 %");
        assert_eq!(percent(dec("0.52449")), "52,4 %");
    }
}
