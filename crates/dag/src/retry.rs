//! When the next try of a failed task may start: fixed delay, or exponential backoff.

use crate::model::Task;

/// Seconds to wait before try `next_try` (2 for the first retry) of `task`.
///
/// With backoff multiplier m, try n waits `retry_delay · m^(n−2)` for n ≥ 2 (the first retry
/// waits `retry_delay`), then a jitter in [0, 1) stretches it up to ×2, and the result is
/// capped by `max_retry_delay` — Airflow 3's formula. `jitter` is passed in so that this stays
/// a pure function; callers derive it from the task instance so a retry is reproducible.
pub fn retry_delay_seconds(task: &Task, next_try: u32, jitter: f64) -> f64 {
    let delay = match task.retry_exponential_backoff {
        None => task.retry_delay,
        Some(multiplier) => {
            let exponent = i32::try_from(next_try.saturating_sub(2)).unwrap_or(i32::MAX);
            let base = task.retry_delay * multiplier.powi(exponent);
            base * (1.0 + jitter.clamp(0.0, 1.0))
        }
    };
    if delay.is_finite() {
        delay.min(task.max_retry_delay).max(0.0)
    } else {
        task.max_retry_delay
    }
}

/// A number in [0, 1) that is always the same for the same `seed` (splitmix64, a cheap and
/// well-mixed hash), so delays that carry a jitter are reproducible for one try or poke.
pub fn jitter(seed: u64) -> f64 {
    let mut x = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_dag_str;

    fn task(extra: &str) -> Task {
        let text = format!("tasks:\n  - {{id: t, bash: 'true', {extra}}}\n");
        let dag = parse_dag_str("retry_test.yaml", &text).expect("valid dag");
        dag.tasks.into_iter().next().expect("one task")
    }

    #[test]
    fn fixed_delay() {
        let t = task("retry_delay: 30s");
        assert_eq!(retry_delay_seconds(&t, 2, 0.7), 30.0);
        assert_eq!(retry_delay_seconds(&t, 5, 0.7), 30.0);
    }

    #[test]
    fn exponential_backoff_with_cap() {
        let t = task("retry_delay: 10s, retry_exponential_backoff: true, max_retry_delay: 100s");
        assert_eq!(retry_delay_seconds(&t, 2, 0.0), 10.0);
        assert_eq!(retry_delay_seconds(&t, 3, 0.0), 20.0);
        assert_eq!(retry_delay_seconds(&t, 4, 0.5), 60.0);
        assert_eq!(retry_delay_seconds(&t, 9, 0.0), 100.0);
    }

    #[test]
    fn custom_multiplier() {
        let t = task("retry_delay: 1s, retry_exponential_backoff: 3");
        assert_eq!(retry_delay_seconds(&t, 4, 0.0), 9.0);
    }
}
