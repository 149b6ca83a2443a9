//! Starting and reading pulls: a pull's row and its job are created in one transaction.

use cowans_core::{Actor, QueueName};
use cowans_queue::{NewJob, StoreError, StoreResult as Result};
use cowans_store::catalog::{self as store, PullRow};
use serde_json::json;

use crate::{Catalog, QUEUE};

/// Which pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullKind {
    /// Every product, through a bulk query export; products it did not see are marked deleted.
    Full,
    /// Products updated since the newest one seen (with an overlap): a few through paginated
    /// queries, many through a filtered bulk export.
    Incremental,
    /// Every product's id and `updatedAt` compared with Shopify; what differs is read again,
    /// what Shopify no longer has is marked deleted.
    Reconcile,
}

impl PullKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PullKind::Full => "full",
            PullKind::Incremental => "incremental",
            PullKind::Reconcile => "reconcile",
        }
    }

    /// The job kind that runs pulls of this kind.
    pub fn job_kind(self) -> &'static str {
        match self {
            PullKind::Full => crate::PULL_FULL,
            PullKind::Incremental => crate::PULL_INCREMENTAL,
            PullKind::Reconcile => crate::RECONCILE,
        }
    }
}

/// The arguments of a pull job: the shop, and the pull's row when it was started from the API
/// or the command line (a periodic job has none: it starts its own, unless one is running).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PullArgs {
    pub shop_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_id: Option<i64>,
}

impl Catalog {
    /// Starts a pull of `shop_id`'s catalog: the pull's row and its job in one transaction,
    /// audited as `shop.pull`. `Conflict` (details: the running pull) if one of that kind runs.
    pub async fn start_pull(&self, actor: &Actor, shop_id: i64, kind: PullKind) -> Result<PullRow> {
        let shop = self.shop(shop_id).await?;
        if shop.status == "unauthorized" {
            return Err(StoreError::conflict(format!(
                "shop {} is unauthorized ({}); replace its access token first",
                shop.name,
                shop.status_reason
                    .as_deref()
                    .unwrap_or("Shopify refused the token")
            )));
        }
        let front = &self.front();
        let mut tx = self.pool().begin().await?;
        let mut pull = store::start_pull(&mut tx, shop_id, kind.as_str()).await?;
        let args = PullArgs {
            shop_id,
            pull_id: Some(pull.id),
        };
        let queue =
            QueueName::new(QUEUE).map_err(|e| StoreError::invalid("queue", e.to_string()))?;
        let job = NewJob::new(queue, kind.job_kind(), json!(args));
        let enqueued = front.enqueue_in(&mut *tx, &job).await?;
        store::set_pull_job(&mut tx, pull.id, enqueued.id.0).await?;
        pull.job_id = Some(enqueued.id.0);
        let details = json!({ "kind": kind.as_str(), "pull_id": pull.id, "job_id": enqueued.id.0 });
        let recorded = front
            .record(
                &mut tx,
                actor,
                "shop.pull",
                Some(format!("shop:{shop_id}")),
                details,
            )
            .await?;
        recorded.commit(tx).await?;
        Ok(pull)
    }

    pub async fn pull(&self, id: i64) -> Result<PullRow> {
        store::get_pull(self.pool(), id)
            .await?
            .ok_or_else(|| StoreError::not_found(format!("pull {id}")))
    }

    /// A shop's pulls, newest first.
    pub async fn pulls(&self, shop_id: i64, limit: i64) -> Result<Vec<PullRow>> {
        store::list_pulls(self.pool(), shop_id, limit).await
    }
}
