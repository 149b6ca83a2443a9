//! Webhook subscriptions.

use super::*;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum WebhookSubscriptionTopic {
    ProductsCreate,
    ProductsUpdate,
    ProductsDelete,
    BulkOperationsFinish,
}

impl WebhookSubscriptionTopic {
    pub(crate) fn name(self) -> &'static str {
        match self {
            WebhookSubscriptionTopic::ProductsCreate => "products/create",
            WebhookSubscriptionTopic::ProductsUpdate => "products/update",
            WebhookSubscriptionTopic::ProductsDelete => "products/delete",
            WebhookSubscriptionTopic::BulkOperationsFinish => "bulk_operations/finish",
        }
    }
}

#[derive(InputObject)]
#[graphql(rename_fields = "camelCase")]
pub struct WebhookSubscriptionInput {
    pub(crate) callback_url: String,
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct WebhookSubscription {
    pub(crate) id: ID,
    pub(crate) topic: WebhookSubscriptionTopic,
    pub(crate) callback_url: String,
}

#[derive(SimpleObject)]
#[graphql(rename_fields = "camelCase")]
pub struct WebhookSubscriptionCreatePayload {
    pub(crate) webhook_subscription: Option<WebhookSubscription>,
    pub(crate) user_errors: Vec<UserError>,
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
        let url = webhook_subscription.callback_url;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Ok(WebhookSubscriptionCreatePayload {
                webhook_subscription: None,
                user_errors: vec![user_error(
                    &["webhookSubscription", "callbackUrl"],
                    "Address is invalid",
                    "INVALID",
                )],
            });
        }
        let shop = ctx.data::<Shop>()?;
        let mut s = shop.lock();
        if s.subscriptions
            .iter()
            .any(|x| x.topic == topic.name() && x.callback_url == url)
        {
            return Ok(WebhookSubscriptionCreatePayload {
                webhook_subscription: None,
                user_errors: vec![user_error(
                    &["address"],
                    "Address for this topic has already been taken",
                    "TAKEN",
                )],
            });
        }
        let id = s.catalog.next_id();
        s.subscriptions.push(crate::webhooks::Subscription {
            id,
            topic: topic.name().to_owned(),
            callback_url: url.clone(),
        });
        Ok(WebhookSubscriptionCreatePayload {
            webhook_subscription: Some(WebhookSubscription {
                id: gid("WebhookSubscription", id),
                topic,
                callback_url: url,
            }),
            user_errors: vec![],
        })
    }
}
