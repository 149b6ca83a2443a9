//! Notifications with a real SMTP server and a real webhook receiver: when a push finishes with
//! a conflict, the shop's recipients get a mail naming it and a signed webhook; a receiver that
//! fails at first still gets the webhook (the notification is a retried job); a bulk edit's end
//! is announced too.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, http::HeaderMap, http::StatusCode, routing::post};
use cowans_catalog::{Edit, PullKind, Source};
use cowans_testkit::{smtp::SmtpSink, wait_for};
use serde_json::{Value, json};

use crate::support::catalog::{actor, fixture};

/// A webhook receiver that refuses its first `fail_first` deliveries; what it accepted, with
/// the signature header.
async fn receiver(fail_first: usize) -> (String, Arc<Mutex<Vec<(Value, String)>>>) {
    let got: Arc<Mutex<Vec<(Value, String)>>> = Arc::default();
    let seen = Arc::new(Mutex::new(0usize));
    let store = got.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let (store, seen) = (store.clone(), seen.clone());
            async move {
                let n = {
                    let mut s = seen.lock().unwrap();
                    *s += 1;
                    *s
                };
                if n <= fail_first {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let sig = headers
                    .get("X-Cowans-Hmac-Sha256")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let ok = cowans_shopify::webhook::verify(b"notify-secret", &body, &sig);
                store
                    .lock()
                    .unwrap()
                    .push((serde_json::from_slice(&body).unwrap(), ok.to_string()));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

#[tokio::test]
async fn a_push_with_a_conflict_is_mailed_and_posted_signed_even_through_a_failing_receiver() {
    let f = fixture(3, 1).await;
    let smtp = SmtpSink::start().await;
    let (hook, posted) = receiver(1).await;
    let port = smtp.port.to_string();
    let _w = f.worker(&[
        ("COWANS__CATALOG__NOTIFY__SMTP_HOST", "127.0.0.1"),
        ("COWANS__CATALOG__NOTIFY__SMTP_PORT", &port),
        ("COWANS__CATALOG__NOTIFY__SMTP_FROM", "cowans@shop.test"),
        (
            "COWANS__CATALOG__NOTIFY__EMAILS",
            "ops@shop.test,lead@shop.test",
        ),
        ("COWANS__CATALOG__NOTIFY__WEBHOOKS", &hook),
        ("COWANS__CATALOG__NOTIFY__WEBHOOK_SECRET", "notify-secret"),
    ]);
    f.pull(PullKind::Full).await;
    let page = f
        .catalog
        .products(f.shop.id, &Default::default(), None, 10)
        .await
        .unwrap();
    let edits: Vec<Edit> = page
        .iter()
        .take(2)
        .map(|(p, _)| Edit {
            product_id: p.id,
            variant_id: None,
            fields: json!({"title": format!("{} (renamed)", p.title)})
                .as_object()
                .unwrap()
                .clone(),
        })
        .collect();
    f.catalog
        .stage(&actor(), f.shop.id, &edits, Source::Edit, |_| String::new())
        .await
        .unwrap();
    // The merchant renames the first product meanwhile: a conflict.
    let r = reqwest::Client::new()
        .post(format!(
            "{}/__sim/products/{}/edit",
            f.sim.base_url(),
            page[0].0.id
        ))
        .json(&json!({"title": "Merchant's"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    f.approve_all(2).await;

    let mails = wait_for("two mails", Duration::from_secs(60), || async {
        let m = smtp.mails();
        (m.len() >= 2).then_some(m)
    })
    .await;
    let mut to: Vec<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(to, ["<lead@shop.test>", "<ops@shop.test>"]);
    let mail = &mails[0];
    assert_eq!(mail.from, "<cowans@shop.test>");
    let unfolded = mail.data.replace("\r\n ", " ");
    assert!(
        unfolded.contains("Subject: Push to sim: 1 pushed; 1 conflict and 0 failures need review"),
        "{}",
        mail.data
    );
    assert!(
        mail.data.contains("Conflicts (back to review): 1"),
        "{}",
        mail.data
    );

    // The receiver refused the first delivery; the retried job delivers it, signed.
    let got = wait_for("the webhook", Duration::from_secs(60), || async {
        let g = posted.lock().unwrap().clone();
        (!g.is_empty()).then_some(g)
    })
    .await;
    let (body, signed) = &got[0];
    assert_eq!(signed, "true", "signed with the notify secret");
    assert_eq!(body["topic"], "push.finished");
    assert_eq!(body["shop"], "sim");
    assert_eq!(
        (&body["data"]["pushed"], &body["data"]["conflicts"]),
        (&json!(1), &json!(1))
    );

    // A bulk edit's end is announced too.
    let spec: cowans_catalog::BulkEditSpec = serde_json::from_value(json!({
        "operations": [{"field": "vendor", "op": "set", "value": "Notified"}]
    }))
    .unwrap();
    let edit = f
        .catalog
        .start_bulk_edit(&actor(), f.shop.id, &spec)
        .await
        .unwrap();
    let mails = wait_for("the bulk edit's mails", Duration::from_secs(60), || async {
        let m = smtp.mails();
        (m.len() >= 4).then_some(m)
    })
    .await;
    let subject = format!(
        "Subject: Bulk edit {} of sim completed: 3 changes staged",
        edit.id
    );
    assert!(
        mails[2..]
            .iter()
            .all(|m| m.data.replace("\r\n ", " ").contains(&subject)),
        "{mails:?}"
    );
}

#[tokio::test]
async fn dead_letters_growing_in_a_queue_are_mailed_once_per_rise() {
    let f = crate::support::catalog::fixture(1, 1).await;
    let smtp = SmtpSink::start().await;
    let port = smtp.port.to_string();
    let _w = f.worker(&[
        ("COWANS__CATALOG__NOTIFY__SMTP_HOST", "127.0.0.1"),
        ("COWANS__CATALOG__NOTIFY__SMTP_PORT", &port),
        ("COWANS__CATALOG__NOTIFY__EMAILS", "ops@shop.test"),
        // Every second, for the test.
        ("COWANS__CATALOG__DEAD_WATCH_SCHEDULE", "* * * * * *"),
    ]);
    // A job whose payload does not decode is dead-lettered at once.
    let queue = cowans_core::QueueName::new("catalog".to_owned()).unwrap();
    for _ in 0..2 {
        f.catalog
            .front()
            .enqueue(&cowans_queue::NewJob::new(
                queue.clone(),
                "catalog.push",
                json!({"not": "a push"}),
            ))
            .await
            .unwrap();
    }
    // Both dead letters counted, then two more counts of the watch with nothing new.
    let counted = || async {
        sqlx::query_as::<_, (i64, chrono::DateTime<chrono::Utc>)>(
            "SELECT dead, counted_at FROM cowans_dead_watch WHERE queue = 'catalog'",
        )
        .fetch_optional(&f.db.pool)
        .await
        .unwrap()
    };
    let mut at = wait_for(
        "both dead letters counted",
        Duration::from_secs(60),
        || async {
            counted()
                .await
                .filter(|(dead, _)| *dead == 2)
                .map(|(_, at)| at)
        },
    )
    .await;
    for _ in 0..2 {
        at = wait_for("another count", Duration::from_secs(60), || async {
            counted().await.filter(|(_, t)| *t > at).map(|(_, t)| t)
        })
        .await;
    }
    // Every rise mailed once: the subjects chain from 0 to 2 with no repeats.
    let mut rises: Vec<(i64, i64)> = smtp
        .mails()
        .iter()
        .map(|m| {
            let text = m.data.replace("\r\n ", " ");
            let subject = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: Dead letters in queue catalog: "))
                .unwrap_or_else(|| panic!("{text}"));
            let (a, b) = subject.split_once(" -> ").unwrap();
            (a.trim().parse().unwrap(), b.trim().parse().unwrap())
        })
        .collect();
    rises.sort();
    assert_eq!(rises.first().map(|r| r.0), Some(0), "{rises:?}");
    assert_eq!(rises.last().map(|r| r.1), Some(2), "{rises:?}");
    assert!(
        rises.windows(2).all(|w| w[0].1 == w[1].0),
        "one mail per rise: {rises:?}"
    );
}
