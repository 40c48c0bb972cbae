//! Schedules: when a worker may run units, in the machine's local time.
//!
//! A schedule is a list of windows, each `[DAYS ]HH:MM-HH:MM`: DAYS is `daily` (the
//! default), a day (`mon`), a range (`mon-fri`) or a comma list of those (`sat,sun`). A
//! window whose end is not after its start runs past midnight into the next day and
//! belongs to the day it starts on: `mon-fri 22:00-07:00` includes Saturday 03:00.
//! `24:00` is the end of the day. An empty schedule means always.

use std::fmt;

/// Minutes since midnight, and the weekday (0 = Monday).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalMoment {
    pub weekday: u8,
    pub minute: u16,
}

impl LocalMoment {
    /// Now, in the machine's time zone.
    pub fn now() -> LocalMoment {
        let now = jiff::Zoned::now();
        LocalMoment {
            weekday: now.weekday().to_monday_zero_offset() as u8,
            minute: now.hour() as u16 * 60 + now.minute() as u16,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Window {
    /// Bit d set: the window starts on weekday d.
    days: u8,
    start: u16,
    end: u16,
    text: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    windows: Vec<Window>,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Schedule {
    /// Parses windows; the error says which one is wrong and what is expected.
    pub fn parse(windows: &[String]) -> Result<Schedule, String> {
        let windows = windows.iter().map(|text| parse_window(text)).collect::<Result<_, _>>()?;
        Ok(Schedule { windows })
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    pub fn allows(&self, moment: LocalMoment) -> bool {
        if self.windows.is_empty() {
            return true;
        }
        let yesterday = (moment.weekday + 6) % 7;
        self.windows.iter().any(|window| {
            let starts_today = window.days & (1 << moment.weekday) != 0;
            let started_yesterday = window.days & (1 << yesterday) != 0;
            if window.start < window.end {
                starts_today && (window.start..window.end).contains(&moment.minute)
            } else {
                (starts_today && moment.minute >= window.start)
                    || (started_yesterday && moment.minute < window.end)
            }
        })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<&str> = self.windows.iter().map(|window| window.text.as_str()).collect();
        formatter.write_str(&if texts.is_empty() { "always".to_string() } else { texts.join("; ") })
    }
}

fn parse_window(text: &str) -> Result<Window, String> {
    let expected = "write windows like \"22:00-07:00\", \"mon-fri 18:00-08:00\" or \"sat,sun 00:00-24:00\"";
    let mut parts = text.split_whitespace();
    let (days_text, times_text) = match (parts.next(), parts.next(), parts.next()) {
        (Some(times), None, None) => ("daily", times),
        (Some(days), Some(times), None) => (days, times),
        _ => return Err(format!("schedule window {text:?} is not `[DAYS ]HH:MM-HH:MM`; {expected}")),
    };
    let days = parse_days(days_text).ok_or_else(|| {
        format!("schedule window {text:?}: {days_text:?} is not a day list (mon..sun, ranges, commas, daily); {expected}")
    })?;
    let (start, end) = times_text
        .split_once('-')
        .and_then(|(start, end)| Some((parse_time(start)?, parse_time(end)?)))
        .ok_or_else(|| format!("schedule window {text:?}: {times_text:?} is not HH:MM-HH:MM; {expected}"))?;
    if start == end || start == 24 * 60 {
        return Err(format!("schedule window {text:?} is empty; {expected}"));
    }
    Ok(Window { days, start, end, text: text.to_string() })
}

fn parse_days(text: &str) -> Option<u8> {
    if text == "daily" {
        return Some(0x7f);
    }
    let day = |name: &str| DAY_NAMES.iter().position(|day| *day == name.to_ascii_lowercase());
    text.split(',').try_fold(0u8, |days, part| {
        let (first, last) = match part.split_once('-') {
            Some((first, last)) => (day(first)?, day(last)?),
            None => (day(part)?, day(part)?),
        };
        let mut days = days;
        let mut current = first;
        loop {
            days |= 1 << current;
            if current == last {
                return Some(days);
            }
            current = (current + 1) % 7;
        }
    })
}

fn parse_time(text: &str) -> Option<u16> {
    let (hours, minutes) = text.split_once(':')?;
    let (hours, minutes): (u16, u16) = (hours.parse().ok()?, minutes.parse().ok()?);
    (minutes < 60 && (hours < 24 || (hours == 24 && minutes == 0))).then_some(hours * 60 + minutes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(windows: &[&str]) -> Schedule {
        Schedule::parse(&windows.iter().map(|window| window.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn at(weekday: u8, hour: u16, minute: u16) -> LocalMoment {
        LocalMoment { weekday, minute: hour * 60 + minute }
    }

    #[test]
    fn windows_past_midnight_belong_to_their_start_day() {
        let nights = schedule(&["mon-fri 22:00-07:00"]);
        assert!(nights.allows(at(0, 23, 0)));
        assert!(nights.allows(at(5, 3, 0)), "Saturday 03:00 is Friday's night");
        assert!(!nights.allows(at(0, 3, 0)), "Monday 03:00 is Sunday's night, not in the schedule");
        assert!(!nights.allows(at(2, 12, 0)));
        assert!(!nights.allows(at(5, 22, 30)));
        let weekends = schedule(&["sat,sun 00:00-24:00", "09:00-10:00"]);
        assert!(weekends.allows(at(6, 23, 59)) && weekends.allows(at(2, 9, 30)));
        assert!(!weekends.allows(at(2, 10, 0)));
        assert!(schedule(&[]).allows(at(3, 4, 5)));
        assert!(schedule(&["fri-mon 10:00-11:00"]).allows(at(6, 10, 30)), "ranges wrap over the week");
    }

    #[test]
    fn bad_windows_say_what_is_expected() {
        for (bad, needle) in [
            ("22:00", "HH:MM-HH:MM"),
            ("mon-fry 22:00-07:00", "not a day list"),
            ("25:00-07:00", "HH:MM-HH:MM"),
            ("10:00-10:00", "empty"),
            ("mon fri 10:00-11:00", "[DAYS ]HH:MM-HH:MM"),
        ] {
            let error = Schedule::parse(&[bad.to_string()]).unwrap_err();
            assert!(error.contains(needle) && error.contains("write windows like"), "{bad}: {error}");
        }
    }
}
