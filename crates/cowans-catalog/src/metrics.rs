//! The catalog's sync work as Prometheus series, labelled by `shop` (the shop's domain, as the
//! Shopify client's series are) and, for pulls, `kind` (`full`, `incremental`, `reconcile`).

use metrics::{counter, gauge};

/// Products and variants a pull wrote to the catalog.
pub const PRODUCTS_PULLED: &str = "cowans_sync_products_pulled_total";
pub const VARIANTS_PULLED: &str = "cowans_sync_variants_pulled_total";
/// Pulls running in this process.
pub const PULLS_RUNNING: &str = "cowans_sync_pulls_running";
/// Pulls that ended, by `state` (`completed`, `failed`).
pub const PULLS_FINISHED: &str = "cowans_sync_pulls_finished_total";
/// Approved changes a push took, by `outcome`: `pushed` (Shopify has the proposed values),
/// `conflict` (back to review), `failed` (Shopify refused them).
pub const CHANGES_PUSHED: &str = "cowans_sync_changes_pushed_total";

/// The outcomes of [`CHANGES_PUSHED`].
pub const PUSH_OUTCOMES: [&str; 3] = ["pushed", "conflict", "failed"];

/// Registers descriptions so `/metrics` explains each series.
pub fn describe() {
    metrics::describe_counter!(
        PRODUCTS_PULLED,
        "Products pulls wrote to the catalog, by shop and pull kind"
    );
    metrics::describe_counter!(
        VARIANTS_PULLED,
        "Variants pulls wrote to the catalog, by shop and pull kind"
    );
    metrics::describe_gauge!(
        PULLS_RUNNING,
        "Pulls running in this process, by shop and kind"
    );
    metrics::describe_counter!(PULLS_FINISHED, "Pulls that ended, by shop, kind and state");
    metrics::describe_counter!(
        CHANGES_PUSHED,
        "Approved changes pushes took, by shop and outcome (pushed, conflict, failed)"
    );
}

/// A running pull: counted in [`PULLS_RUNNING`] until dropped.
pub(crate) struct RunningPull {
    shop: String,
    kind: String,
}

impl RunningPull {
    pub(crate) fn start(shop: &str, kind: &str) -> Self {
        gauge!(PULLS_RUNNING, "shop" => shop.to_owned(), "kind" => kind.to_owned()).increment(1.0);
        // The finished series exist from the first pull on, so `increase()` sees the first end.
        for state in ["completed", "failed"] {
            counter!(PULLS_FINISHED, "shop" => shop.to_owned(), "kind" => kind.to_owned(), "state" => state)
                .increment(0);
        }
        Self {
            shop: shop.to_owned(),
            kind: kind.to_owned(),
        }
    }

    /// The pull wrote `products` and `variants` more rows.
    pub(crate) fn wrote(&self, products: u64, variants: u64) {
        counter!(PRODUCTS_PULLED, "shop" => self.shop.clone(), "kind" => self.kind.clone())
            .increment(products);
        counter!(VARIANTS_PULLED, "shop" => self.shop.clone(), "kind" => self.kind.clone())
            .increment(variants);
    }

    pub(crate) fn finished(&self, state: &'static str) {
        counter!(PULLS_FINISHED, "shop" => self.shop.clone(), "kind" => self.kind.clone(), "state" => state)
            .increment(1);
    }
}

impl Drop for RunningPull {
    fn drop(&mut self) {
        gauge!(PULLS_RUNNING, "shop" => self.shop.clone(), "kind" => self.kind.clone())
            .decrement(1.0);
    }
}

/// A push batch's outcomes, once recorded.
pub(crate) fn pushed(shop: &str, pushed: i64, conflicts: i64, failed: i64) {
    for (outcome, n) in PUSH_OUTCOMES.into_iter().zip([pushed, conflicts, failed]) {
        counter!(CHANGES_PUSHED, "shop" => shop.to_owned(), "outcome" => outcome)
            .increment(n.max(0) as u64);
    }
}
