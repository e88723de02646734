//! Timestamps (milliseconds since the Unix epoch, UTC): ISO-8601 parsing and
//! formatting, and the intervals of `time_bucket`.

use super::error::{Result, TypeError};

const MS_PER_SECOND: i64 = 1_000;
const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day number since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses an ISO-8601 timestamp: `YYYY-MM-DD`, optionally followed by `T` or
/// a space and `HH:MM[:SS[.fff]]`, optionally followed by `Z` or an offset
/// `+HH:MM`/`-HH:MM`. Without a zone the time is taken as UTC.
pub fn parse_timestamp(text: &str) -> Result<i64> {
    let invalid = || {
        TypeError::Invalid(format!(
            "'{text}' is not a timestamp: expected ISO-8601 like '2026-11-24T10:00:00Z'"
        ))
    };
    let mut p = Cursor {
        bytes: text.trim().as_bytes(),
        pos: 0,
    };
    let negative_year = p.eat(b'-');
    let mut year = p.number(4, 4).ok_or_else(invalid)? as i64;
    if negative_year {
        year = -year;
    }
    if !p.eat(b'-') {
        return Err(invalid());
    }
    let month = p.number(2, 2).ok_or_else(invalid)? as u32;
    if !p.eat(b'-') {
        return Err(invalid());
    }
    let day = p.number(2, 2).ok_or_else(invalid)? as u32;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(invalid());
    }
    let mut ms = days_from_civil(year, month, day) * MS_PER_DAY;
    if p.eat(b'T') || p.eat(b't') || p.eat(b' ') {
        let hour = p.number(2, 2).ok_or_else(invalid)? as i64;
        if !p.eat(b':') {
            return Err(invalid());
        }
        let minute = p.number(2, 2).ok_or_else(invalid)? as i64;
        let mut second = 0;
        let mut millis = 0;
        if p.eat(b':') {
            second = p.number(2, 2).ok_or_else(invalid)? as i64;
            if p.eat(b'.') {
                let start = p.pos;
                let digits = p.number(1, 9).ok_or_else(invalid)? as i64;
                let len = (p.pos - start) as u32;
                millis = if len >= 3 {
                    digits / 10i64.pow(len - 3)
                } else {
                    digits * 10i64.pow(3 - len)
                };
            }
        }
        if hour > 23 || minute > 59 || second > 60 {
            return Err(invalid());
        }
        ms += hour * MS_PER_HOUR + minute * MS_PER_MINUTE + second * MS_PER_SECOND + millis;
        if p.eat(b'Z') || p.eat(b'z') {
        } else if p.peek() == Some(b'+') || p.peek() == Some(b'-') {
            let sign = if p.eat(b'-') { -1 } else { i64::from(p.eat(b'+')) };
            let oh = p.number(2, 2).ok_or_else(invalid)? as i64;
            p.eat(b':');
            let om = p.number(2, 2).ok_or_else(invalid)? as i64;
            ms -= sign * (oh * MS_PER_HOUR + om * MS_PER_MINUTE);
        }
    }
    if p.pos != p.bytes.len() {
        return Err(invalid());
    }
    Ok(ms)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Reads between `min` and `max` decimal digits.
    fn number(&mut self, min: usize, max: usize) -> Option<u64> {
        let start = self.pos;
        let mut n: u64 = 0;
        while self.pos - start < max {
            match self.peek() {
                Some(d @ b'0'..=b'9') => {
                    n = n * 10 + u64::from(d - b'0');
                    self.pos += 1;
                }
                _ => break,
            }
        }
        (self.pos - start >= min).then_some(n)
    }
}

/// Formats epoch milliseconds as ISO-8601 UTC: `2026-11-24T10:00:00Z`, with
/// `.mmm` when the milliseconds are not zero.
pub fn format_timestamp(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let rest = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let (h, rest) = (rest / MS_PER_HOUR, rest % MS_PER_HOUR);
    let (min, rest) = (rest / MS_PER_MINUTE, rest % MS_PER_MINUTE);
    let (s, millis) = (rest / MS_PER_SECOND, rest % MS_PER_SECOND);
    if millis == 0 {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{millis:03}Z")
    }
}

/// Parses an interval such as `'5 minutes'`, `'1 hour'`, `'30s'` or `'2 days'`
/// into milliseconds.
pub fn parse_interval(text: &str) -> Result<i64> {
    let invalid = || {
        TypeError::Invalid(format!(
            "'{text}' is not an interval: expected a count and a unit, like '5 minutes'"
        ))
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
    let (count, unit) = t.split_at(split);
    let count: i64 = count.parse().map_err(|_| invalid())?;
    let unit_ms = match unit.trim().to_ascii_lowercase().as_str() {
        "ms" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => MS_PER_SECOND,
        "m" | "min" | "mins" | "minute" | "minutes" => MS_PER_MINUTE,
        "h" | "hr" | "hrs" | "hour" | "hours" => MS_PER_HOUR,
        "d" | "day" | "days" => MS_PER_DAY,
        "w" | "week" | "weeks" => 7 * MS_PER_DAY,
        _ => return Err(invalid()),
    };
    let ms = count.checked_mul(unit_ms).ok_or_else(invalid)?;
    if ms <= 0 {
        return Err(TypeError::Invalid(format!("interval '{text}' must be positive")));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_round_trip() {
        for s in [
            "1970-01-01T00:00:00Z",
            "2026-11-24T10:00:00Z",
            "2000-02-29T23:59:59.123Z",
            "1969-12-31T23:59:59.999Z",
        ] {
            assert_eq!(format_timestamp(parse_timestamp(s).unwrap()), s);
        }
    }

    #[test]
    fn accepts_dates_offsets_and_spaces() {
        assert_eq!(parse_timestamp("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(
            parse_timestamp("2026-11-24 12:00:00+02:00").unwrap(),
            parse_timestamp("2026-11-24T10:00:00Z").unwrap()
        );
        assert_eq!(parse_timestamp("1970-01-01T00:00").unwrap(), 0);
    }

    #[test]
    fn rejects_bad_timestamps() {
        for s in [
            "",
            "2026-13-01",
            "2026-02-30",
            "2026-11-24T25:00:00",
            "x",
            "2026-11-24Tab",
        ] {
            assert!(parse_timestamp(s).is_err(), "{s}");
        }
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5 minutes").unwrap(), 300_000);
        assert_eq!(parse_interval("1 hour").unwrap(), 3_600_000);
        assert_eq!(parse_interval("30s").unwrap(), 30_000);
        assert!(parse_interval("0 s").is_err());
        assert!(parse_interval("five minutes").is_err());
        assert!(parse_interval("5 fortnights").is_err());
    }
}
