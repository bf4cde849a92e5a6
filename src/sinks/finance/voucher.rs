//! The voucher (bilag): one balanced set of posting lines.

use crate::domain::{CostCentre, Track};
use crate::model::YearMonth;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A voucher number: at most 10 characters, unique per year, fixed when the voucher is stored
/// (before anything is sent), so a re-sent voucher carries the same number and the finance
/// system's duplicate check makes it harmless. Form: `PG` + 2-digit year + 6-digit sequence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VoucherNumber(pub String);

impl VoucherNumber {
    /// The number of the `seq`-th voucher of `year` (seq from 1).
    pub fn new(year: i32, seq: u32) -> Self {
        Self(format!("PG{:02}{:06}", year.rem_euclid(100), seq))
    }
}

impl fmt::Display for VoucherNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// Debit or credit (Opus `DEB_CRED_IND`: `D` or `K`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DebitCredit {
    /// Debit (`D`): the amount is positive.
    Debit,
    /// Credit (`K`, kredit): the amount is negative.
    Credit,
}

impl DebitCredit {
    /// `D` or `K`.
    pub fn code(self) -> &'static str {
        match self {
            DebitCredit::Debit => "D",
            DebitCredit::Credit => "K",
        }
    }
}

/// One posting line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherLine {
    /// Line number within the voucher, from 1 (Opus `REF_KEY_3`).
    pub line_no: u32,
    /// Debit or credit; agrees with the sign of `amount`.
    pub side: DebitCredit,
    /// Signed amount in DKK with 2 decimals (debit positive, credit negative).
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// GL account, 8 digits.
    pub gl_account: String,
    /// Cost centre.
    pub cost_centre: CostCentre,
    /// Item text, at most 50 characters.
    pub text: String,
}

/// Where a voucher is in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoucherState {
    /// Stored, not yet delivered (or the delivery failed and will be retried).
    Pending,
    /// Delivered to the finance system; no answer yet.
    Sent,
    /// The finance system booked it (or reported it already received).
    Accepted,
    /// The finance system refused it; reported with its message, never re-sent under a new number.
    Rejected,
}

impl VoucherState {
    /// The name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "sent" => Self::Sent,
            "accepted" => Self::Accepted,
            "rejected" => Self::Rejected,
            _ => return None,
        })
    }
}

/// A balanced voucher for one team, track and month: the income delta of one night.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voucher {
    /// The voucher number.
    pub number: VoucherNumber,
    /// The team id (or `unassigned`).
    pub team: String,
    /// The track.
    pub track: Track,
    /// The month the income belongs to.
    #[serde(with = "year_month")]
    pub month: YearMonth,
    /// The delta posted: positive income, or a negative correction.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// Document date (the night's as-of date).
    pub document_date: NaiveDate,
    /// Posting date: the night's as-of date.
    pub posting_date: NaiveDate,
    /// Value date: the last day of `month` for a past month, the as-of date in the running one.
    pub value_date: NaiveDate,
    /// Header text.
    pub header_text: String,
    /// The lines: the team's cost centre against the purchaser's; they sum to zero.
    pub lines: Vec<VoucherLine>,
}

impl Voucher {
    /// The sum of the lines: zero for a balanced voucher.
    pub fn balance(&self) -> Decimal {
        self.lines.iter().map(|l| l.amount).sum()
    }

    /// The sum of the debit lines.
    pub fn debit_total(&self) -> Decimal {
        self.lines
            .iter()
            .filter(|l| l.side == DebitCredit::Debit)
            .map(|l| l.amount)
            .sum()
    }

    /// The sum of the credit lines (negative).
    pub fn credit_total(&self) -> Decimal {
        self.lines
            .iter()
            .filter(|l| l.side == DebitCredit::Credit)
            .map(|l| l.amount)
            .sum()
    }
}

mod year_month {
    use crate::model::YearMonth;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &YearMonth, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(m)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<YearMonth, D::Error> {
        let s = String::deserialize(d)?;
        let (y, m) = s
            .split_once('-')
            .ok_or_else(|| serde::de::Error::custom("expected YYYY-MM"))?;
        let year = y.parse().map_err(serde::de::Error::custom)?;
        let month: u32 = m.parse().map_err(serde::de::Error::custom)?;
        if !(1..=12).contains(&month) {
            return Err(serde::de::Error::custom("month must be 01-12"));
        }
        Ok(YearMonth { year, month })
    }
}
