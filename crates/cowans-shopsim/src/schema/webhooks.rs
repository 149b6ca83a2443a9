//! Webhook subscriptions: `webhookSubscriptionCreate(topic:, webhookSubscription: {uri ...})`,
//! `webhookSubscriptionDelete`, and the `webhookSubscription(s)` queries.

use super::*;

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum WebhookSubscriptionTopic {
    /// Accepted for subscriptions; the simulator never uninstalls the app.
    AppUninstalled,
    BulkOperationsFinish,
    ProductsCreate,
    ProductsDelete,
    ProductsUpdate,
}

impl WebhookSubscriptionTopic {
    pub(crate) fn name(self) -> &'static str {
        match self {
            WebhookSubscriptionTopic::ProductsCreate => "products/create",
            WebhookSubscriptionTopic::ProductsUpdate => "products/update",
            WebhookSubscriptionTopic::ProductsDelete => "products/delete",
            WebhookSubscriptionTopic::BulkOperationsFinish => "bulk_operations/finish",
            WebhookSubscriptionTopic::AppUninstalled => "app/uninstalled",
        }
    }

    pub(crate) fn of(topic: &str) -> Option<Self> {
        [
            Self::ProductsCreate,
            Self::ProductsUpdate,
            Self::ProductsDelete,
            Self::BulkOperationsFinish,
            Self::AppUninstalled,
        ]
        .into_iter()
        .find(|t| t.name() == topic)
    }
}

/// `WebhookSubscriptionFormat`.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum WebhookSubscriptionFormat {
    Json,
    Xml,
}

/// `WebhookSubscriptionSortKeys`.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum WebhookSubscriptionSortKeys {
    CreatedAt,
    Id,
}

/// `WebhookSubscriptionInput` (2025-10 on: `uri` replaces the deprecated `callbackUrl`).
#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct WebhookSubscriptionInput {
    /// An HTTPS URL (the simulator also takes plain HTTP, for tests), a Pub/Sub URI or an
    /// EventBridge ARN (those two are not simulated).
    pub(crate) uri: Option<String>,
    #[graphql(deprecation = "Use `uri` instead.")]
    pub(crate) callback_url: Option<String>,
    pub(crate) format: Option<WebhookSubscriptionFormat>,
    pub(crate) include_fields: Option<Vec<String>>,
    pub(crate) filter: Option<String>,
    pub(crate) metafield_namespaces: Option<Vec<String>>,
    pub(crate) name: Option<String>,
}

/// `ApiVersion`.
#[derive(SimpleObject, Clone)]
#[graphql(name = "ApiVersion", rename_fields = "camelCase")]
pub struct ApiVersionObj {
    pub(crate) handle: String,
    pub(crate) display_name: String,
    pub(crate) supported: bool,
}

impl ApiVersionObj {
    pub(crate) fn of(handle: &str) -> Self {
        let supported = crate::server::SUPPORTED_VERSIONS.contains(&handle);
        ApiVersionObj {
            handle: handle.to_owned(),
            display_name: if supported {
                handle.to_owned()
            } else {
                format!("{handle} (Release Candidate)")
            },
            supported,
        }
    }
}

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct WebhookSubscription {
    pub(crate) id: ID,
    pub(crate) legacy_resource_id: UnsignedInt64,
    pub(crate) topic: WebhookSubscriptionTopic,
    pub(crate) uri: String,
    #[graphql(deprecation = "Use `uri` instead.")]
    pub(crate) callback_url: String,
    pub(crate) format: WebhookSubscriptionFormat,
    pub(crate) include_fields: Vec<String>,
    pub(crate) filter: Option<String>,
    pub(crate) metafield_namespaces: Vec<String>,
    pub(crate) name: Option<String>,
    pub(crate) api_version: ApiVersionObj,
    pub(crate) created_at: DateTime,
    pub(crate) updated_at: DateTime,
}

impl WebhookSubscription {
    pub(crate) fn of(s: &crate::webhooks::Subscription) -> Self {
        WebhookSubscription {
            id: gid("WebhookSubscription", s.id),
            legacy_resource_id: UnsignedInt64(s.id),
            topic: WebhookSubscriptionTopic::of(&s.topic)
                .unwrap_or(WebhookSubscriptionTopic::ProductsUpdate),
            uri: s.uri.clone(),
            callback_url: s.uri.clone(),
            format: WebhookSubscriptionFormat::Json,
            include_fields: s.include_fields.clone(),
            filter: s.filter.clone(),
            metafield_namespaces: s.metafield_namespaces.clone(),
            name: s.name.clone(),
            api_version: ApiVersionObj::of(&s.api_version),
            created_at: DateTime::of(s.created_at),
            updated_at: DateTime::of(s.created_at),
        }
    }
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct WebhookSubscriptionCreatePayload {
    pub(crate) webhook_subscription: Option<WebhookSubscription>,
    pub(crate) user_errors: Vec<UserError>,
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct WebhookSubscriptionDeletePayload {
    pub(crate) deleted_webhook_subscription_id: Option<ID>,
    pub(crate) user_errors: Vec<UserError>,
}

#[derive(SimpleObject, Clone)]
pub struct WebhookSubscriptionEdge {
    pub(crate) cursor: String,
    pub(crate) node: WebhookSubscription,
}

#[derive(SimpleObject, Clone)]
#[graphql(rename_fields = "camelCase")]
pub struct WebhookSubscriptionConnection {
    pub(crate) nodes: Vec<WebhookSubscription>,
    pub(crate) edges: Vec<WebhookSubscriptionEdge>,
    pub(crate) page_info: PageInfo,
}

#[derive(Default)]
pub struct WebhookMutations;

#[Object]
impl WebhookMutations {
    async fn webhook_subscription_create(
        &self,
        ctx: &Context<'_>,
        topic: WebhookSubscriptionTopic,
        webhook_subscription: WebhookSubscriptionInput,
    ) -> Result<WebhookSubscriptionCreatePayload> {
        let fail = |e| WebhookSubscriptionCreatePayload {
            webhook_subscription: None,
            user_errors: vec![e],
        };
        let input = webhook_subscription;
        let (field, uri) = match (&input.uri, &input.callback_url) {
            (Some(u), _) => ("uri", u.clone()),
            (None, Some(u)) => ("callbackUrl", u.clone()),
            (None, None) => {
                return Ok(fail(user_error(
                    &["webhookSubscription", "uri"],
                    "Address can't be blank",
                )));
            }
        };
        if uri.starts_with("pubsub://") || uri.starts_with("arn:aws:events:") {
            return Ok(fail(user_error(
                &["webhookSubscription", field],
                "The simulator delivers to HTTPS (or HTTP) addresses only",
            )));
        }
        if !(uri.starts_with("http://") || uri.starts_with("https://")) {
            return Ok(fail(user_error(
                &["webhookSubscription", field],
                "Address is invalid",
            )));
        }
        if input.format == Some(WebhookSubscriptionFormat::Xml) {
            return Ok(fail(user_error(
                &["webhookSubscription", "format"],
                "The simulator delivers JSON only",
            )));
        }
        let shop = ctx.data::<Shop>()?;
        let mut s = shop.lock();
        if s.subscriptions
            .iter()
            .any(|x| x.topic == topic.name() && x.uri == uri)
        {
            return Ok(fail(user_error(
                &["address"],
                "Address for this topic has already been taken",
            )));
        }
        let id = s.catalog.next_id();
        let now = s.clock.now();
        let sub = crate::webhooks::Subscription {
            id,
            topic: topic.name().to_owned(),
            uri,
            include_fields: input.include_fields.unwrap_or_default(),
            filter: input.filter.filter(|f| !f.trim().is_empty()),
            metafield_namespaces: input.metafield_namespaces.unwrap_or_default(),
            name: input.name,
            api_version: version(ctx).to_owned(),
            created_at: now,
        };
        let out = WebhookSubscription::of(&sub);
        s.subscriptions.push(sub);
        Ok(WebhookSubscriptionCreatePayload {
            webhook_subscription: Some(out),
            user_errors: vec![],
        })
    }

    async fn webhook_subscription_delete(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<WebhookSubscriptionDeletePayload> {
        let n = parse_gid(&id, "WebhookSubscription")?;
        let shop = ctx.data::<Shop>()?;
        let mut s = shop.lock();
        let before = s.subscriptions.len();
        s.subscriptions.retain(|x| x.id != n);
        Ok(if s.subscriptions.len() < before {
            WebhookSubscriptionDeletePayload {
                deleted_webhook_subscription_id: Some(id),
                user_errors: vec![],
            }
        } else {
            WebhookSubscriptionDeletePayload {
                deleted_webhook_subscription_id: None,
                user_errors: vec![user_error(&["id"], "Webhook subscription does not exist")],
            }
        })
    }
}

#[derive(Default)]
pub struct WebhookQueries;

#[Object]
impl WebhookQueries {
    /// This app's subscriptions, filtered by `topics`, `uri` and `format`, oldest first.
    #[allow(clippy::too_many_arguments)]
    async fn webhook_subscriptions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default_with = "Some(false)")] reverse: Option<bool>,
        #[graphql(default_with = "Some(WebhookSubscriptionSortKeys::CreatedAt)")] sort_key: Option<
            WebhookSubscriptionSortKeys,
        >,
        query: Option<String>,
        format: Option<WebhookSubscriptionFormat>,
        uri: Option<String>,
        topics: Option<Vec<WebhookSubscriptionTopic>>,
    ) -> Result<WebhookSubscriptionConnection> {
        let _ = query;
        let shop = ctx.data::<Shop>()?;
        let s = shop.lock();
        let mut subs: Vec<&crate::webhooks::Subscription> = s
            .subscriptions
            .iter()
            .filter(|x| uri.as_ref().is_none_or(|u| &x.uri == u))
            .filter(|_| format != Some(WebhookSubscriptionFormat::Xml))
            .filter(|x| {
                topics
                    .as_ref()
                    .is_none_or(|t| t.iter().any(|t| t.name() == x.topic))
            })
            .collect();
        let sort_key = sort_key.unwrap_or(WebhookSubscriptionSortKeys::CreatedAt);
        let key = |x: &crate::webhooks::Subscription| match sort_key {
            WebhookSubscriptionSortKeys::CreatedAt => x.created_at.to_rfc3339(),
            WebhookSubscriptionSortKeys::Id => format!("{:020}", x.id),
        };
        subs.sort_by_key(|x| (key(x), x.id));
        let keys: Vec<(String, u64)> = subs.iter().map(|x| (key(x), x.id)).collect();
        let paging = Paging {
            first,
            last,
            after,
            before,
            reverse: reverse.unwrap_or(false),
        };
        let w = paging.window(&keys)?;
        let node = |i: usize| WebhookSubscription::of(subs[paging.index(keys.len(), i)]);
        Ok(WebhookSubscriptionConnection {
            nodes: w.indices.clone().map(node).collect(),
            edges: w
                .indices
                .clone()
                .map(|i| WebhookSubscriptionEdge {
                    cursor: paging.cursor(&keys, i),
                    node: node(i),
                })
                .collect(),
            page_info: w.page_info,
        })
    }

    async fn webhook_subscription(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<Option<WebhookSubscription>> {
        let n = parse_gid(&id, "WebhookSubscription")?;
        let shop = ctx.data::<Shop>()?;
        let s = shop.lock();
        Ok(s.subscriptions
            .iter()
            .find(|x| x.id == n)
            .map(WebhookSubscription::of))
    }
}
