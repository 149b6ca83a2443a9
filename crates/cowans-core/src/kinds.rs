//! Job kinds registered with their typed payload, so producers (the HTTP API) reject a bad payload
//! at submit time, naming the field, instead of a worker finding out later and dead-lettering it.
//!
//! A kind is registered with the Rust type its handler deserialises; validation is that same
//! deserialisation (so the check and the handler can never disagree), and the JSON Schema shown to
//! clients is generated from the type.

use std::{collections::BTreeMap, fmt};

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a payload was refused: the JSON path inside the payload (`"product.variants[2].sku"`,
/// empty for the payload itself) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// What the registry says about a submitted `(kind, args)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindCheck {
    /// Registered and the payload deserialises.
    Valid,
    /// Not registered, and the registry accepts unknown kinds.
    Unchecked,
    /// Not registered, and the registry refuses unknown kinds.
    Unknown,
    /// Registered, and the payload does not fit its type.
    Invalid(PayloadError),
}

/// Everything a producer needs to know about one job kind: its name, what it does, its
/// default queue and attempts, and its payload type (as a check and a JSON Schema).
#[derive(Clone)]
pub struct KindSpec {
    name: String,
    description: String,
    queue: Option<String>,
    max_attempts: Option<i32>,
    check: fn(&mut Value) -> Result<(), PayloadError>,
    schema: Value,
}

impl KindSpec {
    /// A kind whose payload deserialises into `P`.
    pub fn of<P: DeserializeOwned + JsonSchema>(name: &str, description: &str) -> Self {
        Self {
            name: name.to_owned(),
            description: description.to_owned(),
            queue: None,
            max_attempts: None,
            check: check::<P>,
            schema: serde_json::to_value(schemars::schema_for!(P)).unwrap_or(Value::Null),
        }
    }

    /// The queue a job of this kind goes to when its producer names none.
    pub fn default_queue(mut self, queue: &str) -> Self {
        self.queue = Some(queue.to_owned());
        self
    }

    /// The attempts a job of this kind gets when its producer does not say.
    pub fn default_max_attempts(mut self, attempts: i32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn queue(&self) -> Option<&str> {
        self.queue.as_deref()
    }

    pub fn max_attempts(&self) -> Option<i32> {
        self.max_attempts
    }

    /// Whether `args` fits the payload type. A payload whose schema is an object must be one:
    /// serde would also take a positional array for a struct (`[5]` for `{"ms": 5}`), which the
    /// published schema does not allow. Whole numbers written with a fraction (`5.0`) where the
    /// type has an integer become integers in `args` ([`crate::whole_numbers`]).
    pub fn check(&self, args: &mut Value) -> Result<(), PayloadError> {
        if self.schema.get("type").and_then(Value::as_str) == Some("object") && !args.is_object() {
            return Err(PayloadError {
                path: String::new(),
                message: "must be a JSON object (the kind's payload schema)".to_owned(),
            });
        }
        (self.check)(args)
    }
}

impl fmt::Debug for KindSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindSpec")
            .field("name", &self.name)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// The registered kinds. Empty and open by default: unknown kinds pass unchecked until
/// [`KindRegistry::reject_unknown`] is set.
#[derive(Default)]
pub struct KindRegistry {
    kinds: BTreeMap<String, KindSpec>,
    reject_unknown: bool,
}

impl fmt::Debug for KindRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindRegistry")
            .field("kinds", &self.kinds.keys().collect::<Vec<_>>())
            .field("reject_unknown", &self.reject_unknown)
            .finish()
    }
}

/// One registered kind as clients see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KindInfo<'a> {
    pub kind: &'a str,
    pub description: &'a str,
    /// Where jobs of the kind go when the submit names no queue.
    pub queue: Option<&'a str>,
    /// JSON Schema (draft 2020-12) of the payload.
    pub schema: &'a Value,
}

impl KindInfo<'_> {
    /// Whether the kind can be a batch's callback: its payload takes what a callback job
    /// carries, `{batch_id, counts, args}` (the submit check and the API document both ask here).
    pub fn takes_batch_callback(&self) -> bool {
        let props = &self.schema["properties"];
        props.get("batch_id").is_some() && props.get("counts").is_some()
    }
}

impl KindRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `kind` with payload type `P` (replacing an earlier registration).
    pub fn register<P: DeserializeOwned + JsonSchema>(self, kind: &str, description: &str) -> Self {
        self.insert(KindSpec::of::<P>(kind, description))
    }

    /// Registers a kind (replacing an earlier registration of its name).
    pub fn insert(mut self, spec: KindSpec) -> Self {
        self.kinds.insert(spec.name.clone(), spec);
        self
    }

    /// Whether kinds nobody registered are refused (a job no worker knows would wait forever).
    pub fn reject_unknown(mut self, reject: bool) -> Self {
        self.reject_unknown = reject;
        self
    }

    pub fn rejects_unknown(&self) -> bool {
        self.reject_unknown
    }

    /// What the registry says about `args` for `kind` (repairing whole numbers, see
    /// [`KindSpec::check`]).
    pub fn check(&self, kind: &str, args: &mut Value) -> KindCheck {
        match self.kinds.get(kind) {
            Some(k) => match k.check(args) {
                Ok(()) => KindCheck::Valid,
                Err(e) => KindCheck::Invalid(e),
            },
            None if self.reject_unknown => KindCheck::Unknown,
            None => KindCheck::Unchecked,
        }
    }

    /// The registered kind as clients see it.
    pub fn info(&self, kind: &str) -> Option<KindInfo<'_>> {
        self.kinds.get_key_value(kind).map(|(name, k)| KindInfo {
            kind: name,
            description: &k.description,
            queue: k.queue.as_deref(),
            schema: &k.schema,
        })
    }

    pub fn get(&self, kind: &str) -> Option<&KindSpec> {
        self.kinds.get(kind)
    }

    /// The registered kinds, by name.
    pub fn kinds(&self) -> impl Iterator<Item = KindInfo<'_>> {
        self.kinds.keys().filter_map(|name| self.info(name))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.kinds.keys().map(String::as_str)
    }
}

fn check<P: DeserializeOwned>(args: &mut Value) -> Result<(), PayloadError> {
    crate::whole_numbers::from_value::<P>(args)
        .map(drop)
        .map_err(|e| PayloadError {
            path: if e.path == "." { String::new() } else { e.path },
            message: e.message,
        })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Variant {
        sku: String,
        price: f64,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Push {
        handle: String,
        variants: Vec<Variant>,
    }

    fn registry() -> KindRegistry {
        KindRegistry::new().register::<Push>("catalog.push", "pushes a product")
    }

    #[test]
    fn a_fitting_payload_is_valid() {
        let mut ok = json!({"handle": "h", "variants": [{"sku": "a", "price": 1.5}]});
        assert_eq!(registry().check("catalog.push", &mut ok), KindCheck::Valid);
    }

    #[test]
    fn a_positional_array_is_not_an_object() {
        let KindCheck::Invalid(e) = registry().check("catalog.push", &mut json!(["h", []])) else {
            panic!("serde's positional form was accepted for an object payload");
        };
        assert!(e.message.contains("object"), "{e}");
    }

    #[test]
    fn a_bad_payload_names_the_nested_field() {
        let mut bad =
            json!({"handle": "h", "variants": [{"sku": "a", "price": 1}, {"sku": 7, "price": 2}]});
        let KindCheck::Invalid(e) = registry().check("catalog.push", &mut bad) else {
            panic!("accepted a bad payload");
        };
        assert_eq!(e.path, "variants[1].sku");
        assert!(e.message.contains("invalid type"), "{e}");
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let KindCheck::Invalid(e) = registry().check("catalog.push", &mut json!({"variants": []}))
        else {
            panic!("accepted a payload without handle");
        };
        assert!(e.message.contains("missing field `handle`"), "{e}");
        let mut extra = json!({"handle": "h", "variants": [], "colour": 1});
        let KindCheck::Invalid(e) = registry().check("catalog.push", &mut extra) else {
            panic!("accepted an unknown field");
        };
        assert!(e.message.contains("unknown field `colour`"), "{e}");
    }

    #[test]
    fn unknown_kinds_pass_or_fail_as_configured() {
        assert_eq!(
            registry().check("other", &mut json!({})),
            KindCheck::Unchecked
        );
        assert_eq!(
            registry()
                .reject_unknown(true)
                .check("other", &mut json!({})),
            KindCheck::Unknown
        );
    }

    #[test]
    fn the_schema_describes_the_payload() {
        let r = registry();
        let info = r.kinds().next().expect("one kind");
        assert_eq!(info.schema["properties"]["variants"]["type"], "array");
        assert_eq!(info.schema["required"], json!(["handle", "variants"]));
    }
}
