//! Durations as written in DAG files: `90s`, `5m`, `1h30m`, `2d`, `250ms`, or a number of
//! seconds.

/// Parse a duration into seconds; the error says what was expected.
///
/// Units are `d`, `h`, `m`, `s`, `ms` (each at most once, largest first, each with a whole or
/// decimal amount), or the text is a plain non-negative number of seconds.
pub fn parse_duration(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let expected = "expected a duration such as 90s, 5m, 1h30m, 2d or a number of seconds";
    if trimmed.is_empty() {
        return Err(format!("empty duration: {expected}"));
    }
    if let Ok(seconds) = trimmed.parse::<f64>() {
        return check_seconds(text, seconds);
    }
    const UNITS: [(&str, f64); 5] = [
        ("d", 86_400.0),
        ("h", 3_600.0),
        ("ms", 0.001),
        ("m", 60.0),
        ("s", 1.0),
    ];
    // Largest first: minutes come before seconds and milliseconds.
    const ORDER: [usize; 5] = [0, 1, 4, 2, 3];
    let mut total = 0.0;
    // Index into UNITS of the next unit allowed: units must come largest first, once each.
    let mut next_unit = 0;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| {
                format!("invalid duration '{text}': number without a unit at the end; {expected}")
            })?;
        let (amount, tail) = rest.split_at(digits);
        // "ms" is tried before "m" so that milliseconds are not read as minutes.
        let Some(position) = UNITS.iter().position(|(u, _)| tail.starts_with(u)) else {
            let unit = tail.chars().next().unwrap_or_default();
            return Err(format!(
                "invalid duration '{text}': unknown unit '{unit}'; {expected}"
            ));
        };
        let unit = UNITS[position].0;
        if amount.is_empty() {
            return Err(format!(
                "invalid duration '{text}': '{unit}' needs a number before it; {expected}"
            ));
        }
        let Ok(value) = amount.parse::<f64>() else {
            return Err(format!(
                "invalid duration '{text}': bad number '{amount}'; {expected}"
            ));
        };
        let rank = ORDER[position];
        if rank < next_unit {
            return Err(format!(
                "invalid duration '{text}': units must appear once each, largest first (d, h, m, s, ms)"
            ));
        }
        next_unit = rank + 1;
        total += value * UNITS[position].1;
        rest = &tail[unit.len()..];
    }
    check_seconds(text, total)
}

fn check_seconds(text: &str, seconds: f64) -> Result<f64, String> {
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!(
            "invalid duration '{text}': must be a finite number of seconds, not negative"
        ));
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<f64, &str>) {
        let got = parse_duration(input);
        match (&got, expected) {
            (Ok(a), Ok(b)) => assert_eq!(*a, b, "{input}"),
            (Err(a), Err(b)) => assert!(a.contains(b), "{input}: {a:?} should contain {b:?}"),
            _ => panic!("{input}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn durations() {
        check("90s", Ok(90.0));
        check("5m", Ok(300.0));
        check("1h30m", Ok(5400.0));
        check("250ms", Ok(0.25));
        check("1s500ms", Ok(1.5));
        check("1m30s", Ok(90.0));
        check("2d", Ok(172_800.0));
        check("1d2h3m4s", Ok(93_784.0));
        check("1.5h", Ok(5400.0));
        check("300", Ok(300.0));
        check("2.5", Ok(2.5));
        check(" 10s ", Ok(10.0));
        check("0", Ok(0.0));
    }

    #[test]
    fn bad_durations() {
        check("", Err("empty duration"));
        check("5x", Err("unknown unit 'x'"));
        check("10", Ok(10.0));
        check("1h30", Err("number without a unit"));
        check("m", Err("'m' needs a number"));
        check("30m1h", Err("largest first"));
        check("5m5m", Err("largest first"));
        check("-5", Err("not negative"));
        check("1..2s", Err("bad number '1..2'"));
        check("abc", Err("unknown unit 'a'"));
    }
}
