//! Retry policy pieces: backoff with jitter, `Retry-After`, and URLs safe to log.

use rand::Rng;
use std::time::Duration;
use url::Url;

/// The delay before retry number `retry` (1 for the first retry): the initial delay doubled
/// each retry, capped at `max`, with "equal jitter" (half fixed, half random) so that many
/// gateways failing together do not retry in lockstep.
pub(crate) fn backoff(initial: Duration, max: Duration, retry: u32) -> Duration {
    let shift = retry.saturating_sub(1).min(30);
    let full = initial.saturating_mul(1u32 << shift).min(max);
    let half = full / 2;
    let spread = (full - half).as_millis() as u64;
    let jitter = if spread == 0 {
        0
    } else {
        rand::rng().random_range(0..=spread)
    };
    half + Duration::from_millis(jitter)
}

/// Parses a `Retry-After` value: delay seconds, or an HTTP date (IMF-fixdate, which RFC 2822
/// parsing accepts). A date in the past is zero. `None` if unreadable.
pub(crate) fn parse_retry_after(
    value: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (when.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// Query parameters whose values are shown in logs; any other value (a paging session id, a
/// signed link) is replaced by `***`.
const SHOWN_PARAMETERS: &[&str] = &[
    "_lastUpdated",
    "_count",
    "_format",
    "_offset",
    "_page",
    "_getpagesoffset",
    "page",
];

/// The URL as it may appear in logs and errors: no user info, no fragment, and only known
/// harmless query values.
pub(crate) fn loggable(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_fragment(None);
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if SHOWN_PARAMETERS.contains(&k.as_ref()) {
                    v.into_owned()
                } else {
                    "***".to_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_bounds_and_caps() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_millis(1000));
        for _ in 0..50 {
            let first = backoff(initial, max, 1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = backoff(initial, max, 3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let late = backoff(initial, max, 40);
            assert!(late >= Duration::from_millis(500) && late <= max);
        }
        assert_eq!(backoff(Duration::ZERO, max, 3), Duration::ZERO);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn loggable_urls_hide_credentials_and_unknown_query_values() {
        let url = Url::parse(
            "https://user:pw@care.example.dk/fhir/Bundle?_lastUpdated=ge2026-01-01&_count=10&session=abc#x",
        )
        .unwrap();
        let shown = loggable(&url);
        assert_eq!(
            shown,
            "https://care.example.dk/fhir/Bundle?_lastUpdated=ge2026-01-01&_count=10&session=***"
        );
    }
}
