//! A point in time as the catalog keeps it.
//!
//! Both engines store times as text in one fixed form — UTC, milliseconds,
//! `2026-12-06T05:37:00.123Z` — because text in that form sorts as time
//! does: the SQL compares and takes the greatest of them (`updated_at >=
//! ?`, `MAX(?, created_at)`) without an engine-specific time type, and a
//! catalog moves between SQLite and PostgreSQL unchanged. [`Stamp`] is that
//! text made a type: the only way to build one is from a time, so every
//! stored time has the form; a stored one that does not parse is a corrupt
//! row, not a string passed on.

use std::fmt;

/// A time as the catalog stores it (UTC, milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp(jiff::Timestamp);

impl Stamp {
    /// Now, cut to the millisecond (so what is written is what is read).
    pub fn now() -> Self {
        Self::of(jiff::Timestamp::now())
    }

    /// `time`, cut to the millisecond.
    pub fn of(time: jiff::Timestamp) -> Self {
        // Whole milliseconds since the epoch are always a valid timestamp.
        Self(jiff::Timestamp::from_millisecond(time.as_millisecond()).unwrap_or(time))
    }

    /// Any RFC 3339 time (a platform's, often whole seconds or another
    /// offset), or `None` if `text` is not one.
    pub fn parse(text: &str) -> Option<Self> {
        text.parse::<jiff::Timestamp>().ok().map(Self::of)
    }

    /// `ms` milliseconds later (saturating at the end of representable time).
    pub fn after_ms(self, ms: i64) -> jiff::Timestamp {
        self.0.checked_add(jiff::SignedDuration::from_millis(ms)).unwrap_or(jiff::Timestamp::MAX)
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"))
    }
}

impl serde::Serialize for Stamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_form_is_utc_milliseconds_and_sorts_as_time_does() {
        let a = Stamp::parse("2026-12-06T07:00:00+02:00").unwrap();
        assert_eq!(a.to_string(), "2026-12-06T05:00:00.000Z");
        let b = Stamp::parse("2026-12-06T05:00:00.0129Z").unwrap();
        assert_eq!(b.to_string(), "2026-12-06T05:00:00.012Z");
        assert!(a < b && a.to_string() < b.to_string());
        assert_eq!(Stamp::parse(&b.to_string()), Some(b), "what is written reads back the same");
        assert_eq!(Stamp::parse("yesterday"), None);
    }
}
