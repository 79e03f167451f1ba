//! Rebuild when a migration is added or changed: `embed_migrations!` reads the
//! directory at compile time and cargo would not otherwise notice.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
