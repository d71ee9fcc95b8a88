//! Calendar facts the rules need: year-months (the OPTIGEM end field) and dates in Europe/Berlin (R-A2).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Europe::Berlin;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The calendar date in Europe/Berlin at an instant: every rule about days is decided on this calendar (R-A2).
pub fn berlin_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&Berlin).date_naive()
}

/// A month of a year, such as the OPTIGEM end field "April 2024". Written `2024-04` on the wire.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YearMonth {
    year: i32,
    month: u32,
}

/// Why a text is not a year-month.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a year-month like 2024-04")]
pub struct YearMonthError;

impl YearMonth {
    /// A year-month; the month is 1..=12.
    pub fn new(year: i32, month: u32) -> Result<Self, YearMonthError> {
        if (1..=12).contains(&month) && (1..=9999).contains(&year) {
            Ok(Self { year, month })
        } else {
            Err(YearMonthError)
        }
    }

    /// The month a date lies in.
    pub fn of(date: NaiveDate) -> Self {
        Self { year: date.year(), month: date.month() }
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.year
    }

    /// The month, 1..=12.
    pub fn month(self) -> u32 {
        self.month
    }

    /// The month before (R-E1: the end written for an unsubscribe).
    pub fn prev(self) -> Self {
        if self.month == 1 {
            Self { year: self.year - 1, month: 12 }
        } else {
            Self { year: self.year, month: self.month - 1 }
        }
    }

    /// The month after.
    pub fn next(self) -> Self {
        if self.month == 12 {
            Self { year: self.year + 1, month: 1 }
        } else {
            Self { year: self.year, month: self.month + 1 }
        }
    }

    /// The first day of the month.
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("valid year-month")
    }

    /// The last day of the month (R-A2: the last day an end month still delivers).
    pub fn last_day(self) -> NaiveDate {
        self.next().first_day().pred_opt().expect("date after year 1")
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}
impl fmt::Debug for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "YearMonth({self})")
    }
}

impl FromStr for YearMonth {
    type Err = YearMonthError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (y, m) = s.trim().split_once('-').ok_or(YearMonthError)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(YearMonthError);
        }
        Self::new(y.parse().map_err(|_| YearMonthError)?, m.parse().map_err(|_| YearMonthError)?)
    }
}

impl Serialize for YearMonth {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for YearMonth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn year_month_parses_and_prints_the_wire_form() {
        let ym: YearMonth = "2024-04".parse().unwrap();
        assert_eq!(ym.to_string(), "2024-04");
        assert_eq!(ym.last_day(), NaiveDate::from_ymd_opt(2024, 4, 30).unwrap());
        assert_eq!("2024-02".parse::<YearMonth>().unwrap().last_day().day(), 29);
        for bad in ["2024-13", "2024-00", "24-04", "April 2024", "2024-4"] {
            assert!(bad.parse::<YearMonth>().is_err(), "{bad}");
        }
        assert_eq!("2024-01".parse::<YearMonth>().unwrap().prev().to_string(), "2023-12");
        assert_eq!("2024-12".parse::<YearMonth>().unwrap().next().to_string(), "2025-01");
    }

    #[test]
    fn r_a2_dates_are_taken_in_europe_berlin() {
        // 22:30 UTC on 30 April is already 1 May in Berlin (CEST, UTC+2).
        let at = Utc.with_ymd_and_hms(2024, 4, 30, 22, 30, 0).unwrap();
        assert_eq!(berlin_date(at), NaiveDate::from_ymd_opt(2024, 5, 1).unwrap());
        // 23:30 UTC on 31 December is 1 January in Berlin (CET, UTC+1).
        let at = Utc.with_ymd_and_hms(2024, 12, 31, 23, 30, 0).unwrap();
        assert_eq!(berlin_date(at), NaiveDate::from_ymd_opt(2025, 1, 1).unwrap());
        let at = Utc.with_ymd_and_hms(2024, 12, 31, 22, 59, 0).unwrap();
        assert_eq!(berlin_date(at), NaiveDate::from_ymd_opt(2024, 12, 31).unwrap());
    }
}
