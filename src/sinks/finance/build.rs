//! Builds balanced vouchers from the nightly posting deltas. Pure: no clock, no store.
//!
//! One voucher per delta (team, track, month), two lines on the track's GL account: the
//! purchaser's cost centre against the team's. Positive income debits the purchaser (its
//! expense) and credits the team (its income); a negative delta (a correction) swaps the sides.
//! A correction is always a new voucher: an old one is never edited.

use super::voucher::{DebitCredit, Voucher, VoucherLine, VoucherNumber};
use crate::domain::{CostCentre, TeamId, Track};
use crate::mapping::Mappings;
use crate::model::{IncomeKey, Payee, PostingDelta, YearMonth, round_money};
use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

/// Opus `ITEM_TEXT` limit, in characters.
pub const ITEM_TEXT_MAX: usize = 50;
/// Opus `HEADER_TXT` limit, in characters.
pub const HEADER_TEXT_MAX: usize = 25;

/// Why vouchers could not be built. Nothing is built when any delta fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The mappings have no accounts (`accounts.toml`).
    #[error("no accounts are configured (accounts.toml): vouchers cannot be built")]
    MissingAccounts,
    /// A delta names a team that is not in the mappings.
    #[error("team `{0}` has income to post but no mapping in teams.toml (no cost centre)")]
    UnknownTeam(TeamId),
    /// A delta is not in whole øre (the model rounds before it computes deltas).
    #[error("the {track} amount {amount} of `{payee}` for {month} is not rounded to øre")]
    NotRounded {
        /// Team or `unassigned`.
        payee: String,
        /// Track.
        track: Track,
        /// Month.
        month: YearMonth,
        /// The amount.
        amount: Decimal,
    },
    /// A zero delta: nothing to post (the model leaves these out).
    #[error("the {track} delta of `{payee}` for {month} is zero: nothing to post")]
    ZeroAmount {
        /// Team or `unassigned`.
        payee: String,
        /// Track.
        track: Track,
        /// Month.
        month: YearMonth,
    },
    /// The voucher sequence ran past what a voucher number can hold (6 digits).
    #[error("voucher sequence {0} exceeds 999999 for the year")]
    SequenceExhausted(u64),
}

/// Builds one voucher per delta, numbered `first_seq`, `first_seq + 1`, ... in `as_of`'s year.
pub fn build_vouchers(
    deltas: &[PostingDelta],
    mappings: &Mappings,
    as_of: NaiveDate,
    first_seq: u32,
) -> Result<Vec<Voucher>, BuildError> {
    build_vouchers_with(
        deltas,
        mappings,
        as_of,
        first_seq,
        &std::collections::HashMap::new(),
    )
}

/// [`build_vouchers`], where a team no longer in the mappings (removed from `teams.toml`)
/// still gets its corrections on its last cost centre, from `former` (team id → the cost
/// centre of its latest voucher in the outbox).
pub fn build_vouchers_with(
    deltas: &[PostingDelta],
    mappings: &Mappings,
    as_of: NaiveDate,
    first_seq: u32,
    former: &std::collections::HashMap<String, CostCentre>,
) -> Result<Vec<Voucher>, BuildError> {
    let accounts = mappings
        .accounts
        .as_ref()
        .ok_or(BuildError::MissingAccounts)?;
    deltas
        .iter()
        .enumerate()
        .map(|(i, delta)| {
            let seq = u64::from(first_seq) + i as u64;
            let seq = u32::try_from(seq)
                .ok()
                .filter(|s| *s <= 999_999)
                .ok_or(BuildError::SequenceExhausted(seq))?;
            let team_cc: CostCentre = match &delta.key.payee {
                Payee::Team(id) => match mappings.team(id) {
                    Some(team) => team.cost_centre.clone(),
                    None => former
                        .get(id.as_str())
                        .cloned()
                        .ok_or_else(|| BuildError::UnknownTeam(id.clone()))?,
                },
                Payee::Unassigned => accounts.fallback_cost_centre.clone(),
            };
            let amount = checked_amount(delta)?;
            let key = &delta.key;
            let gl = accounts.gl_account(key.track).to_owned();
            let correction = amount.is_sign_negative();
            let text = item_text(key, correction);
            // Line 1: the purchaser; line 2: the team. Income: purchaser debit, team credit.
            let (purchaser_side, team_side) = if correction {
                (DebitCredit::Credit, DebitCredit::Debit)
            } else {
                (DebitCredit::Debit, DebitCredit::Credit)
            };
            let lines = vec![
                VoucherLine {
                    line_no: 1,
                    side: purchaser_side,
                    amount,
                    gl_account: gl.clone(),
                    cost_centre: accounts.purchaser_cost_centre.clone(),
                    text: text.clone(),
                },
                VoucherLine {
                    line_no: 2,
                    side: team_side,
                    amount: -amount,
                    gl_account: gl,
                    cost_centre: team_cc,
                    text,
                },
            ];
            Ok(Voucher {
                number: VoucherNumber::new(as_of.year(), seq),
                team: key.payee.as_str().to_owned(),
                track: key.track,
                month: key.month,
                amount,
                document_date: as_of,
                posting_date: as_of,
                value_date: value_date(key.month, as_of),
                header_text: truncate(
                    &format!("Progression {} {}", key.month, key.payee),
                    HEADER_TEXT_MAX,
                ),
                lines,
            })
        })
        .collect()
}

fn checked_amount(delta: &PostingDelta) -> Result<Decimal, BuildError> {
    let key = &delta.key;
    let rounded = round_money(delta.amount);
    if rounded != delta.amount {
        return Err(BuildError::NotRounded {
            payee: key.payee.to_string(),
            track: key.track,
            month: key.month,
            amount: delta.amount,
        });
    }
    if rounded.is_zero() {
        return Err(BuildError::ZeroAmount {
            payee: key.payee.to_string(),
            track: key.track,
            month: key.month,
        });
    }
    debug_assert_eq!(rounded.scale(), 2);
    Ok(rounded)
}

/// `Takst nord care 2027-01`, or `Korrektion takst nord care 2027-01`, at most 50 characters.
fn item_text(key: &IncomeKey, correction: bool) -> String {
    let prefix = if correction {
        "Korrektion takst"
    } else {
        "Takst"
    };
    // Keep the month visible: shorten the team id if the whole text would be too long.
    let tail = format!(" {} {}", key.track, key.month);
    let room = ITEM_TEXT_MAX
        .saturating_sub(prefix.chars().count() + 1 + tail.chars().count())
        .max(1);
    let team = truncate(key.payee.as_str(), room);
    truncate(&format!("{prefix} {team}{tail}"), ITEM_TEXT_MAX)
}

/// The last day of `month` if it is before `as_of`'s month, else `as_of`.
fn value_date(month: YearMonth, as_of: NaiveDate) -> NaiveDate {
    if month < YearMonth::of(as_of) {
        let (y, m) = if month.month == 12 {
            (month.year + 1, 1)
        } else {
            (month.year, month.month + 1)
        };
        NaiveDate::from_ymd_opt(y, m, 1)
            .and_then(|d| d.pred_opt())
            .expect("valid month")
    } else {
        as_of
    }
}

/// At most `max` characters, cut at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Team;
    use crate::mapping::{Accounts, TeamMapping};
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn mappings() -> Mappings {
        let team = |id: &str, name: &str, cc: &str| TeamMapping {
            team: Team {
                id: TeamId::parse(id).unwrap(),
                name: name.into(),
                cost_centre: CostCentre::parse(cc).unwrap(),
            },
            sor_codes: vec![],
            nexus_supplier_ids: vec![],
        };
        Mappings {
            teams: vec![
                team("nord", "Team Nord", "1001"),
                team("a-very-long-team-id-of-32-chars-", "Lang", "1003"),
            ],
            accounts: Some(Accounts {
                care_gl_account: "53026000".into(),
                nursing_gl_account: "46282000".into(),
                purchaser_cost_centre: CostCentre::parse("1000").unwrap(),
                fallback_cost_centre: CostCentre::parse("1099").unwrap(),
            }),
            ..Mappings::default()
        }
    }

    fn delta(payee: Payee, track: Track, y: i32, m: u32, amount: &str) -> PostingDelta {
        PostingDelta {
            key: IncomeKey {
                payee,
                track,
                month: YearMonth { year: y, month: m },
            },
            month_to_date: dec(amount),
            already_posted: Decimal::ZERO,
            amount: dec(amount),
        }
    }

    fn nord() -> Payee {
        Payee::Team(TeamId::parse("nord").unwrap())
    }

    #[test]
    fn income_debits_purchaser_and_credits_team() {
        let d = [delta(nord(), Track::Care, 2027, 1, "123.46")];
        let v = build_vouchers(&d, &mappings(), day("2027-01-02"), 7).unwrap();
        assert_eq!(v.len(), 1);
        let v = &v[0];
        assert_eq!(v.number.0, "PG27000007");
        assert_eq!(v.balance(), Decimal::ZERO);
        assert_eq!(v.lines[0].side, DebitCredit::Debit);
        assert_eq!(v.lines[0].amount.to_string(), "123.46");
        assert_eq!(v.lines[0].cost_centre.as_str(), "1000");
        assert_eq!(v.lines[1].side, DebitCredit::Credit);
        assert_eq!(v.lines[1].amount.to_string(), "-123.46");
        assert_eq!(v.lines[1].cost_centre.as_str(), "1001");
        assert!(v.lines.iter().all(|l| l.gl_account == "53026000"));
        assert_eq!(v.lines[0].text, "Takst nord care 2027-01");
        assert_eq!(v.header_text, "Progression 2027-01 nord");
        assert_eq!(v.debit_total(), dec("123.46"));
        assert_eq!(v.credit_total(), dec("-123.46"));
        assert_eq!(v.value_date, day("2027-01-02"));
        assert_eq!(v.posting_date, day("2027-01-02"));
        assert_eq!(v.document_date, day("2027-01-02"));
    }

    #[test]
    fn correction_swaps_sides_and_past_month_value_date_is_month_end() {
        let d = [
            delta(nord(), Track::Nursing, 2026, 12, "-0.01"),
            delta(nord(), Track::Care, 2027, 2, "10"),
        ];
        let v = build_vouchers(&d, &mappings(), day("2027-03-03"), 1).unwrap();
        let c = &v[0];
        assert_eq!(c.number.0, "PG27000001");
        assert_eq!(v[1].number.0, "PG27000002");
        assert_eq!(c.balance(), Decimal::ZERO);
        assert_eq!(c.lines[0].side, DebitCredit::Credit);
        assert_eq!(c.lines[0].amount.to_string(), "-0.01");
        assert_eq!(c.lines[0].cost_centre.as_str(), "1000");
        assert_eq!(c.lines[1].side, DebitCredit::Debit);
        assert_eq!(c.lines[1].amount.to_string(), "0.01");
        assert_eq!(c.lines[1].cost_centre.as_str(), "1001");
        assert!(c.lines.iter().all(|l| l.gl_account == "46282000"));
        assert_eq!(c.lines[0].text, "Korrektion takst nord nursing 2026-12");
        assert_eq!(c.value_date, day("2026-12-31"));
        assert_eq!(v[1].value_date, day("2027-02-28"));
        // A whole amount is written with two decimals.
        assert_eq!(v[1].lines[0].amount.to_string(), "10.00");
    }

    #[test]
    fn unassigned_goes_to_fallback_cost_centre() {
        let d = [delta(Payee::Unassigned, Track::Care, 2027, 1, "95.00")];
        let v = build_vouchers(&d, &mappings(), day("2027-01-31"), 1).unwrap();
        assert_eq!(v[0].team, "unassigned");
        assert_eq!(v[0].lines[1].cost_centre.as_str(), "1099");
        assert_eq!(v[0].lines[0].cost_centre.as_str(), "1000");
    }

    #[test]
    fn texts_stay_within_limits() {
        let long = Payee::Team(TeamId::parse("a-very-long-team-id-of-32-chars-").unwrap());
        let d = [delta(long, Track::Nursing, 2027, 1, "-5.00")];
        let v = build_vouchers(&d, &mappings(), day("2027-01-31"), 1).unwrap();
        let text = &v[0].lines[0].text;
        assert!(text.chars().count() <= ITEM_TEXT_MAX, "{text}");
        assert!(text.ends_with(" nursing 2027-01"), "{text}");
        assert!(v[0].header_text.chars().count() <= HEADER_TEXT_MAX);
        assert_eq!(truncate("Åbyhøj Sø", 8), "Åbyhøj S");
    }

    #[test]
    fn errors_name_the_problem() {
        let ghost = Payee::Team(TeamId::parse("ghost").unwrap());
        let err = build_vouchers(
            &[delta(ghost, Track::Care, 2027, 1, "1.00")],
            &mappings(),
            day("2027-01-31"),
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("ghost"));
        let no_accounts = Mappings {
            accounts: None,
            ..mappings()
        };
        assert_eq!(
            build_vouchers(&[], &no_accounts, day("2027-01-31"), 1),
            Err(BuildError::MissingAccounts)
        );
        assert!(matches!(
            build_vouchers(
                &[delta(nord(), Track::Care, 2027, 1, "1.005")],
                &mappings(),
                day("2027-01-31"),
                1
            ),
            Err(BuildError::NotRounded { .. })
        ));
    }
}
