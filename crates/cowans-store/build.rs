//! Rebuilds the crate when a migration is added (`sqlx::migrate!` embeds the directories'
//! files, but only notices changes to files it has seen).
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
