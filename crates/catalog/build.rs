//! Rebuild when a migration file is added or changed: `embed_migrations!` reads the folders at
//! compile time, and cargo does not otherwise know about them.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations/postgres");
    println!("cargo:rerun-if-changed=../../migrations/sqlite");
}
