//! The wait a refused request is told to take: `retry-after-ms` (OpenAI, Azure) or
//! `Retry-After` (decimal seconds or an HTTP-date), parsed strictly and capped.

use std::time::{Duration, SystemTime};

use http::header::{DATE, HeaderMap, HeaderValue, RETRY_AFTER};

use crate::model::MAX_RETRY_AFTER;

/// The wait a non-2xx response asks for: `retry-after-ms` (OpenAI, Azure) when valid,
/// else `Retry-After` (decimal seconds, or an HTTP-date), capped at [`MAX_RETRY_AFTER`].
/// Anything unparsable is None. An HTTP-date is counted from the response's `Date` when
/// it has one, so a server whose clock is off still gets the wait it meant; else from `now`.
pub(super) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let server_now = || header(DATE.as_str()).and_then(|d| httpdate::parse_http_date(d).ok()).unwrap_or(now);
    header("retry-after-ms")
        .and_then(|v| parse_decimal(v, Unit::Millis))
        .or_else(|| header(RETRY_AFTER.as_str()).and_then(|v| parse_retry_after(v, server_now())))
}

#[derive(Clone, Copy)]
enum Unit {
    Secs,
    Millis,
}

/// A non-negative decimal number (`12`, `1.5`, `.5`, `2.`) of `unit`s, rounded up to
/// the nanosecond: the wait is never shorter than asked. Capped at [`MAX_RETRY_AFTER`].
fn parse_decimal(v: &str, unit: Unit) -> Option<Duration> {
    let v = v.trim();
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    // Digits only: a float parser would also take "inf", "NaN", "-1" and "1e9".
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return None;
    }
    // Digits beyond u64 are a huge wait, not garbage.
    let whole = if int.is_empty() { 0 } else { int.parse::<u64>().unwrap_or(u64::MAX) };
    let (whole, frac_digits) = match unit {
        Unit::Secs => (Duration::from_secs(whole.min(MAX_RETRY_AFTER.as_secs())), 9),
        Unit::Millis => (Duration::from_millis(whole.min(MAX_RETRY_AFTER.as_millis() as u64)), 6),
    };
    // The fraction in nanoseconds: its first digits, plus one if a further digit is not 0.
    let (head, tail) = frac.split_at(frac.len().min(frac_digits));
    let nanos = format!("{head:0<frac_digits$}").parse::<u64>().unwrap_or(0) + u64::from(tail.bytes().any(|b| b != b'0'));
    Some((whole + Duration::from_nanos(nanos)).min(MAX_RETRY_AFTER))
}

/// `Retry-After`: decimal seconds, or an HTTP-date counted from `now` (a past date is no
/// wait at all).
fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let wait = match parse_decimal(v, Unit::Secs) {
        Some(wait) => wait,
        None => httpdate::parse_http_date(v.trim()).ok()?.duration_since(now).unwrap_or(Duration::ZERO),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_ms() {
        let now = SystemTime::now();
        let ms = |v: &[u8]| retry_after(&headers(&[("retry-after-ms", v)]), now);
        assert_eq!(ms(b"1500"), Some(Duration::from_millis(1500)));
        assert_eq!(ms(b"12.5"), Some(Duration::from_micros(12_500)));
        assert_eq!(ms(b" 0 "), Some(Duration::ZERO));
        assert_eq!(ms(b".5"), Some(Duration::from_micros(500)));
        // Rounded up, never down, to the nanosecond.
        assert_eq!(ms(b"0.0000011"), Some(Duration::from_nanos(2)));
        assert_eq!(ms(b"1.0000000"), Some(Duration::from_millis(1)));
        assert_eq!(ms(b"7200000"), Some(MAX_RETRY_AFTER));
        assert_eq!(ms("9".repeat(400).as_bytes()), Some(MAX_RETRY_AFTER));
        for bad in [&b""[..], b".", b"-1", b"+1", b"1e3", b"inf", b"NaN", b"1.2.3", b"soon", b"\xFF"] {
            assert_eq!(ms(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn retry_after_ms_wins_when_valid() {
        let now = SystemTime::now();
        let both = |ms: &'static [u8]| retry_after(&headers(&[("retry-after-ms", ms), ("retry-after", b"2")]), now);
        assert_eq!(both(b"1500"), Some(Duration::from_millis(1500)));
        assert_eq!(both(b"garbage"), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn retry_after_seconds() {
        let now = SystemTime::now();
        let ra = |v: &[u8]| retry_after(&headers(&[("retry-after", v)]), now);
        assert_eq!(ra(b"2"), Some(Duration::from_secs(2)));
        assert_eq!(ra(b"0"), Some(Duration::ZERO));
        assert_eq!(ra(b"86400"), Some(MAX_RETRY_AFTER));
        assert_eq!(ra(b"99999999999999999999999999"), Some(MAX_RETRY_AFTER));
        for bad in [&b""[..], b".", b"-5", b"1e3", b"inf", b"1.2.3", b"2s", b"soon", b"\xFF", b"Wed, 32 Oct 2015 07:28:00 GMT"] {
            assert_eq!(ra(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn retry_after_decimal_seconds() {
        let now = SystemTime::now();
        let ra = |v: &[u8]| retry_after(&headers(&[("retry-after", v)]), now);
        assert_eq!(ra(b"1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(ra(b" 0.25 "), Some(Duration::from_millis(250)));
        assert_eq!(ra(b".5"), Some(Duration::from_millis(500)));
        assert_eq!(ra(b"2."), Some(Duration::from_secs(2)));
        // Finer than a nanosecond: rounded up, so the wait is never shorter than asked.
        assert_eq!(ra(b"0.0000000001"), Some(Duration::from_nanos(1)));
        assert_eq!(ra(b"1.1234567891"), Some(Duration::new(1, 123_456_790)));
        assert_eq!(ra(b"3599.9999999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(ra(b"86400.5"), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn retry_after_http_date_counts_from_the_servers_date() {
        // The local clock is an hour ahead of the server's: the server still gets its 30 s.
        let server = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let local = server + Duration::from_secs(3600);
        let date = httpdate::fmt_http_date(server);
        let at = httpdate::fmt_http_date(server + Duration::from_secs(30));
        let h = headers(&[("retry-after", at.as_bytes()), ("date", date.as_bytes())]);
        assert_eq!(retry_after(&h, local), Some(Duration::from_secs(30)));
        // An hour behind: the same.
        assert_eq!(retry_after(&h, server - Duration::from_secs(3600)), Some(Duration::from_secs(30)));
        // Without a Date, or with one that does not parse: the local clock.
        let h = headers(&[("retry-after", at.as_bytes())]);
        assert_eq!(retry_after(&h, server + Duration::from_secs(10)), Some(Duration::from_secs(20)));
        assert_eq!(retry_after(&h, local), Some(Duration::ZERO));
        let h = headers(&[("retry-after", at.as_bytes()), ("date", b"yesterday")]);
        assert_eq!(retry_after(&h, server + Duration::from_secs(10)), Some(Duration::from_secs(20)));
        // A Date does not change a wait in seconds.
        let h = headers(&[("retry-after", b"5"), ("date", date.as_bytes())]);
        assert_eq!(retry_after(&h, local), Some(Duration::from_secs(5)));
    }

    #[test]
    fn retry_after_http_date() {
        // Whole seconds: HTTP-dates have no finer resolution.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = |d: SystemTime| parse_retry_after(&httpdate::fmt_http_date(d), now);
        assert_eq!(at(now + Duration::from_secs(30)), Some(Duration::from_secs(30)));
        assert_eq!(at(now - Duration::from_secs(30)), Some(Duration::ZERO));
        assert_eq!(at(now + Duration::from_secs(10 * 86400)), Some(MAX_RETRY_AFTER));
        // The obsolete forms HTTP still allows.
        assert_eq!(parse_retry_after("Tuesday, 14-Nov-23 22:13:50 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Tue Nov 14 22:13:50 2023", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now), Some(Duration::from_secs(30)));
    }
}
