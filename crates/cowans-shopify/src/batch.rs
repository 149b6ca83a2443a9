//! Aliased batching: many small mutations of one kind in one document (`m0: productUpdate(..)
//! m1: ..`), as many per request as the 1000-point cap allows. It saves round trips, not cost
//! (Shopify adds aliases up), so pacing is unchanged.

use serde_json::{Map, Value, json};

use crate::{
    Client, ShopifyError,
    cost::{self, MAX_QUERY_COST},
};

/// One mutation field to repeat: `field(arg: $vN) { selection }` with `$vN: arg_type`.
#[derive(Debug, Clone)]
pub struct AliasedMutation<'a> {
    pub field: &'a str,
    pub arg: &'a str,
    pub arg_type: &'a str,
    pub selection: &'a str,
}

impl AliasedMutation<'_> {
    fn document(&self, n: usize) -> String {
        let vars: Vec<String> = (0..n)
            .map(|i| format!("$v{i}: {}", self.arg_type))
            .collect();
        let fields: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    "m{i}: {}({}: $v{i}) {{ {} }}",
                    self.field, self.arg, self.selection
                )
            })
            .collect();
        format!("mutation({}) {{ {} }}", vars.join(", "), fields.join(" "))
    }
}

impl Client {
    /// Runs `m` once per input, several per request, and returns each payload in input order
    /// (check each one's `userErrors`). Retried only when `idempotent`.
    pub async fn mutate_aliased(
        &self,
        m: &AliasedMutation<'_>,
        inputs: Vec<Value>,
        idempotent: bool,
    ) -> Result<Vec<Value>, ShopifyError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let one = cost::requested_cost(&m.document(1), &json!({ "v0": inputs[0] }), None)
            .map_err(|e| ShopifyError::Decode(e.to_string()))?
            .max(1.0);
        let per_request = ((MAX_QUERY_COST / one).floor() as usize).clamp(1, 250);
        let mut out = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(per_request) {
            let vars: Map<String, Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("v{i}"), v.clone()))
                .collect();
            let a = self
                .mutate::<Value>(&m.document(chunk.len()), Value::Object(vars), idempotent)
                .await?;
            for i in 0..chunk.len() {
                out.push(a.data.get(format!("m{i}")).cloned().unwrap_or(Value::Null));
            }
        }
        Ok(out)
    }
}
