//! Sensors: what a `sensor` task waits for, its options, and the pure arithmetic of waiting
//! (when the next poke is due, when the sensor has timed out).
//!
//! The probes themselves do I/O and live elsewhere (`sensor` crate); this module only
//! describes them. Strings marked *template* are rendered with the task's context before a
//! probe runs.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::template::{self, Reads};

/// A `sensor` task: what it waits for and how it waits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sensor {
    pub probe: Probe,
    /// Seconds between pokes (before backoff).
    pub poke_interval: f64,
    /// Seconds from the first poke of a try after which the sensor gives up.
    pub timeout: f64,
    pub mode: SensorMode,
    /// On timeout become `skipped` instead of `failed`.
    pub soft_fail: bool,
    /// Let the interval between pokes grow (see [`next_poke_delay`]).
    pub exponential_backoff: bool,
}

/// How a sensor waits between pokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorMode {
    /// Between pokes the instance is `up_for_reschedule` and holds no worker slot.
    Reschedule,
    /// The sensor holds a worker slot and sleeps there between pokes.
    Poke,
}

/// What a sensor checks on each poke.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Probe {
    /// Done when a path exists; glob patterns (`*`, `?`, `[...]`) match any file. Template.
    File { path: String },
    /// Done when the response has the expected status and `response_check` holds.
    Http(HttpProbe),
    /// Done when the first cell of the first row is truthy.
    Sql { conn_id: String, sql: String },
    /// Done when a task (or the whole run) of another DAG succeeded; failed if it failed.
    ExternalTask(ExternalTaskProbe),
    /// Done at or after an instant (template rendering to an RFC 3339 time or a date).
    Time { after: String },
    /// Done when `bash -c command` exits 0; runs on a worker on each poke. Template.
    Command { command: String },
}

impl Probe {
    /// The probe's name as written in a DAG file.
    pub fn name(&self) -> &'static str {
        match self {
            Probe::File { .. } => "file",
            Probe::Http(_) => "http",
            Probe::Sql { .. } => "sql",
            Probe::ExternalTask(_) => "external_task",
            Probe::Time { .. } => "time",
            Probe::Command { .. } => "command",
        }
    }

    /// What the probe's templates read (header names included).
    pub fn reads(&self) -> Reads {
        match self {
            Probe::File { path } => template::reads(path),
            Probe::Http(http) => {
                let mut reads = template::reads(&http.url)
                    | template::reads(&http.method)
                    | template::reads(http.response_check.as_deref().unwrap_or_default())
                    | template::reads(http.conn_id.as_deref().unwrap_or_default());
                for (name, value) in &http.headers {
                    reads |= template::reads(name) | template::reads(value);
                }
                reads
            }
            Probe::Sql { conn_id, sql } => template::reads(conn_id) | template::reads(sql),
            Probe::ExternalTask(external) => {
                template::reads(&external.dag_id)
                    | template::reads(external.task_id.as_deref().unwrap_or_default())
                    | template::reads(external.logical_date.as_deref().unwrap_or_default())
            }
            Probe::Time { after } => template::reads(after),
            Probe::Command { command } => template::reads(command),
        }
    }

    /// Whether rendering the probe needs variables and connections opened: its templates
    /// read them, or it pokes through a connection (`conn_id`).
    pub fn needs_secrets(&self) -> bool {
        let uses_connection = matches!(
            self,
            Probe::Sql { .. }
                | Probe::Http(HttpProbe {
                    conn_id: Some(_),
                    ..
                })
        );
        uses_connection || self.reads().secrets()
    }

    /// Whether a poke needs a worker process: only `command` runs one.
    pub fn needs_worker(&self) -> bool {
        matches!(self, Probe::Command { .. })
    }
}

/// `http: {url, method, expect_status, response_check, conn_id, headers}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpProbe {
    /// Template; relative to the connection's base URL when `conn_id` is set.
    pub url: String,
    pub method: String,
    /// Status codes that count; empty (the default) means any 2xx.
    pub expect_status: Vec<u16>,
    /// A template expression (no braces) over `response` (`.status`, `.text`, `.json`,
    /// `.headers`); the poke is done when it is truthy.
    pub response_check: Option<String>,
    pub conn_id: Option<String>,
    /// Header name → template.
    pub headers: std::collections::BTreeMap<String, String>,
}

/// `external_task: {dag_id, task_id, logical_date}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExternalTaskProbe {
    pub dag_id: String,
    /// `None` waits for the whole run.
    pub task_id: Option<String>,
    /// Template giving the other run's logical date; `None` means this run's.
    pub logical_date: Option<String>,
}

impl Sensor {
    /// Whether the scheduler's sensor loop pokes this sensor (in reschedule mode, every
    /// probe but `command`); otherwise a worker runs it.
    pub fn poked_by_scheduler(&self) -> bool {
        self.mode == SensorMode::Reschedule && !self.probe.needs_worker()
    }

    /// Whether the sensor has timed out `elapsed` seconds after its first poke.
    pub fn timed_out(&self, elapsed: f64) -> bool {
        elapsed >= self.timeout
    }
}

/// Seconds until the next poke after poke number `pokes` (1 for the first), `elapsed`
/// seconds after the first poke.
///
/// Without backoff: `poke_interval`. With `exponential_backoff`: `poke_interval · 2^(pokes−1)`
/// stretched by a jitter in [0, 1) up to ×1.5 so that sensors started together spread out.
/// Either way the wait is capped by the time left until `timeout`, so a sensor that is
/// going to time out is poked once more exactly at its timeout and settled then, never a
/// whole interval late. `jitter` is passed in to keep this pure; callers derive it from the
/// instance so a delay is reproducible.
pub fn next_poke_delay(sensor: &Sensor, pokes: u32, elapsed: f64, jitter: f64) -> f64 {
    let interval = sensor.poke_interval.max(0.0);
    let delay = if sensor.exponential_backoff {
        let exponent = i32::try_from(pokes.saturating_sub(1).min(62)).unwrap_or(62);
        interval * 2f64.powi(exponent) * (1.0 + 0.5 * jitter.clamp(0.0, 1.0))
    } else {
        interval
    };
    let left = (sensor.timeout - elapsed).max(0.0);
    if delay.is_finite() {
        delay.min(left)
    } else {
        left
    }
}

/// Whether a value counts as true, as Python (and Airflow's SQL sensor) sees it: not null,
/// not false, not zero, not an empty string, list or object. The strings `"0"`, `"false"`
/// (any case) are false too, since databases often return flags as text.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => {
            let s = s.trim();
            !(s.is_empty() || s == "0" || s.eq_ignore_ascii_case("false"))
        }
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(poke_interval: f64, timeout: f64, backoff: bool) -> Sensor {
        Sensor {
            probe: Probe::File { path: "x".into() },
            poke_interval,
            timeout,
            mode: SensorMode::Reschedule,
            soft_fail: false,
            exponential_backoff: backoff,
        }
    }

    #[test]
    fn fixed_interval_capped_by_the_timeout() {
        let s = sensor(60.0, 3600.0, false);
        assert_eq!(next_poke_delay(&s, 1, 0.0, 0.5), 60.0);
        assert_eq!(next_poke_delay(&s, 7, 3590.0, 0.5), 10.0);
        assert_eq!(next_poke_delay(&s, 7, 4000.0, 0.5), 0.0);
    }

    #[test]
    fn backoff_doubles_with_jitter() {
        let s = sensor(10.0, 1e9, true);
        assert_eq!(next_poke_delay(&s, 1, 0.0, 0.0), 10.0);
        assert_eq!(next_poke_delay(&s, 2, 0.0, 0.0), 20.0);
        assert_eq!(next_poke_delay(&s, 4, 0.0, 0.0), 80.0);
        assert_eq!(next_poke_delay(&s, 4, 0.0, 1.0), 120.0);
        // Huge exponents stay finite and capped.
        let short = sensor(10.0, 100.0, true);
        assert_eq!(next_poke_delay(&short, 500, 50.0, 0.3), 50.0);
    }

    #[test]
    fn truthiness() {
        for v in [
            serde_json::json!(1),
            serde_json::json!("yes"),
            serde_json::json!([0]),
        ] {
            assert!(truthy(&v), "{v}");
        }
        for v in [
            serde_json::json!(null),
            serde_json::json!(0),
            serde_json::json!(0.0),
            serde_json::json!(""),
            serde_json::json!("0"),
            serde_json::json!("False"),
            serde_json::json!(false),
            serde_json::json!([]),
        ] {
            assert!(!truthy(&v), "{v}");
        }
    }
}
