//! Query cost as Shopify's calculator estimates it: scalars and enums 0, objects 1, a
//! connection 2 plus `first`/`last` times the cost of one node, a mutation 10 (productSet:
//! 10 + 0.2 per variant), aliases additive. The client uses it to never send a query over the
//! single-query maximum and to pace itself before the first response; the simulator uses it to
//! charge requests (and, given the response, to compute the actual cost).

use async_graphql_parser::{
    parse_query,
    types::{DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet},
};
use async_graphql_value::{ConstValue, Name, Value};
use serde_json::Value as Json;

/// The most one query may request.
pub const MAX_QUERY_COST: f64 = 1000.0;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CostError {
    #[error("query does not parse: {0}")]
    Parse(String),
    #[error("operation {0:?} is not in the document")]
    NoOperation(Option<String>),
}

/// Requested cost of `query` with `variables` (operation `name`, or the only one).
pub fn requested_cost(query: &str, variables: &Json, name: Option<&str>) -> Result<f64, CostError> {
    cost(query, variables, name, None)
}

/// Actual cost: like the requested cost, with each connection charged for the nodes `data`
/// really holds instead of `first`.
pub fn actual_cost(
    query: &str,
    variables: &Json,
    name: Option<&str>,
    data: &Json,
) -> Result<f64, CostError> {
    cost(query, variables, name, Some(data))
}

/// Whether the operation is a mutation (never retried blindly by the client).
pub fn is_mutation(query: &str, name: Option<&str>) -> Result<bool, CostError> {
    let doc = parse_query(query).map_err(|e| CostError::Parse(e.to_string()))?;
    let op = operation(&doc, name)?;
    Ok(op.ty == OperationType::Mutation)
}

fn operation<'d>(
    doc: &'d ExecutableDocument,
    name: Option<&str>,
) -> Result<&'d async_graphql_parser::types::OperationDefinition, CostError> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Ok(&op.node),
        (DocumentOperations::Multiple(ops), Some(n)) => ops
            .get(&Name::new(n))
            .map(|o| &o.node)
            .ok_or_else(|| CostError::NoOperation(Some(n.to_owned()))),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            Ok(&ops.values().next().expect("one operation").node)
        }
        (DocumentOperations::Multiple(_), None) => Err(CostError::NoOperation(None)),
    }
}

fn cost(
    query: &str,
    vars: &Json,
    name: Option<&str>,
    data: Option<&Json>,
) -> Result<f64, CostError> {
    let doc = parse_query(query).map_err(|e| CostError::Parse(e.to_string()))?;
    let op = operation(&doc, name)?;
    let walker = Walker { doc: &doc, vars };
    Ok(match op.ty {
        OperationType::Mutation => walker.mutation(&op.selection_set.node, data),
        _ => walker.selection(&op.selection_set.node, data),
    })
}

struct Walker<'a> {
    doc: &'a ExecutableDocument,
    vars: &'a Json,
}

impl Walker<'_> {
    /// Fields of a selection set, with fragments flattened.
    fn fields<'s>(
        &'s self,
        set: &'s SelectionSet,
        out: &mut Vec<&'s async_graphql_parser::types::Field>,
    ) {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => out.push(&f.node),
                Selection::InlineFragment(f) => self.fields(&f.node.selection_set.node, out),
                Selection::FragmentSpread(s) => {
                    if let Some(frag) = self.doc.fragments.get(&s.node.fragment_name.node) {
                        self.fields(&frag.node.selection_set.node, out);
                    }
                }
            }
        }
    }

    fn mutation(&self, set: &SelectionSet, _data: Option<&Json>) -> f64 {
        let mut fields = Vec::new();
        self.fields(set, &mut fields);
        fields
            .iter()
            .map(|f| match f.name.node.as_str() {
                "productSet" => 10.0 + 0.2 * self.list_len(f, &["input", "variants"]) as f64,
                "__typename" => 0.0,
                _ => 10.0,
            })
            .sum()
    }

    fn selection(&self, set: &SelectionSet, data: Option<&Json>) -> f64 {
        let mut fields = Vec::new();
        self.fields(set, &mut fields);
        fields
            .iter()
            .map(|f| {
                let key = f.alias.as_ref().unwrap_or(&f.name).node.as_str();
                self.field(f, data.and_then(|d| d.get(key)))
            })
            .sum()
    }

    fn field(&self, f: &async_graphql_parser::types::Field, data: Option<&Json>) -> f64 {
        let children = &f.selection_set.node;
        if children.items.is_empty() {
            return 0.0; // scalar or enum
        }
        if data.is_some_and(Json::is_null) {
            return 1.0;
        }
        let size = self.arg(f, "first").or_else(|| self.arg(f, "last"));
        match size {
            Some(first) => {
                // A connection: 2 + n × one node (its `nodes` / `edges { node }` selection).
                let mut fields = Vec::new();
                self.fields(children, &mut fields);
                let mut per_node = 0.0;
                let mut counted = None;
                for c in fields {
                    let key = c.alias.as_ref().unwrap_or(&c.name).node.as_str();
                    let items = data.and_then(|d| d.get(key)).and_then(Json::as_array);
                    match c.name.node.as_str() {
                        "nodes" => match items {
                            Some(list) => {
                                counted = Some(list.len());
                                per_node += list
                                    .iter()
                                    .map(|n| self.object(&c.selection_set.node, Some(n)))
                                    .sum::<f64>()
                                    / (list.len().max(1) as f64);
                            }
                            None => per_node += self.object(&c.selection_set.node, None),
                        },
                        "edges" => {
                            let mut inner = Vec::new();
                            self.fields(&c.selection_set.node, &mut inner);
                            for e in inner.into_iter().filter(|e| e.name.node == "node") {
                                match items {
                                    Some(list) => {
                                        counted = Some(list.len());
                                        per_node += list
                                            .iter()
                                            .map(|n| {
                                                self.object(&e.selection_set.node, n.get("node"))
                                            })
                                            .sum::<f64>()
                                            / (list.len().max(1) as f64);
                                    }
                                    None => per_node += self.object(&e.selection_set.node, None),
                                }
                            }
                        }
                        _ => {}
                    }
                }
                let n = counted.map_or(first, |c| c as f64);
                2.0 + n * per_node
            }
            None => self.object(children, data),
        }
    }

    fn object(&self, set: &SelectionSet, data: Option<&Json>) -> f64 {
        1.0 + self.selection(set, data)
    }

    fn arg(&self, f: &async_graphql_parser::types::Field, name: &str) -> Option<f64> {
        let (_, v) = f.arguments.iter().find(|(n, _)| n.node == name)?;
        self.number(&v.node)
    }

    fn number(&self, v: &Value) -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            Value::Variable(name) => self.vars.get(name.as_str())?.as_f64(),
            _ => None,
        }
    }

    /// Length of the list at `path` in a field's arguments (literal or variables).
    fn list_len(&self, f: &async_graphql_parser::types::Field, path: &[&str]) -> usize {
        let Some((_, v)) = f.arguments.iter().find(|(n, _)| n.node == path[0]) else {
            return 0;
        };
        let json = match v.node.clone().into_const_with(|name| {
            Ok::<_, ()>(
                ConstValue::from_json(self.vars.get(name.as_str()).cloned().unwrap_or(Json::Null))
                    .unwrap_or(ConstValue::Null),
            )
        }) {
            Ok(c) => c.into_json().unwrap_or(Json::Null),
            Err(()) => Json::Null,
        };
        path[1..]
            .iter()
            .try_fold(&json, |j, k| j.get(k))
            .and_then(Json::as_array)
            .map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn connections_scale_with_first_and_nest() {
        let q = "{ products(first: 10) { nodes { id title variants(first: 5) { nodes { id sku } } } pageInfo { hasNextPage } } }";
        // per product: 1 + variants (2 + 5 × 1) = 8; products: 2 + 10 × 8 = 82
        assert_eq!(requested_cost(q, &json!({}), None).unwrap(), 82.0);
        let q = "query($n: Int) { products(first: $n) { edges { node { id } cursor } } }";
        assert_eq!(requested_cost(q, &json!({"n": 250}), None).unwrap(), 252.0);
    }

    #[test]
    fn aliases_add_up_and_mutations_cost_ten() {
        let q = "mutation { a: productUpdate(product: {id: \"1\"}) { userErrors { message } } b: productUpdate(product: {id: \"2\"}) { userErrors { message } } }";
        assert_eq!(requested_cost(q, &json!({}), None).unwrap(), 20.0);
        let q = "mutation($i: ProductSetInput!) { productSet(input: $i) { product { id } } }";
        let vars = json!({"i": {"variants": [{}, {}, {}, {}, {}]}});
        assert_eq!(requested_cost(q, &vars, None).unwrap(), 11.0);
        assert!(is_mutation(q, None).unwrap());
    }

    #[test]
    fn actual_cost_counts_the_nodes_returned() {
        let q = "{ products(first: 10) { nodes { id } } }";
        let data = json!({"products": {"nodes": [{"id": "a"}, {"id": "b"}]}});
        assert_eq!(actual_cost(q, &json!({}), None, &data).unwrap(), 4.0);
        assert_eq!(requested_cost(q, &json!({}), None).unwrap(), 12.0);
    }

    #[test]
    fn fragments_count_like_inline_fields() {
        let q = "query { product(id: \"x\") { ...F } } fragment F on Product { id variants(first: 3) { nodes { id } } }";
        assert_eq!(
            requested_cost(q, &json!({}), None).unwrap(),
            1.0 + 2.0 + 3.0
        );
        assert!(matches!(
            requested_cost("{ nope", &json!({}), None),
            Err(CostError::Parse(_))
        ));
    }
}
