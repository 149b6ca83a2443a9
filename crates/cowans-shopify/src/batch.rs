//! Aliased batching: many small mutations of one kind in one document (`m0: productUpdate(..)
//! m1: ..`), as many per request as the 1000-point cap allows. It saves round trips, not cost
//! (Shopify adds aliases up), so pacing is unchanged.

use serde_json::{Map, Value};

use crate::{
    Client, ShopifyError,
    cost::{self, MAX_QUERY_COST},
};

/// One mutation field to repeat: `mN: field(a: $vN_a, b: $vN_b) { selection }` for its
/// arguments `args` (name, GraphQL type).
#[derive(Debug, Clone)]
pub struct AliasedMutation<'a> {
    pub field: &'a str,
    pub args: &'a [(&'a str, &'a str)],
    pub selection: &'a str,
}

impl AliasedMutation<'_> {
    fn document(&self, n: usize) -> String {
        let vars: Vec<String> = (0..n)
            .flat_map(|i| {
                self.args
                    .iter()
                    .map(move |(a, t)| format!("$v{i}_{a}: {t}"))
            })
            .collect();
        let fields: Vec<String> = (0..n)
            .map(|i| {
                let args: Vec<String> = self
                    .args
                    .iter()
                    .map(|(a, _)| format!("{a}: $v{i}_{a}"))
                    .collect();
                format!(
                    "m{i}: {}({}) {{ {} }}",
                    self.field,
                    args.join(", "),
                    self.selection
                )
            })
            .collect();
        format!("mutation({}) {{ {} }}", vars.join(", "), fields.join(" "))
    }

    /// The mutation once, its variables named as its arguments (`mutation($a: T) { field(a: $a)
    /// { selection } }`): the document of a bulk mutation, whose variables lines are the inputs
    /// [`Client::mutate_aliased`] takes.
    pub fn single(&self) -> String {
        let vars: Vec<String> = self
            .args
            .iter()
            .map(|(a, t)| format!("${a}: {t}"))
            .collect();
        let args: Vec<String> = self
            .args
            .iter()
            .map(|(a, _)| format!("{a}: ${a}"))
            .collect();
        format!(
            "mutation({}) {{ {}({}) {{ {} }} }}",
            vars.join(", "),
            self.field,
            args.join(", "),
            self.selection
        )
    }

    /// The variables of `inputs` (each an object of this mutation's arguments).
    fn variables<'v>(&self, inputs: impl Iterator<Item = &'v Value>) -> Map<String, Value> {
        let mut vars = Map::new();
        for (i, input) in inputs.enumerate() {
            for (a, _) in self.args {
                vars.insert(
                    format!("v{i}_{a}"),
                    input.get(*a).cloned().unwrap_or(Value::Null),
                );
            }
        }
        vars
    }
}

impl Client {
    /// Runs `m` once per input (an object of its arguments), as many per request as the cost
    /// cap allows (at most `max_per_request` when given), and returns each payload in input
    /// order (check each one's `userErrors`). Retried only when `idempotent`.
    pub async fn mutate_aliased(
        &self,
        m: &AliasedMutation<'_>,
        inputs: Vec<Value>,
        idempotent: bool,
        max_per_request: Option<usize>,
    ) -> Result<Vec<Value>, ShopifyError> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let one = cost::requested_cost(
            &m.document(1),
            &Value::Object(m.variables(inputs.iter().take(1))),
            None,
        )
        .map_err(|e| ShopifyError::Decode(e.to_string()))?
        .max(1.0);
        let per_request = ((MAX_QUERY_COST / one).floor() as usize)
            .clamp(1, 250)
            .min(max_per_request.unwrap_or(usize::MAX).max(1));
        let mut out = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(per_request) {
            let vars = m.variables(chunk.iter());
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
