//! Shopify global ids (`gid://shopify/Product/123`). Numeric ids exceed 2^53, so they are kept
//! as `u64`, never as `f64`.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gid {
    pub kind: String,
    pub id: u64,
}

impl Gid {
    pub fn new(kind: &str, id: u64) -> Self {
        Self {
            kind: kind.to_owned(),
            id,
        }
    }
}

impl fmt::Display for Gid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gid://shopify/{}/{}", self.kind, self.id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a Shopify global id (gid://shopify/<Type>/<number>)")]
pub struct BadGid(pub String);

impl FromStr for Gid {
    type Err = BadGid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix("gid://shopify/")
            .ok_or_else(|| BadGid(s.to_owned()))?;
        let (kind, id) = rest.split_once('/').ok_or_else(|| BadGid(s.to_owned()))?;
        // Some ids carry a query (`?...`); the number is what identifies the object.
        let id = id.split('?').next().unwrap_or(id);
        let id = id.parse().map_err(|_| BadGid(s.to_owned()))?;
        if kind.is_empty() {
            return Err(BadGid(s.to_owned()));
        }
        Ok(Self {
            kind: kind.to_owned(),
            id,
        })
    }
}

impl Serialize for Gid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Gid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_above_two_to_the_53_survive_exactly() {
        let g: Gid = "gid://shopify/Product/9007199254740993".parse().unwrap();
        assert_eq!(g.id, 9_007_199_254_740_993);
        assert_eq!(g.to_string(), "gid://shopify/Product/9007199254740993");
        assert!("gid://shopify/Product/abc".parse::<Gid>().is_err());
        assert!("123".parse::<Gid>().is_err());
    }
}
