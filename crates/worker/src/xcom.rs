//! XComs a try pushes: lines of `$UPDRAFT_XCOM_FILE`, a Python callable's result file, and the
//! 1 MiB limit on each value.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

/// The largest XCom value, serialized as JSON (dag-format.md, XCom).
pub const MAX_XCOM_BYTES: usize = 1024 * 1024;

/// Largest `$UPDRAFT_XCOM_FILE` read back: past it the file cannot hold only values within
/// the limit unless a task pushes a great many, and reading it whole would cost the worker
/// unbounded memory.
const MAX_XCOM_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The key of a task's result.
pub const RETURN_VALUE: &str = "return_value";

/// Why a try's XComs could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum XcomError {
    /// One value is over [`MAX_XCOM_BYTES`].
    #[error(
        "XCom '{key}' is {size} bytes serialized, over the limit of 1 MiB ({MAX_XCOM_BYTES} bytes)"
    )]
    TooLarge { key: String, size: usize },
    /// A line of the XCom file is not `{"key": K, "value": V}`.
    #[error("line {line} of $UPDRAFT_XCOM_FILE is not {{\"key\": K, \"value\": V}}: {message}")]
    BadLine { line: usize, message: String },
    /// The XCom file is too large to read back.
    #[error("$UPDRAFT_XCOM_FILE is {size} bytes, over the limit of {MAX_XCOM_FILE_BYTES} bytes")]
    FileTooLarge { size: u64 },
    /// The python runner's result file is not JSON.
    #[error("the return value could not be read back: {0}")]
    BadResult(String),
    /// Reading a file failed.
    #[error("could not read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Fail if `value` is over the size limit.
pub fn check_size(key: &str, value: &Value) -> Result<(), XcomError> {
    let size = serde_json::to_string(value).map(|s| s.len()).unwrap_or(0);
    if size > MAX_XCOM_BYTES {
        return Err(XcomError::TooLarge {
            key: key.to_string(),
            size,
        });
    }
    Ok(())
}

#[derive(Deserialize)]
struct XcomLine {
    key: String,
    value: Value,
}

/// Read the lines of `$UPDRAFT_XCOM_FILE`, in order (a later push of a key replaces an
/// earlier one when stored). A missing file means no pushes.
pub(crate) async fn read_xcom_file(path: &Path) -> Result<Vec<(String, Value)>, XcomError> {
    let io_error = |source| XcomError::Io {
        path: path.display().to_string(),
        source,
    };
    let size = match tokio::fs::metadata(path).await {
        Ok(meta) => meta.len(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io_error(err)),
    };
    if size > MAX_XCOM_FILE_BYTES {
        return Err(XcomError::FileTooLarge { size });
    }
    let bytes = tokio::fs::read(path).await.map_err(io_error)?;
    parse_xcom_lines(&bytes)
}

fn parse_xcom_lines(bytes: &[u8]) -> Result<Vec<(String, Value)>, XcomError> {
    let mut pushed = Vec::new();
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        let parsed: XcomLine = serde_json::from_slice(line).map_err(|err| XcomError::BadLine {
            line: index + 1,
            message: err.to_string(),
        })?;
        check_size(&parsed.key, &parsed.value)?;
        pushed.push((parsed.key, parsed.value));
    }
    Ok(pushed)
}

/// Read the python runner's result file: the callable's return value, or `None` when it
/// returned `None` (the runner then writes no file).
pub(crate) async fn read_result_file(path: &Path) -> Result<Option<Value>, XcomError> {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(XcomError::Io {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|err| XcomError::BadResult(err.to_string()))?;
    if value.is_null() {
        return Ok(None);
    }
    check_size(RETURN_VALUE, &value)?;
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_pushed_lines() {
        let text = b"{\"key\": \"a\", \"value\": 1}\n\n{\"key\": \"b\", \"value\": [1, \"x\"]}\n";
        let pushed = parse_xcom_lines(text).expect("valid lines");
        assert_eq!(
            pushed,
            vec![
                ("a".to_string(), json!(1)),
                ("b".to_string(), json!([1, "x"]))
            ]
        );
    }

    #[test]
    fn rejects_bad_lines_with_their_number() {
        let err =
            parse_xcom_lines(b"{\"key\": \"a\", \"value\": 1}\nnot json\n").expect_err("bad line");
        assert!(
            err.to_string().starts_with("line 2 of $UPDRAFT_XCOM_FILE"),
            "{err}"
        );
    }

    #[test]
    fn rejects_values_over_one_mib() {
        let big = json!("x".repeat(MAX_XCOM_BYTES));
        let err = check_size("big", &big).expect_err("too large");
        assert!(err.to_string().contains("1 MiB"), "{err}");
        assert!(check_size("small", &json!("x".repeat(1000))).is_ok());
    }
}
