//! Times as IntelMQ writes them (`YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00`), and
//! the forms real feeds send that sanitation turns into them.
//!
//! IntelMQ uses dateutil's fuzzy parser; the bridge accepts the forms that
//! occur in security feeds and partner formats: ISO 8601 / RFC 3339 with `T`,
//! `t` or a space between date and time, `Z`, `UTC` or a numeric offset
//! (`+hh:mm`, `+hhmm`, `+hh`), optional seconds and fractions, a bare date
//! (midnight), and RFC 2822. A time without zone is UTC.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};

/// The date as IntelMQ and most feeds write it, for [`has_shape`].
const DATE_SHAPE: &[u8; 10] = b"DDDD-DD-DD";
/// IntelMQ's date and time to the second, for [`has_shape`].
const DATE_TIME_SHAPE: &[u8; 19] = b"DDDD-DD-DDTDD:DD:DD";

/// Parses any accepted time form into UTC.
pub fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    // chrono's RFC 2822 reader takes at most two digits for the day and then
    // needs white space, so text that starts with a digit date is no RFC
    // 2822 and is not tried as one.
    let starts_with_digit_date = text
        .as_bytes()
        .get(..DATE_SHAPE.len())
        .is_some_and(|date| has_shape(date, DATE_SHAPE));
    if !starts_with_digit_date {
        if let Ok(time) = DateTime::parse_from_rfc2822(text) {
            return Some(time.with_timezone(&Utc));
        }
    }
    let (date, rest) = text.split_at_checked(10)?;
    let date = parse_date(date)?;
    let rest = rest.strip_prefix(['T', 't', ' ']).unwrap_or(rest);
    if rest.is_empty() {
        return Some(date.and_time(NaiveTime::MIN).and_utc());
    }
    // Byte searches: the markers are ASCII, and char-set searches cost more.
    let zone_at = rest
        .bytes()
        .position(|byte| matches!(byte, b'Z' | b'z' | b'+' | b'-' | b' ' | b'U' | b'G'))
        .unwrap_or(rest.len());
    let (clock, zone) = rest.split_at(zone_at);
    let time = parse_clock(clock)?;
    let offset = parse_zone(zone.trim_start())?;
    let local = NaiveDateTime::new(date, time);
    let utc = local.checked_sub_offset(offset)?;
    Some(utc.and_utc())
}

/// chrono's `%Y-%m-%d`, read directly when the date is all digits in
/// [`DATE_SHAPE`] (chrono reads the same three numbers from it).
fn parse_date(text: &str) -> Option<NaiveDate> {
    let bytes = text.as_bytes();
    if has_shape(bytes, DATE_SHAPE) {
        date_from_digits(bytes)
    } else {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
    }
}

/// Whether `bytes` has the form of `shape`, in which `D` stands for any
/// ASCII digit and every other byte for itself. The shape's length is a
/// constant and the fold does not stop early, so the compiler unrolls it
/// into a test per place.
fn has_shape<const N: usize>(bytes: &[u8], shape: &[u8; N]) -> bool {
    bytes.len() == N
        && bytes.iter().zip(shape).fold(true, |all, (byte, wanted)| {
            all & match wanted {
                b'D' => byte.is_ascii_digit(),
                _ => byte == wanted,
            }
        })
}

/// The number that ASCII `digits` spell, for places [`has_shape`] checked.
fn digits_value(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0, |number, digit| number * 10 + u32::from(digit - b'0'))
}

/// The date that `bytes`, starting in [`DATE_SHAPE`], names, if it exists.
fn date_from_digits(bytes: &[u8]) -> Option<NaiveDate> {
    let year = i32::try_from(digits_value(&bytes[0..4])).ok()?;
    NaiveDate::from_ymd_opt(
        year,
        digits_value(&bytes[5..7]),
        digits_value(&bytes[8..10]),
    )
}

fn parse_clock(clock: &str) -> Option<NaiveTime> {
    let (whole, fraction) = match clock.bytes().position(|byte| byte == b'.' || byte == b',') {
        Some(at) => (&clock[..at], Some(&clock[at + 1..])),
        None => (clock, None),
    };
    let mut parts = whole.as_bytes().split(|byte| *byte == b':');
    let mut number = |max: u32| -> Option<u32> {
        let part = parts.next()?;
        has_shape(part, b"DD")
            .then(|| digits_value(part))
            .filter(|n| *n <= max)
    };
    let hour = number(23)?;
    let minute = number(59)?;
    let second = number(59).unwrap_or(0);
    if parts.next().is_some() {
        return None;
    }
    let nanos = match fraction {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
            // Nanoseconds: the first nine digits, padded with zeros to nine.
            let kept = &digits.as_bytes()[..digits.len().min(9)];
            let padding = 9 - kept.len();
            digits_value(kept) * 10_u32.pow(u32::try_from(padding).ok()?)
        }
        Some(_) => return None,
        None => 0,
    };
    NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)
}

fn parse_zone(zone: &str) -> Option<FixedOffset> {
    match zone {
        "" | "Z" | "z" | "UTC" | "GMT" => return FixedOffset::east_opt(0),
        _ => {}
    }
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (hours, minutes) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 => (
            digits[..2].parse::<i32>().ok()?,
            digits[2..].parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// Writes a UTC time as Python's `isoformat()` does: microseconds only when
/// they are not zero.
///
/// Every time a feed sends in another form is written here, so the fixed
/// widths are filled in directly; signed years (beyond 0 to 9999) and leap
/// seconds are left to chrono's formatting, which knows how they print.
pub fn format(time: &DateTime<Utc>) -> String {
    let micros = time.nanosecond() / 1000;
    let mut text = String::with_capacity(32);
    if push_date_time(&mut text, time).is_none() {
        return match micros {
            0 => time.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
            _ => format!("{}.{micros:06}+00:00", time.format("%Y-%m-%dT%H:%M:%S")),
        };
    }
    if micros != 0 {
        text.push('.');
        push_digits(&mut text, micros, 6);
    }
    text.push_str("+00:00");
    text
}

/// Appends `time` as `YYYY-MM-DDTHH:MM:SS`, its fields written into their
/// fixed widths directly, for the formats that write times in that form
/// (IntelMQ's, STIX's). None, with nothing written, for a year beyond 0 to
/// 9999 or a leap second, which the caller leaves to chrono's formatting.
pub(crate) fn push_date_time(text: &mut String, time: &DateTime<Utc>) -> Option<()> {
    // The parts are read from the UTC date and time as they are stored,
    // not worked out again through the time zone for each.
    let (date, clock) = (time.date_naive(), time.time());
    let year = u32::try_from(date.year())
        .ok()
        .filter(|year| *year <= 9999)?;
    if clock.nanosecond() >= 1_000_000_000 {
        return None;
    }
    let fields = [
        (year, 4, '-'),
        (date.month(), 2, '-'),
        (date.day(), 2, 'T'),
        (clock.hour(), 2, ':'),
        (clock.minute(), 2, ':'),
    ];
    for (number, width, separator) in fields {
        push_digits(text, number, width);
        text.push(separator);
    }
    push_digits(text, clock.second(), 2);
    Some(())
}

/// Appends the last `width` decimal digits of `number`, zero-padded.
pub(crate) fn push_digits(text: &mut String, number: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = number / 10_u32.pow(place) % 10;
        text.push(char::from_digit(digit, 10).unwrap_or('0'));
    }
}

/// IntelMQ's `DateTime.from_isoformat`: `%Y-%m-%dT%H:%M:%S+00:00`, or with
/// `.%f` (one to six digits) before the zone. Checked by position, since
/// every time field of every event passes here.
pub fn is_canonical_datetime(text: &str) -> bool {
    // The seconds end 19 bytes in; only a fraction may sit between them and the zone.
    let Some((whole, fraction)) = text
        .strip_suffix("+00:00")
        .and_then(|body| body.split_at_checked(19))
    else {
        return false;
    };
    let fraction_ok = fraction.is_empty()
        || fraction.strip_prefix('.').is_some_and(|digits| {
            (1..=6).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
        });
    let bytes = whole.as_bytes();
    if !fraction_ok || !has_shape(bytes, DATE_TIME_SHAPE) {
        return false;
    }
    let number = |range: std::ops::Range<usize>| digits_value(&bytes[range]);
    let time = NaiveTime::from_hms_opt(number(11..13), number(14..16), number(17..19));
    date_from_digits(bytes).is_some() && time.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(text: &str) -> Option<String> {
        parse_datetime(text).map(|t| format(&t))
    }

    #[test]
    fn feed_forms_become_utc() {
        let cases = [
            ("2026-03-01T12:00:00+00:00", "2026-03-01T12:00:00+00:00"),
            ("2026-03-01T12:00:00Z", "2026-03-01T12:00:00+00:00"),
            ("2026-03-01 12:00:00", "2026-03-01T12:00:00+00:00"),
            ("2026-03-01t12:00:00z", "2026-03-01T12:00:00+00:00"),
            ("2026-03-01T14:00:00+0200", "2026-03-01T12:00:00+00:00"),
            ("2026-03-01T07:00:00-05", "2026-03-01T12:00:00+00:00"),
            ("2026-03-01 12:00:00 UTC", "2026-03-01T12:00:00+00:00"),
            ("2026-03-01T12:00", "2026-03-01T12:00:00+00:00"),
            (
                "2026-03-01T12:00:00.123Z",
                "2026-03-01T12:00:00.123000+00:00",
            ),
            (
                "2026-03-01T12:00:00.1234567Z",
                "2026-03-01T12:00:00.123456+00:00",
            ),
            ("2026-03-01T00:30:00+01:00", "2026-02-28T23:30:00+00:00"),
            (
                "Sun, 01 Mar 2026 13:00:00 +0100",
                "2026-03-01T12:00:00+00:00",
            ),
            ("2026-03-01", "2026-03-01T00:00:00+00:00"),
            // A bad second reads as zero, as it always did.
            ("2026-03-01T12:00:75", "2026-03-01T12:00:00+00:00"),
            ("2026-03-01T12:00:", "2026-03-01T12:00:00+00:00"),
            (
                "2026-03-01T12:00:00,000000001Z",
                "2026-03-01T12:00:00+00:00",
            ),
            (
                "2026-03-01T12:00:00.0000019999Z",
                "2026-03-01T12:00:00.000001+00:00",
            ),
            ("  2026-03-01 12:00  ", "2026-03-01T12:00:00+00:00"),
            ("Sun, 1 Mar 2026 12:00:00 GMT", "2026-03-01T12:00:00+00:00"),
            ("1 Mar 2026 12:00:00 +0000", "2026-03-01T12:00:00+00:00"),
        ];
        for (input, expected) in cases {
            assert_eq!(normal(input).as_deref(), Some(expected), "{input}");
        }
    }

    #[test]
    fn nonsense_is_refused() {
        for input in [
            "",
            "now",
            "2026-13-01T00:00:00Z",
            "2026-03-01T25:00:00Z",
            "2026-03-01T12:00:00+2500",
            "2026-03-01T12:00:00 PST",
            "2026-03-01T12:00:00.Z",
            "1700000000",
            "2026-03-01T1:00:00Z",
            "2026-03-01T12:00:00:00Z",
            "2026-03-01T12:0a",
            "202-03-01T12:00:00Z",
            "2026-03-01T12:00:00.12a",
        ] {
            assert_eq!(normal(input), None, "{input}");
        }
    }

    #[test]
    fn digit_dates_are_read_as_chrono_reads_them() {
        for year in ["0000", "0001", "1999", "2024", "2025", "9999"] {
            for month in 0..=13 {
                for day in 0..=32 {
                    let text = format!("{year}-{month:02}-{day:02}");
                    let by_chrono = NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok();
                    assert_eq!(parse_date(&text), by_chrono, "{text}");
                }
            }
        }
        assert_eq!(parse_date("2026-3-01x"), None);
        assert_eq!(
            parse_date("+2026-3-1"),
            NaiveDate::parse_from_str("+2026-3-1", "%Y-%m-%d").ok()
        );
    }

    #[test]
    fn times_are_written_as_chrono_writes_them() {
        let by_chrono = |time: &DateTime<Utc>| {
            let micros = time.nanosecond() / 1000;
            if micros == 0 {
                time.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
            } else {
                format!("{}.{micros:06}+00:00", time.format("%Y-%m-%dT%H:%M:%S"))
            }
        };
        let dates = [
            (-1, 12, 31),
            (0, 1, 1),
            (7, 2, 3),
            (2026, 3, 1),
            (9999, 12, 31),
            (10000, 1, 1),
        ];
        let clocks = [(0, 0, 0), (9, 5, 7), (23, 59, 59)];
        let nanos = [0, 999, 1_000, 250_000_000, 999_999_999, 1_500_000_000];
        for (year, month, day) in dates {
            for (hour, minute, second) in clocks {
                for nano in nanos {
                    let date = NaiveDate::from_ymd_opt(year, month, day).unwrap();
                    let Some(clock) = NaiveTime::from_hms_nano_opt(hour, minute, second, nano)
                    else {
                        continue;
                    };
                    let time = date.and_time(clock).and_utc();
                    assert_eq!(format(&time), by_chrono(&time), "{time:?}");
                }
            }
        }
    }

    #[test]
    fn canonical_form_is_intelmqs() {
        assert!(is_canonical_datetime("2026-03-01T12:00:00+00:00"));
        assert!(is_canonical_datetime("2026-03-01T12:00:00.5+00:00"));
        assert!(is_canonical_datetime("2026-03-01T12:00:00.123456+00:00"));
        assert!(!is_canonical_datetime("2026-03-01T12:00:00.1234567+00:00"));
        assert!(!is_canonical_datetime("2026-03-01T12:00:00Z"));
        assert!(!is_canonical_datetime("2026-03-01 12:00:00+00:00"));
        assert!(!is_canonical_datetime("2026-02-30T12:00:00+00:00"));
        assert!(!is_canonical_datetime("2026-03-01T12:00:00.+00:00"));
        assert!(!is_canonical_datetime("2026-03-01T12:00:00..5+00:00"));
        assert!(!is_canonical_datetime("2026-03-01T12:00:00.5.5+00:00"));
        assert!(!is_canonical_datetime("2026-03-01T12:00:60+00:00"));
        assert!(!is_canonical_datetime("2026-03-01T24:00:00+00:00"));
        assert!(!is_canonical_datetime("2026-03-01T12:00+00:00"));
        assert!(!is_canonical_datetime("2026-03-01T12:00:000+00:00"));
        assert!(!is_canonical_datetime("2026-03-01T12:00:0ä+00:00"));
        assert!(!is_canonical_datetime("2026-03-0.T12:00:00+00:00"));
        assert!(is_canonical_datetime("2024-02-29T23:59:59+00:00"));
        assert!(!is_canonical_datetime("2025-02-29T23:59:59+00:00"));
    }
}
