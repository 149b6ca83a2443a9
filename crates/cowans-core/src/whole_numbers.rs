//! Whole numbers written with a fraction (`736.0`) taken as integers. JSON has one number type and
//! JSON Schema counts `736.0` as an integer, but serde refuses it for an integer field; so where
//! serde refuses one, that number is made an integer in place and deserialisation is tried again.
//! Only the numbers serde refused change (a payload's other floats stay as sent).

use serde::de::DeserializeOwned;
use serde_json::{Number, Value};
use serde_path_to_error::{Path, Segment};

/// At most this many numbers are repaired in one document before its error stands.
const MAX_REPAIRS: usize = 64;

/// Why a document did not deserialise: where (`jobs[2].priority`, `.` for the root) and why.
#[derive(Debug)]
pub struct ShapeError {
    pub path: String,
    pub message: String,
}

/// Deserialises `T` from `value`, repairing whole-number floats serde refused.
pub fn from_value<T: DeserializeOwned>(value: &mut Value) -> Result<T, ShapeError> {
    for _ in 0..=MAX_REPAIRS {
        match serde_path_to_error::deserialize::<_, T>(&*value) {
            Ok(t) => return Ok(t),
            Err(e) => {
                let refused_float = e.inner().to_string().contains("floating point");
                if !(refused_float && repair(value, e.path())) {
                    return Err(ShapeError {
                        path: e.path().to_string(),
                        message: e.into_inner().to_string(),
                    });
                }
            }
        }
    }
    Err(ShapeError {
        path: ".".into(),
        message: "too many numbers with a fraction where integers belong".into(),
    })
}

/// Makes the number at `path` an integer if it is a whole float in range; whether it did.
fn repair(value: &mut Value, path: &Path) -> bool {
    let mut at = value;
    for segment in path.iter() {
        let next = match segment {
            Segment::Seq { index } => at.get_mut(*index),
            Segment::Map { key } => at.get_mut(key.as_str()),
            Segment::Enum { .. } | Segment::Unknown => None,
        };
        let Some(next) = next else { return false };
        at = next;
    }
    let Some(f) = at.as_f64().filter(|f| at.is_f64() && f.fract() == 0.0) else {
        return false;
    };
    // Strictly inside i64: an integer literal too large for 64 bits also reaches here as a float
    // (`-9223372036854775809` reads as -2^63), and must stay refused.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if !(f > -TWO_63 && f < TWO_63) {
        return false;
    }
    *at = Value::Number(Number::from(f as i64));
    true
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Job {
        priority: i16,
        price: f64,
        ids: Vec<u64>,
    }

    #[test]
    fn whole_floats_become_integers_where_integers_belong() {
        let mut v = json!({"priority": 3.0, "price": 2.0, "ids": [1, 2.0]});
        let job: Job = from_value(&mut v).unwrap();
        assert_eq!((job.priority, job.ids), (3, vec![1, 2]));
        assert_eq!(v, json!({"priority": 3, "price": 2.0, "ids": [1, 2]}));
        assert!(v["price"].is_f64(), "a float field keeps its float");
    }

    #[test]
    fn fractions_and_out_of_range_numbers_are_still_refused_with_their_path() {
        let e =
            from_value::<Job>(&mut json!({"priority": 3.5, "price": 1, "ids": []})).unwrap_err();
        assert_eq!(e.path, "priority");
        let e =
            from_value::<Job>(&mut json!({"priority": 1e6, "price": 1, "ids": []})).unwrap_err();
        assert_eq!(e.path, "priority", "{}", e.message);
        let e =
            from_value::<Job>(&mut json!({"priority": 1, "price": 1, "ids": [1e300]})).unwrap_err();
        assert_eq!(e.path, "ids[0]");
        let too_large: Value =
            serde_json::from_str(r#"{"priority": 1, "price": 1, "ids": [-9223372036854775809]}"#)
                .unwrap();
        let e = from_value::<Job>(&mut too_large.clone()).unwrap_err();
        assert_eq!(
            e.path, "ids[0]",
            "an integer beyond 64 bits is not rounded into range"
        );
    }
}

#[cfg(test)]
mod postgres_numbers {
    /// Postgres keeps a jsonb number as `numeric` and prints it in full: the largest floats come
    /// back as 309-digit integers, which must read back (an export of such a job failed).
    #[test]
    fn the_largest_floats_read_back_as_postgres_prints_them() {
        let printed = format!("[-17976931348623157{}]", "0".repeat(292));
        let v: Vec<f64> = serde_json::from_str(&printed).unwrap();
        assert_eq!(v, [f64::MIN]);
    }
}
