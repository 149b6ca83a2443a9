//! What Postgres cannot store: a NUL character in `text` or in a `jsonb` string or key. Found
//! before a statement runs, so the caller hears which field, not a failed statement.

use serde_json::Value;

/// Whether any string or key of `value` holds a NUL (cheap: no paths are built).
pub fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// The path of the first string holding a NUL (`args.items[2].name`), or of the object whose key
/// holds one. `path` names `value`; when it is empty, top-level keys are named bare (`kind`) and
/// `""` means the document itself.
pub fn nul_at(value: &Value, path: &str) -> Option<String> {
    if !has_nul(value) {
        return None;
    }
    match value {
        Value::String(_) => Some(path.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_at(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(path.to_owned())
            } else if path.is_empty() {
                nul_at(v, k)
            } else {
                nul_at(v, &format!("{path}.{k}"))
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_nul_is_named_where_it_sits() {
        let v = json!({"queue": "q", "jobs": [{"a": 1}, {"unique_key": "x\u{0}"}]});
        assert_eq!(nul_at(&v, "").as_deref(), Some("jobs[1].unique_key"));
        assert_eq!(
            nul_at(&json!([{"k": "ok"}, {"k": "\u{0}"}]), "jobs").as_deref(),
            Some("jobs[1].k")
        );
        assert_eq!(
            nul_at(&json!({"a": {"b\u{0}": 1}}), "args").as_deref(),
            Some("args.a")
        );
        assert_eq!(nul_at(&json!({"a": ["x", "y"]}), "body"), None);
        assert!(!has_nul(&json!({"a": ["x", 1, null]})));
    }
}
