//! Reading script replies without trusting them: anything unexpected is a backend error, never a
//! panic.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cowans_core::queue::QueueError;
use redis::{RedisError, Value};

pub(crate) fn bad(message: impl Into<String>) -> QueueError {
    QueueError::Backend {
        backend: "redis",
        message: message.into(),
    }
}

/// Connection trouble is `Unavailable` (the caller may retry); anything else `Backend`.
pub(crate) fn map_err(e: RedisError) -> QueueError {
    if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
    {
        QueueError::Unavailable {
            message: e.to_string(),
        }
    } else {
        bad(e.to_string())
    }
}

pub(crate) fn items(v: &Value) -> Result<&[Value], QueueError> {
    match v {
        Value::Array(a) | Value::Set(a) => Ok(a),
        Value::Nil => Ok(&[]),
        other => Err(bad(format!("expected an array, got {other:?}"))),
    }
}

pub(crate) fn opt_text(v: &Value) -> Result<Option<String>, QueueError> {
    match v {
        Value::Nil => Ok(None),
        Value::BulkString(b) => String::from_utf8(b.clone())
            .map(Some)
            .map_err(|_| bad("a reply is not UTF-8")),
        Value::SimpleString(s) => Ok(Some(s.clone())),
        Value::Int(i) => Ok(Some(i.to_string())),
        Value::Okay => Ok(Some("OK".to_owned())),
        other => Err(bad(format!("expected text, got {other:?}"))),
    }
}

pub(crate) fn text(v: &Value, what: &str) -> Result<String, QueueError> {
    opt_text(v)?.ok_or_else(|| bad(format!("{what} is missing")))
}

pub(crate) fn opt_int(v: &Value, what: &str) -> Result<Option<i64>, QueueError> {
    match v {
        Value::Nil => Ok(None),
        Value::Int(i) => Ok(Some(*i)),
        Value::Double(d) => Ok(Some(*d as i64)),
        _ => {
            let t = text(v, what)?;
            match t.parse::<i64>() {
                Ok(i) => Ok(Some(i)),
                Err(_) => t
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| Some(f as i64))
                    .ok_or_else(|| bad(format!("{what} is not a number: {t:?}"))),
            }
        }
    }
}

pub(crate) fn int(v: &Value, what: &str) -> Result<i64, QueueError> {
    opt_int(v, what)?.ok_or_else(|| bad(format!("{what} is missing")))
}

pub(crate) fn narrow<T: TryFrom<i64>>(v: i64, what: &str) -> Result<T, QueueError> {
    T::try_from(v).map_err(|_| bad(format!("{what} is out of range: {v}")))
}

pub(crate) fn time(ms: i64, what: &str) -> Result<DateTime<Utc>, QueueError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| bad(format!("{what} is out of range: {ms}")))
}

/// The element `i` of a reply array, or an error naming it.
pub(crate) fn at<'a>(a: &'a [Value], i: usize, what: &str) -> Result<&'a Value, QueueError> {
    a.get(i)
        .ok_or_else(|| bad(format!("the reply has no {what}")))
}

pub(crate) fn millis(d: Duration) -> String {
    // Capped at ten years, like the Postgres driver's delays.
    d.as_millis().min(315_360_000_000).to_string()
}
