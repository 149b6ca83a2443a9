//! Shopify's scalars: `Money`, `Decimal`, `DateTime`, `HTML`, `URL`, `UnsignedInt64`.

use super::*;

/// Shopify's `Money` input/output: a decimal string ("100.57"); a number is accepted as input.
#[derive(Debug, Clone, PartialEq)]
pub struct Money(pub String);

fn decimal(value: Value) -> Result<String, String> {
    match value {
        Value::String(s) if s.trim().parse::<f64>().is_ok() => Ok(s.trim().to_owned()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!("{other} is not a decimal amount")),
    }
}

#[Scalar(name = "Money")]
impl ScalarType for Money {
    fn parse(value: Value) -> InputValueResult<Self> {
        decimal(value).map(Money).map_err(InputValueError::custom)
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.clone())
    }
}

/// Shopify's `Decimal`: like `Money`, a decimal string.
#[derive(Debug, Clone, PartialEq)]
pub struct Decimal(pub String);

#[Scalar(name = "Decimal")]
impl ScalarType for Decimal {
    fn parse(value: Value) -> InputValueResult<Self> {
        decimal(value).map(Decimal).map_err(InputValueError::custom)
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.clone())
    }
}

/// `DateTime`: an ISO 8601 timestamp in UTC, to the second (`2026-01-02T03:04:05Z`).
#[derive(Debug, Clone, PartialEq)]
pub struct DateTime(pub String);

impl DateTime {
    pub(crate) fn of(d: chrono::DateTime<chrono::Utc>) -> Self {
        DateTime(d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }
}

#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match value {
            Value::String(s) if chrono::DateTime::parse_from_rfc3339(&s).is_ok() => Ok(DateTime(s)),
            other => Err(InputValueError::custom(format!(
                "{other} is not an ISO 8601 date and time"
            ))),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.clone())
    }
}

/// `HTML`: a string of HTML.
#[derive(Debug, Clone, PartialEq)]
pub struct Html(pub String);

#[Scalar(name = "HTML")]
impl ScalarType for Html {
    fn parse(value: Value) -> InputValueResult<Self> {
        match value {
            Value::String(s) => Ok(Html(s)),
            other => Err(InputValueError::custom(format!("{other} is not a string"))),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.clone())
    }
}

/// `URL`: an RFC 3986 URL string.
#[derive(Debug, Clone, PartialEq)]
pub struct Url(pub String);

#[Scalar(name = "URL")]
impl ScalarType for Url {
    fn parse(value: Value) -> InputValueResult<Self> {
        match value {
            Value::String(s) => Ok(Url(s)),
            other => Err(InputValueError::custom(format!("{other} is not a URL"))),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.clone())
    }
}

/// `UnsignedInt64`: serialized as a string (64-bit numbers do not survive JSON as numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsignedInt64(pub u64);

#[Scalar(name = "UnsignedInt64")]
impl ScalarType for UnsignedInt64 {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => s
                .parse()
                .map(UnsignedInt64)
                .map_err(|_| InputValueError::custom(format!("{value} is not an UnsignedInt64"))),
            Value::Number(n) => n
                .as_u64()
                .map(UnsignedInt64)
                .ok_or_else(|| InputValueError::custom(format!("{value} is not an UnsignedInt64"))),
            _ => Err(InputValueError::custom(format!(
                "{value} is not an UnsignedInt64"
            ))),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}
