//! The catalog against a simulated shop: a simulator on port 0, a database with the catalog's
//! tables, the catalog's front door over it with a test key, a shop registered for the
//! simulator, and real `cowans-worker` processes running the catalog's jobs.

use std::time::Duration;

use cowans_catalog::{Catalog, CatalogSettings, PullKind, PullRow, ShopRequest, ShopRow};
use cowans_core::Actor;
use cowans_shopsim::{Plan, Running, SimConfig};
use cowans_testkit::TestDb;
use cowans_tests::{FAST_ENGINE, WorkerProcess};
use secrecy::SecretString;

/// The simulator's access token.
pub(crate) const TOKEN: &str = "shpat_catalog_test_0123456789abcdef";
/// The test's sealing key (base64 of 32 bytes).
pub(crate) const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

pub(crate) fn actor() -> Actor {
    Actor::system("test")
}

/// A simulator of `products` products with `variants` variants each.
pub(crate) async fn sim(products: usize, variants: usize) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    cowans_shopsim::start(
        listener,
        &SimConfig {
            plan: Plan::Standard,
            tokens: vec![TOKEN.to_owned()],
            secret: "whsec_test".to_owned(),
            products,
            variants,
        },
    )
    .unwrap()
}

/// The catalog's settings in these tests: the test key, small batches, frequent progress, no
/// periodic pulls unless a test asks.
pub(crate) fn settings() -> CatalogSettings {
    CatalogSettings {
        secret_keys: [("t".to_owned(), SecretString::from(KEY))].into(),
        pull_batch: 100,
        progress_every_ms: 100,
        incremental_schedule: String::new(),
        reconcile_schedule: String::new(),
        ..CatalogSettings::default()
    }
}

/// The same settings as `COWANS__...` variables for a worker process.
pub(crate) fn settings_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("COWANS__APPS", "catalog"),
        ("COWANS__CATALOG__SECRET_KEYS__T", KEY),
        ("COWANS__CATALOG__PULL_BATCH", "100"),
        ("COWANS__CATALOG__PROGRESS_EVERY_MS", "100"),
        ("COWANS__CATALOG__INCREMENTAL_SCHEDULE", ""),
        ("COWANS__CATALOG__RECONCILE_SCHEDULE", ""),
    ]
}

/// A database with the engine's and the catalog's tables.
pub(crate) async fn catalog_db() -> TestDb {
    TestDb::with_apps(&[&cowans_store::catalog::MIGRATOR]).await
}

/// The catalog's front door over `db` with [`settings`].
pub(crate) fn catalog(db: &TestDb) -> Catalog {
    catalog_with(db, &settings())
}

pub(crate) fn catalog_with(db: &TestDb, settings: &CatalogSettings) -> Catalog {
    Catalog::new(
        cowans_queue::FrontDoor::builder(db.pool.clone()).build(),
        settings,
    )
    .unwrap()
}

/// The domain the simulator signs its webhooks as (`X-Shopify-Shop-Domain`).
pub(crate) const SIM_DOMAIN: &str = "cowans-sim.myshopify.com";

/// The shop request for `sim` named `name`, with `token`; the shop named `sim` has the
/// simulator's own domain (its webhooks name it).
pub(crate) fn shop_request(sim: &Running, name: &str, token: &str) -> ShopRequest {
    ShopRequest {
        name: name.to_owned(),
        domain: if name == "sim" {
            SIM_DOMAIN.to_owned()
        } else {
            format!("{name}.myshopify.com")
        },
        api_version: "2026-10".to_owned(),
        admin_url: Some(sim.base_url()),
        access_token: SecretString::from(token),
        webhook_secret: Some(SecretString::from("whsec_test")),
        incremental_schedule: None,
    }
}

/// A simulated shop registered in a fresh catalog.
pub(crate) struct Fixture {
    pub(crate) sim: Running,
    pub(crate) db: TestDb,
    pub(crate) catalog: Catalog,
    pub(crate) shop: ShopRow,
}

pub(crate) async fn fixture(products: usize, variants: usize) -> Fixture {
    let sim = sim(products, variants).await;
    let db = catalog_db().await;
    let catalog = catalog(&db);
    let shop = catalog
        .add_shop(&actor(), shop_request(&sim, "sim", TOKEN))
        .await
        .unwrap();
    Fixture {
        sim,
        db,
        catalog,
        shop,
    }
}

impl Fixture {
    /// A `cowans-worker` process running the catalog's queues, with `extra` settings.
    pub(crate) fn worker(&self, extra: &[(&str, &str)]) -> WorkerProcess {
        let mut env = settings_env();
        env.extend_from_slice(FAST_ENGINE);
        env.extend_from_slice(extra);
        WorkerProcess::spawn(&self.db.url(), "catalog,catalog.webhooks", 4, &env)
    }

    /// Starts a pull of the shop.
    pub(crate) async fn start(&self, kind: PullKind) -> PullRow {
        self.catalog
            .start_pull(&actor(), self.shop.id, kind)
            .await
            .unwrap()
    }

    /// Waits (up to `within`) for pull `id` to end; returns it.
    pub(crate) async fn finished(&self, id: i64, within: Duration) -> PullRow {
        cowans_testkit::wait_for(&format!("pull {id} to end"), within, || async {
            let p = self.catalog.pull(id).await.unwrap();
            (p.state != "running").then_some(p)
        })
        .await
    }

    /// Starts a pull of `kind` and waits for it to complete.
    pub(crate) async fn pull(&self, kind: PullKind) -> PullRow {
        let p = self.start(kind).await;
        let p = self.finished(p.id, Duration::from_secs(120)).await;
        assert_eq!(p.state, "completed", "{p:?}");
        p
    }

    /// Approves every change of the shop, `expected` of them (a push starts); their ids.
    pub(crate) async fn approve_all(&self, expected: i64) -> Vec<i64> {
        self.catalog
            .decide(
                &actor(),
                self.shop.id,
                &cowans_catalog::Selection::Matching {
                    filter: cowans_catalog::ChangeFilter::default(),
                    expected,
                },
                cowans_catalog::Decision::Approve,
                None,
            )
            .await
            .unwrap()
    }

    /// Waits until no change of the shop is approved or being pushed (generous: a push meeting
    /// faults is retried by the engine with backoff).
    pub(crate) async fn pushed(&self) {
        cowans_testkit::wait_for("the push to finish", Duration::from_secs(300), || async {
            let counts = self.catalog.change_counts(self.shop.id).await.unwrap();
            (!counts
                .iter()
                .any(|(s, n)| (s == "approved" || s == "pushing") && *n > 0))
            .then_some(())
        })
        .await;
    }

    /// The HTTP API over this catalog, on a port of its own; its base URL.
    pub(crate) async fn api(&self) -> String {
        let options = cowans_api::ApiOptions {
            catalog: Some(self.catalog.clone()),
            ..cowans_api::ApiOptions::default()
        };
        crate::support::api::serve(
            &self.db,
            options,
            cowans_core::KindRegistry::new(),
            crate::support::api::metrics_handle(),
        )
        .await
    }

    /// GraphQL requests the simulator answered with a root field `root`.
    pub(crate) fn requests_to(&self, root: &str) -> usize {
        self.sim
            .shop
            .lock()
            .log
            .iter()
            .filter(|r| r.root_fields.iter().any(|f| f == root))
            .count()
    }

    /// The queries of the bulk query operations the simulator ran, oldest first.
    pub(crate) fn bulk_queries(&self) -> Vec<String> {
        self.sim
            .shop
            .lock()
            .bulk
            .values()
            .filter(|op| op.kind == "QUERY")
            .map(|op| op.query.clone())
            .collect()
    }
}

/// The HTTP API with the catalog enabled, over a fresh catalog database; and that catalog.
pub(crate) async fn catalog_api() -> (crate::support::api::Api, Catalog) {
    let db = catalog_db().await;
    let catalog = catalog(&db);
    let options = cowans_api::ApiOptions {
        catalog: Some(catalog.clone()),
        ..cowans_api::ApiOptions::default()
    };
    let api = crate::support::api::serve_api(db, options, cowans_core::KindRegistry::new()).await;
    (api, catalog)
}

/// Runs a binary of the workspace with `args` and `env` (and `stdin`) to its end, off the test's
/// runtime (which serves the simulator meanwhile): whether it succeeded, its stdout and stderr.
pub(crate) async fn run(
    bin: &str,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(cowans_tests::binary(bin));
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env("COWANS__LOG__FILTER", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}
