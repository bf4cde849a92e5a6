//! Money rounding: one named strategy, used wherever an amount leaves the model.

use rust_decimal::{Decimal, RoundingStrategy};

/// Amounts sent to the finance system are rounded half away from zero to øre, once per
/// posting line (1234.565 -> 1234.57, -0.005 -> -0.01).
pub const MONEY_ROUNDING: RoundingStrategy = RoundingStrategy::MidpointAwayFromZero;

/// Rounds to øre (2 decimals) with [`MONEY_ROUNDING`].
pub fn round_money(amount: Decimal) -> Decimal {
    let mut r = amount.round_dp_with_strategy(2, MONEY_ROUNDING);
    r.rescale(2);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn rounds_half_away_from_zero_not_to_even() {
        assert_eq!(round_money(dec("1234.565")).to_string(), "1234.57");
        assert_eq!(round_money(dec("1234.575")).to_string(), "1234.58");
        assert_eq!(round_money(dec("-0.005")).to_string(), "-0.01");
        assert_eq!(round_money(dec("123.4567")).to_string(), "123.46");
        assert_eq!(round_money(dec("7000")).to_string(), "7000.00");
    }
}
