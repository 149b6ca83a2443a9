//! The command-line actions of `cowans-api` (`keys create|revoke`, `shops add|list|pull`,
//! `secrets rotate`), through the same front doors as the HTTP routes, audited as the OS user.
//! Secrets never come from the command line: the access token is read from
//! `COWANS_SHOP_ACCESS_TOKEN` or the first line of standard input, the webhook secret from
//! `COWANS_SHOP_WEBHOOK_SECRET`.

use std::{
    io::BufRead,
    time::{Duration, Instant},
};

use anyhow::Context;
use cowans_catalog::{Catalog, PullKind, PullRow, ShopRequest};
use cowans_core::{Actor, Role};
use cowans_queue::FrontDoor;
use cowans_service::{Settings, apps, backends, database};
use secrecy::SecretString;

/// The engine's front door over the settings' database (key management needs no
/// application's tables).
async fn engine(settings: &Settings) -> anyhow::Result<FrontDoor> {
    let engine_only = apps::migrations(apps::AVAILABLE, &[])?;
    let pool = database::connect(&settings.database, &engine_only).await?;
    Ok(FrontDoor::builder(pool).build())
}

/// `keys create`: the key (shown once) and what was stored.
pub async fn create_key(
    settings: &Settings,
    actor: &Actor,
    name: &str,
    role: Role,
) -> anyhow::Result<String> {
    let (key, row) = engine(settings)
        .await?
        .create_api_key(actor, name, role)
        .await?;
    Ok(format!(
        "created API key {} ({}, role {}):\n{key}\nstore it now: it is not shown again",
        row.id, row.name, row.role
    ))
}

/// `keys revoke`.
pub async fn revoke_key(settings: &Settings, actor: &Actor, id: i64) -> anyhow::Result<String> {
    engine(settings).await?.revoke_api_key(actor, id).await?;
    Ok(format!("API key {id} revoked"))
}

/// `secrets rotate`: re-seals every shop's secrets under `catalog.active_key`.
pub async fn rotate_secrets(settings: &Settings, actor: &Actor) -> anyhow::Result<String> {
    let n = catalog(settings).await?.rotate_secrets(actor).await?;
    Ok(format!(
        "re-sealed the secrets of {n} shop(s) under key {}",
        settings
            .catalog
            .active_key
            .as_deref()
            .unwrap_or("(the only key)")
    ))
}

/// The catalog over the settings' database (the enabled applications' tables migrated), or
/// an error when the settings do not enable it (as the API and the workers would not).
pub async fn catalog(settings: &Settings) -> anyhow::Result<Catalog> {
    if !settings.apps.iter().any(|a| a == cowans_catalog::APP.name) {
        anyhow::bail!(
            "the catalog application is not enabled here (apps = {:?}); add \"catalog\" to apps (COWANS__APPS)",
            settings.apps
        );
    }
    let migrations = apps::migrations(apps::AVAILABLE, &settings.apps)?;
    let pool = database::connect(&settings.database, &migrations).await?;
    let front = backends::front_door(settings, &pool).await?.build();
    let catalog = Catalog::new(front, &settings.catalog).context("catalog.secret_keys")?;
    if let Some(b) = backends::catalog_budgets(settings).await? {
        catalog.use_redis_budgets(b);
    }
    Ok(catalog)
}

/// The access token (from `COWANS_SHOP_ACCESS_TOKEN`, else standard input) and the optional
/// webhook secret (`COWANS_SHOP_WEBHOOK_SECRET`). `env` reads the environment (the binary's).
pub fn shop_secrets(
    env: impl Fn(&str) -> Option<String>,
    stdin: impl BufRead,
) -> anyhow::Result<(SecretString, Option<SecretString>)> {
    let token = match env("COWANS_SHOP_ACCESS_TOKEN") {
        Some(t) => t,
        None => {
            let mut line = String::new();
            stdin
                .take(64 * 1024)
                .read_line(&mut line)
                .context("reading the access token from standard input")?;
            line
        }
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        anyhow::bail!(
            "no access token: set COWANS_SHOP_ACCESS_TOKEN or pipe it on standard input (never on the command line)"
        );
    }
    let webhook = env("COWANS_SHOP_WEBHOOK_SECRET")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .map(SecretString::from);
    Ok((token.into(), webhook))
}

/// `shops add`.
pub async fn add_shop(
    settings: &Settings,
    actor: &Actor,
    req: ShopRequest,
) -> anyhow::Result<String> {
    let row = catalog(settings).await?.add_shop(actor, req).await?;
    Ok(format!(
        "added shop {} ({}, API {}): id {}, token …{}",
        row.name, row.domain, row.api_version, row.id, row.token_last4
    ))
}

/// `shops list`: one line per shop.
pub async fn list_shops(settings: &Settings) -> anyhow::Result<String> {
    let catalog = catalog(settings).await?;
    let mut out = String::new();
    for s in catalog.shops().await? {
        let (products, variants) = catalog.counts(s.id).await?;
        out.push_str(&format!(
            "{:>4} {:<20} {:<36} {} {:<12} {products} products, {variants} variants\n",
            s.id, s.name, s.domain, s.api_version, s.status
        ));
    }
    Ok(out)
}

/// `shops export`: writes a shop's products matching `filter` in `format` (csv or jsonl) to
/// `output` (created only once the request is known to be good) or standard output; returns
/// the bytes written.
pub async fn export(
    settings: &Settings,
    shop: &str,
    format: &str,
    filter: cowans_catalog::ProductFilter,
    output: Option<&std::path::Path>,
) -> anyhow::Result<u64> {
    use futures::TryStreamExt;
    use tokio::io::AsyncWriteExt;
    let format = cowans_queue::export::ExportFormat::parse(format)
        .map_err(|e| anyhow::anyhow!("--format {e}"))?;
    let catalog = catalog(settings).await?;
    let shop = catalog.find_shop(shop).await?;
    let mut chunks = catalog.export(shop.id, filter, format)?;
    let mut out: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>> = match output {
        Some(path) => Box::pin(
            tokio::fs::File::create(path)
                .await
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::pin(tokio::io::stdout()),
    };
    let mut written = 0u64;
    while let Some(chunk) = chunks.try_next().await? {
        out.write_all(&chunk).await?;
        written += chunk.len() as u64;
    }
    out.flush().await?;
    Ok(written)
}

/// `shops pull`: starts a pull and, with `follow`, prints a progress line a second until it
/// ends (`out` gets each line); fails if the pull failed.
pub async fn pull(
    settings: &Settings,
    actor: &Actor,
    shop: &str,
    kind: PullKind,
    follow: bool,
    mut out: impl FnMut(&str),
) -> anyhow::Result<PullRow> {
    let catalog = catalog(settings).await?;
    let shop = catalog.find_shop(shop).await?;
    let pull = catalog.start_pull(actor, shop.id, kind).await?;
    out(&format!(
        "pull {} of shop {} started ({} pull, job {})",
        pull.id,
        shop.name,
        kind.as_str(),
        pull.job_id.unwrap_or_default()
    ));
    if !follow {
        return Ok(pull);
    }
    let started = Instant::now();
    let mut last_products = 0i64;
    let mut last_at = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let p = catalog.pull(pull.id).await?;
        let secs = started.elapsed().as_secs_f64();
        let rate = (p.products - last_products) as f64 / last_at.elapsed().as_secs_f64().max(0.001);
        (last_products, last_at) = (p.products, Instant::now());
        if p.state != "running" {
            let avg = p.products as f64 / secs.max(0.001);
            out(&format!(
                "[{secs:>6.1}s] {}: {} lines read, {} products and {} variants written, {} marked deleted ({avg:.0} products/s){}",
                p.state,
                p.lines,
                p.products,
                p.variants,
                p.deleted,
                p.error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
            if p.state == "failed" {
                anyhow::bail!("pull {} failed: {}", p.id, p.error.unwrap_or_default());
            }
            return Ok(p);
        }
        let stage = if p.products == 0 {
            "exporting"
        } else {
            "writing"
        };
        out(&format!(
            "[{secs:>6.1}s] {stage}: {} lines read, {} products and {} variants written ({rate:.0} products/s)",
            p.lines, p.products, p.variants
        ));
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn secrets_come_from_the_environment_or_standard_input_never_argv() {
        let env = |k: &str| (k == "COWANS_SHOP_ACCESS_TOKEN").then(|| " shpat_env \n".to_owned());
        let (token, webhook) = shop_secrets(env, std::io::empty()).unwrap();
        assert_eq!(token.expose_secret(), "shpat_env");
        assert!(webhook.is_none());
        let (token, _) = shop_secrets(|_| None, "shpat_stdin\nrest".as_bytes()).unwrap();
        assert_eq!(token.expose_secret(), "shpat_stdin");
        let e = shop_secrets(|_| None, std::io::empty())
            .unwrap_err()
            .to_string();
        assert!(e.contains("COWANS_SHOP_ACCESS_TOKEN"), "{e}");
    }
}
