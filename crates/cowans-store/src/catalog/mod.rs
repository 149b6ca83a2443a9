//! The catalog application's statements: shops (secrets sealed by the caller), pulls, and the
//! local catalog of products and variants.
//!
//! Freshness: Shopify's `updatedAt` orders the snapshots of one product. An upsert replaces a
//! stored product only with a snapshot at least as new, and a product's variants move with it
//! (they are written only when their product's stored snapshot is the one they came with).
//! Deletions win over any view that started before them.

/// The migrations of the catalog's tables (`migrations/catalog/`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("../../migrations/catalog")
};

mod budget;
mod bulk_edits;
mod changes;
mod imports;
mod products;
mod pulls;
mod shops;

pub use budget::*;
pub use bulk_edits::*;
pub use changes::*;
pub use imports::*;
pub use products::*;
pub use pulls::*;
pub use shops::*;
