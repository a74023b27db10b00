//! Request extractors that answer bad input as Airflow does: strict JSON bodies (an unknown
//! field is a 422 naming it) and query strings with repeated keys (`state=a&state=b`).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use dag::RunState;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body, parsed strictly into `T` (which denies unknown fields).
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
        parse_body(&bytes).map(Body)
    }
}

/// Parse a JSON body, turning serde's message into a 422 located as Airflow's (pydantic's)
/// are: `["body", field, …]`, down to the field whose value is wrong.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path: Vec<String> = err
            .path()
            .iter()
            .filter_map(|segment| match segment {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                serde_path_to_error::Segment::Enum { .. }
                | serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        body_rejection(&path, &err.into_inner())
    })?;
    // Trailing characters after the value are an error, as in `serde_json::from_slice`.
    de.end().map_err(|err| body_rejection(&[], &err))?;
    Ok(value)
}

/// The 422 for a body that did not parse, at `path` (the fields down to the error).
fn body_rejection(path: &[String], err: &serde_json::Error) -> ApiError {
    let message = err.to_string();
    let (field, kind) = if let Some(name) = quoted_after(&message, "unknown field `") {
        (Some(name), "extra_forbidden")
    } else if let Some(name) = quoted_after(&message, "missing field `") {
        (Some(name), "missing")
    } else if err.is_syntax() || err.is_eof() {
        (None, "json_invalid")
    } else if message.contains("expected a map") {
        (None, "dict_type")
    } else {
        (None, "value_error")
    };
    let mut loc = vec!["body"];
    loc.extend(path.iter().map(String::as_str));
    // An unknown field's path may already end with it; a missing one's is its parent's.
    if let Some(field) = field.as_deref()
        && loc.last() != Some(&field)
    {
        loc.push(field);
    }
    let msg = match kind {
        "extra_forbidden" => "Extra inputs are not permitted".to_string(),
        "missing" => "Field required".to_string(),
        "dict_type" => "Input should be a valid dictionary".to_string(),
        _ => message.clone(),
    };
    ApiError::invalid(&loc, msg, kind)
}

fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let start = message.find(prefix)? + prefix.len();
    let end = message[start..].find('`')?;
    Some(message[start..start + end].to_string())
}

/// The query string as (key, value) pairs, in order, repeated keys kept.
#[derive(Debug, Default)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        Ok(QueryPairs(
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        ))
    }
}

impl QueryPairs {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated key; a single value may also hold a comma-separated list.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(',').map(str::to_string))
            .filter(|v| !v.is_empty())
            .collect()
    }

    pub fn int(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        let Some(text) = self.get(key) else {
            return Ok(None);
        };
        let value: i64 = text.parse().map_err(|_| {
            ApiError::invalid(
                &["query", key],
                "Input should be a valid integer",
                "int_parsing",
            )
        })?;
        if value < min || value > max {
            return Err(ApiError::invalid(
                &["query", key],
                format!("Input should be between {min} and {max}"),
                "value_error",
            ));
        }
        Ok(Some(value))
    }

    pub fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(None),
            Some("true" | "1" | "yes" | "on") => Ok(Some(true)),
            Some("false" | "0" | "no" | "off") => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid(
                &["query", key],
                "Input should be a valid boolean",
                "bool_parsing",
            )),
        }
    }

    pub fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.get(key)
            .map(|text| parse_time(text, &["query", key]))
            .transpose()
    }

    /// `limit` (default 50, at most 100 as Airflow's default `maximum_page_limit`) and
    /// `offset`.
    pub fn page(&self) -> Result<Page, ApiError> {
        Ok(Page {
            limit: self.int("limit", 0, i64::MAX)?.unwrap_or(50).min(100) as usize,
            offset: self.int("offset", 0, i64::MAX)?.unwrap_or(0) as usize,
        })
    }
}

/// An integer path segment (`map_index`, `try_number`, …); anything else is a 422 naming it.
pub fn path_int<T: std::str::FromStr>(text: &str, name: &str) -> Result<T, ApiError> {
    text.parse().map_err(|_| {
        ApiError::invalid(
            &["path", name],
            "Input should be a valid integer",
            "int_parsing",
        )
    })
}

/// One page of a listing.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: usize,
    pub offset: usize,
}

impl Page {
    pub fn apply<T>(self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect()
    }
}

/// An RFC 3339 instant, as the generated clients also write it: the offset may lack its
/// colon (`+0000`, Python's `%z`) or be absent (UTC); a date alone means its midnight UTC.
pub fn parse_time(text: &str, loc: &[&str]) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(at) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(at) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(at.and_utc());
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc());
    }
    Err(ApiError::invalid(
        loc,
        "Input should be a valid datetime",
        "datetime_parsing",
    ))
}

/// A run state named in a query or body at `loc`; anything else is a 422 listing the four.
pub fn parse_run_state(text: &str, loc: &[&str]) -> Result<RunState, ApiError> {
    text.parse().map_err(|_| {
        ApiError::invalid(
            loc,
            format!("Input should be 'queued', 'running', 'success' or 'failed', not '{text}'"),
            "enum",
        )
    })
}

/// A sort key a listing may be ordered by: its name and how two items compare.
pub type SortKey<'a, T> = (&'a str, fn(&T, &T) -> std::cmp::Ordering);

/// The store order a listing's `order_by` names (`-` first for descending; `default` when
/// absent), from `keys` (name, store key); unknown keys are a 400 as in Airflow.
pub fn sort<K: Copy>(
    order_by: Option<&str>,
    default: &str,
    keys: &[(&str, K)],
) -> Result<store::Sort<K>, ApiError> {
    let spec = order_by.filter(|s| !s.is_empty()).unwrap_or(default);
    let (descending, name) = match spec.strip_prefix('-') {
        Some(name) => (true, name),
        None => (false, spec),
    };
    let Some(&(_, key)) = keys.iter().find(|(known, _)| *known == name) else {
        return Err(disallowed(name, keys.iter().map(|(known, _)| *known)));
    };
    Ok(if descending {
        store::Sort::descending(key)
    } else {
        store::Sort::ascending(key)
    })
}

/// The 400 for an `order_by` naming no allowed key.
fn disallowed<'a>(name: &str, allowed: impl Iterator<Item = &'a str>) -> ApiError {
    let allowed: Vec<&str> = allowed.collect();
    ApiError::bad_request(format!(
        "Ordering with '{name}' is disallowed or the attribute does not exist on the model; \
         allowed: {}",
        allowed.join(", ")
    ))
}

/// Order `items` by the named key (`-` first for descending); unknown keys are a 400 as in
/// Airflow.
pub fn order<T>(
    items: &mut [T],
    order_by: Option<&str>,
    default: &str,
    keys: &[SortKey<'_, T>],
) -> Result<(), ApiError> {
    let spec = order_by.filter(|s| !s.is_empty()).unwrap_or(default);
    let (descending, name) = match spec.strip_prefix('-') {
        Some(name) => (true, name),
        None => (false, spec),
    };
    let Some((_, compare)) = keys.iter().find(|(key, _)| *key == name) else {
        return Err(disallowed(name, keys.iter().map(|(key, _)| *key)));
    };
    items.sort_by(|a, b| {
        let ordering = compare(a, b);
        if descending {
            ordering.reverse()
        } else {
            ordering
        }
    });
    Ok(())
}

/// SQL `LIKE`-style pattern match as Airflow's `*_pattern` filters do: the pattern is
/// matched anywhere in the text (as `ILIKE '%pattern%'`), case-insensitively, with `%` and
/// `_` as wildcards.
pub fn like(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = format!("%{}%", pattern.to_lowercase()).chars().collect();
    let text: Vec<char> = text.to_lowercase().chars().collect();
    // The wrapped pattern, anchored: classic DP over the two strings.
    let (p, t) = (pattern.len(), text.len());
    let mut dp = vec![vec![false; t + 1]; p + 1];
    dp[0][0] = true;
    for i in 1..=p {
        if pattern[i - 1] == '%' {
            dp[i][0] = dp[i - 1][0];
        }
        for j in 1..=t {
            dp[i][j] = match pattern[i - 1] {
                '%' => dp[i - 1][j] || dp[i][j - 1],
                '_' => dp[i - 1][j - 1],
                c => dp[i - 1][j - 1] && c == text[j - 1],
            };
        }
    }
    dp[p][t]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_clients_write_them() {
        let at = parse_time("2026-11-24T21:51:08.123456+00:00", &["query", "t"]).expect("RFC 3339");
        for text in [
            "2026-11-24T21:51:08.123456Z",
            "2026-11-24T21:51:08.123456+0000",
            "2026-11-24T22:51:08.123456+0100",
            "2026-11-24T21:51:08.123456",
        ] {
            assert_eq!(parse_time(text, &["query", "t"]).ok(), Some(at), "{text}");
        }
        assert!(parse_time("2026-11-24T21:51:08+0", &["query", "t"]).is_err());
        assert!(parse_time("yesterday", &["query", "t"]).is_err());
    }

    #[test]
    fn like_matches_as_sql_does() {
        assert!(like("sales", "daily_sales_etl"));
        assert!(like("daily%", "daily_sales_etl"));
        assert!(!like("daily%", "hello"));
        assert!(like("daily%", "my_daily_dag"));
        assert!(like("h_llo", "HELLO"));
        assert!(like("fan_out", "fan_out_fan_in"));
        assert!(like("h_llo", "say hello_world"));
        assert!(!like("h_llo", "hllo"));
        assert!(!like("sales%etl", "etl_sales"));
    }

    #[test]
    fn strict_bodies_name_the_unknown_field() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Patch {
            is_paused: bool,
        }
        let err = parse_body::<Patch>(br#"{"is_paused": true, "bogus": 1}"#).expect_err("rejected");
        assert_eq!(err.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.detail[0]["loc"], serde_json::json!(["body", "bogus"]));
        assert_eq!(err.detail[0]["type"], "extra_forbidden");
        let err = parse_body::<Patch>(br#"{}"#).expect_err("rejected");
        assert_eq!(err.detail[0]["type"], "missing");
        let err = parse_body::<Patch>(b"{not json").expect_err("rejected");
        assert_eq!(err.detail[0]["type"], "json_invalid");
        let err = parse_body::<Patch>(br#"{"is_paused": true} x"#).expect_err("trailing");
        assert_eq!(err.detail[0]["type"], "json_invalid");
    }

    #[test]
    fn a_wrong_value_is_located_at_its_field() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Inner {
            n: u32,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Trigger {
            conf: Option<serde_json::Map<String, serde_json::Value>>,
            inner: Option<Inner>,
            list: Option<Vec<Inner>>,
        }
        let loc = |body: &str| {
            let err = parse_body::<Trigger>(body.as_bytes()).expect_err("rejected");
            (err.detail[0]["loc"].clone(), err.detail[0]["type"].clone())
        };
        assert_eq!(
            loc(r#"{"conf": "x"}"#),
            (
                serde_json::json!(["body", "conf"]),
                serde_json::json!("dict_type")
            )
        );
        assert_eq!(
            loc(r#"{"inner": {"n": "x"}}"#).0,
            serde_json::json!(["body", "inner", "n"])
        );
        assert_eq!(
            loc(r#"{"inner": {"n": 1, "m": 2}}"#).0,
            serde_json::json!(["body", "inner", "m"])
        );
        assert_eq!(
            loc(r#"{"inner": {}}"#).0,
            serde_json::json!(["body", "inner", "n"])
        );
        assert_eq!(
            loc(r#"{"list": [{"n": 1}, {"n": -1}]}"#).0,
            serde_json::json!(["body", "list", "1", "n"])
        );
    }
}
