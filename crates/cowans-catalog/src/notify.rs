//! Notifications: email (SMTP) and signed outgoing webhooks when a push or a bulk edit finishes
//! (conflicts and failures named in the subject). Each recipient's message is a
//! `catalog.notify` job enqueued with the event, so a failure to notify is retried by the engine
//! and, in the end, a dead letter — never lost.
//!
//! Outgoing webhooks are `POST`s of JSON signed like Shopify's: `X-Cowans-Hmac-Sha256` is the
//! base64 HMAC-SHA256 of the body with `catalog.notify.webhook_secret`.

use std::collections::BTreeMap;

use apalis_core::error::BoxDynError;
use cowans_core::{JobError, QueueName};
use cowans_queue::{NewJob, StoreError, StoreResult as Result};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::Catalog;

/// The job kind that sends one notification.
pub const NOTIFY: &str = "catalog.notify";

/// Who hears about a shop's pushes and bulk edits, and how (`[catalog.notify]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifySettings {
    /// The SMTP server mail goes through.
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    /// TLS to it: `starttls` (required; port 587), `tls` (implicit; port 465), `opportunistic`
    /// (STARTTLS when the server offers it: a relay on the host), `none`. Credentials need
    /// `starttls` or `tls`.
    pub smtp_tls: SmtpTls,
    pub smtp_from: String,
    pub smtp_username: Option<String>,
    #[serde(skip_serializing)]
    pub smtp_password: Option<SecretString>,
    /// Signs outgoing webhooks (`X-Cowans-Hmac-Sha256`).
    #[serde(skip_serializing)]
    pub webhook_secret: Option<SecretString>,
    /// Told about every shop.
    pub emails: Vec<String>,
    pub webhooks: Vec<String>,
    /// Told about one shop (by its name), besides the above.
    pub shops: BTreeMap<String, Recipients>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            smtp_host: None,
            smtp_port: 25,
            smtp_tls: SmtpTls::Opportunistic,
            smtp_from: "cowans@localhost".to_owned(),
            smtp_username: None,
            smtp_password: None,
            webhook_secret: None,
            emails: Vec::new(),
            webhooks: Vec::new(),
            shops: BTreeMap::new(),
        }
    }
}

/// TLS to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    Opportunistic,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Recipients {
    pub emails: Vec<String>,
    pub webhooks: Vec<String>,
}

impl NotifySettings {
    /// Refuses recipients that cannot be reached: bad addresses or URLs, mail without a server.
    pub fn check(&self) -> std::result::Result<(), String> {
        let global = Recipients {
            emails: self.emails.clone(),
            webhooks: self.webhooks.clone(),
        };
        let all = std::iter::once(("catalog.notify".to_owned(), &global)).chain(
            self.shops
                .iter()
                .map(|(name, r)| (format!("catalog.notify.shops.{name}"), r)),
        );
        for (name, r) in all {
            for e in &r.emails {
                e.parse::<lettre::message::Mailbox>().map_err(|err| {
                    format!("{name}.emails: {e:?} is not an email address ({err})")
                })?;
                if self.smtp_host.is_none() {
                    return Err(format!(
                        "{name}.emails needs catalog.notify.smtp_host (the SMTP server to send through)"
                    ));
                }
            }
            for w in &r.webhooks {
                if !(w.starts_with("https://") || w.starts_with("http://")) {
                    return Err(format!("{name}.webhooks: {w:?} is not an http(s) URL"));
                }
            }
        }
        self.smtp_from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| format!("catalog.notify.smtp_from: {e}"))?;
        if self.smtp_username.is_some()
            && matches!(self.smtp_tls, SmtpTls::None | SmtpTls::Opportunistic)
        {
            return Err("catalog.notify.smtp_username: credentials are only sent over TLS;                         set catalog.notify.smtp_tls to starttls or tls"
                .into());
        }
        Ok(())
    }

    fn recipients(&self, shop: &str) -> (Vec<String>, Vec<String>) {
        let mut emails = self.emails.clone();
        let mut webhooks = self.webhooks.clone();
        if let Some(r) = self.shops.get(shop) {
            emails.extend(r.emails.iter().cloned());
            webhooks.extend(r.webhooks.iter().cloned());
        }
        (emails, webhooks)
    }
}

/// Something to tell a shop's recipients.
#[derive(Debug, Clone)]
pub struct Notice {
    /// `push.finished`, `bulk_edit.finished`.
    pub topic: &'static str,
    pub subject: String,
    pub text: String,
    pub data: Value,
}

/// One message to one recipient.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyArgs {
    /// `email` or `webhook`.
    pub channel: String,
    pub to: String,
    pub topic: String,
    pub shop: String,
    pub subject: String,
    pub text: String,
    #[serde(default)]
    pub data: Value,
}

impl Catalog {
    /// Enqueues `notice` for every recipient of shop `shop` in `conn`'s transaction; returns how
    /// many messages.
    pub(crate) async fn notify(
        &self,
        conn: &mut PgConnection,
        shop: &str,
        notice: &Notice,
    ) -> Result<usize> {
        let (emails, webhooks) = self.settings().notify.recipients(shop);
        let queue = QueueName::new(crate::QUEUE)
            .map_err(|e| StoreError::invalid("queue", e.to_string()))?;
        let jobs: Vec<NewJob> = emails
            .into_iter()
            .map(|to| ("email", to))
            .chain(webhooks.into_iter().map(|to| ("webhook", to)))
            .map(|(channel, to)| {
                NewJob::new(
                    queue.clone(),
                    NOTIFY,
                    json!(NotifyArgs {
                        channel: channel.to_owned(),
                        to,
                        topic: notice.topic.to_owned(),
                        shop: shop.to_owned(),
                        subject: notice.subject.clone(),
                        text: notice.text.clone(),
                        data: notice.data.clone(),
                    }),
                )
            })
            .collect();
        for job in &jobs {
            self.front().enqueue_in(&mut *conn, job).await?;
        }
        Ok(jobs.len())
    }
}

/// The job kind that counts dead letters per queue and notifies a rise.
pub const WATCH_DEAD: &str = "catalog.watch_dead";

impl Catalog {
    /// Installs (or, with an empty `catalog.dead_watch_schedule`, removes) the periodic count
    /// of dead letters; run at start-up by every process of the catalog.
    pub async fn install_dead_watch(&self) -> Result<()> {
        let schedule = self.settings().dead_watch_schedule.trim();
        let mut conn = self.pool().acquire().await?;
        if schedule.is_empty() {
            cowans_store::delete_cron(&mut *conn, WATCH_DEAD).await?;
            return Ok(());
        }
        let row = cowans_store::CronRow {
            name: WATCH_DEAD.to_owned(),
            schedule: schedule.to_owned(),
            timezone: "UTC".to_owned(),
            queue: crate::QUEUE.to_owned(),
            kind: WATCH_DEAD.to_owned(),
            args: json!({}),
            catch_up: 0,
            last_tick: None,
        };
        cowans_store::upsert_cron(&mut *conn, &row).await
    }
}

/// The watch's (empty) arguments.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WatchDeadArgs {}

/// Counts every queue's dead letters; a queue with more than last time (a queue not counted
/// before counts from 0) is notified to the recipients of every shop (`catalog.notify.emails` /
/// `webhooks`).
pub(crate) async fn watch_dead(cat: Catalog) -> std::result::Result<(), BoxDynError> {
    let counts = cowans_store::catalog::dead_letter_counts(cat.pool()).await?;
    let grown: Vec<(String, i64, i64)> = counts
        .iter()
        .filter_map(|(q, now, before)| {
            let before = before.unwrap_or(0);
            (*now > before).then(|| (q.clone(), before, *now))
        })
        .collect();
    let mut tx = cat.pool().begin().await?;
    let now: Vec<(String, i64)> = counts.iter().map(|(q, n, _)| (q.clone(), *n)).collect();
    cowans_store::catalog::set_dead_letter_counts(&mut tx, &now).await?;
    for (queue, before, now) in &grown {
        let notice = Notice {
            topic: "dead_letters.grew",
            subject: format!("Dead letters in queue {queue}: {before} -> {now}"),
            text: format!(
                "Queue {queue} has {now} dead letters (it had {before}). See them with \
                 GET /api/v1/queues/{queue}/dead; re-drive or purge them there.\n"
            ),
            data: json!({ "queue": queue, "before": before, "now": now }),
        };
        cat.notify(&mut tx, "", &notice).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Sends one message; a failure the recipient may recover from is retried.
pub(crate) async fn send(cat: Catalog, args: NotifyArgs) -> std::result::Result<(), BoxDynError> {
    let settings = &cat.settings().notify;
    match args.channel.as_str() {
        "email" => email(settings, &args).await,
        "webhook" => webhook(settings, &args).await,
        other => Err(JobError::permanent(format!("unknown channel {other:?}")).into()),
    }
}

async fn email(
    settings: &NotifySettings,
    args: &NotifyArgs,
) -> std::result::Result<(), BoxDynError> {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let Some(host) = &settings.smtp_host else {
        return Err(JobError::permanent("catalog.notify.smtp_host is not set").into());
    };
    let to = args
        .to
        .parse()
        .map_err(|e| JobError::permanent(format!("{:?} is not an email address: {e}", args.to)))?;
    let from = settings
        .smtp_from
        .parse()
        .map_err(|e| JobError::permanent(format!("catalog.notify.smtp_from: {e}")))?;
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(&args.subject)
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(args.text.clone())
        .map_err(JobError::permanent)?;
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    let params = || {
        TlsParameters::new(host.clone())
            .map_err(|e| JobError::permanent(format!("TLS to {host}: {e}")))
    };
    let tls = match settings.smtp_tls {
        SmtpTls::None => Tls::None,
        SmtpTls::Opportunistic => Tls::Opportunistic(params()?),
        SmtpTls::Starttls => Tls::Required(params()?),
        SmtpTls::Tls => Tls::Wrapper(params()?),
    };
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(settings.smtp_port)
        .tls(tls);
    if let (Some(user), Some(password)) = (&settings.smtp_username, &settings.smtp_password) {
        transport =
            transport.credentials(lettre::transport::smtp::authentication::Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
    }
    match transport.build().send(message).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => {
            Err(JobError::permanent(format!("the SMTP server refused the mail: {e}")).into())
        }
        Err(e) => Err(JobError::retry(format!("sending the mail: {e}")).into()),
    }
}

async fn webhook(
    settings: &NotifySettings,
    args: &NotifyArgs,
) -> std::result::Result<(), BoxDynError> {
    let body = serde_json::to_vec(&json!({
        "topic": args.topic, "shop": args.shop, "subject": args.subject, "text": args.text,
        "data": args.data,
    }))?;
    let mut req = reqwest::Client::new()
        .post(&args.to)
        .timeout(std::time::Duration::from_secs(30))
        .header("content-type", "application/json")
        .header("X-Cowans-Topic", &args.topic);
    if let Some(secret) = &settings.webhook_secret {
        req = req.header(
            "X-Cowans-Hmac-Sha256",
            cowans_shopify::webhook::sign(secret.expose_secret().as_bytes(), &body),
        );
    }
    let r = req
        .body(body)
        .send()
        .await
        .map_err(|e| JobError::retry(format!("posting the webhook: {e}")))?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(JobError::retry(format!("the webhook answered HTTP {}", r.status())).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_credentials_are_refused_without_tls() {
        let mut s = NotifySettings {
            smtp_host: Some("smtp.example.com".into()),
            smtp_username: Some("cowans".into()),
            smtp_password: Some(SecretString::from("secret")),
            ..Default::default()
        };
        for tls in [SmtpTls::None, SmtpTls::Opportunistic] {
            s.smtp_tls = tls;
            let e = s.check().unwrap_err();
            assert!(e.contains("smtp_tls"), "{e}");
        }
        for tls in [SmtpTls::Starttls, SmtpTls::Tls] {
            s.smtp_tls = tls;
            assert_eq!(s.check(), Ok(()));
        }
        let parsed: NotifySettings =
            serde_json::from_value(json!({"smtp_tls": "starttls"})).unwrap();
        assert_eq!(parsed.smtp_tls, SmtpTls::Starttls);
        assert!(serde_json::from_value::<NotifySettings>(json!({"smtp_tls": "ssl"})).is_err());
    }
}
