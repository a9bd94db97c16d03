//! `ferrostack migrate [--status]`, and the schema check `serve` makes before it listens.

use std::fmt::Write as _;

use anyhow::Context;
use ferrostack_catalog::{BackendMigrations, Catalog, SchemaState};

/// How a backend is named in messages: `'sql_default' (sql_postgres at db:5432/ferrostack)`.
fn describe(catalog: &Catalog, backend: &str) -> String {
    catalog.describe(backend).map_or_else(|_| format!("'{backend}'"), |d| d.to_string())
}

fn list(migrations: &[ferrostack_catalog::MigrationInfo]) -> String {
    migrations.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Check every backend's schema before serving:
/// - behind: apply what is pending when `auto_migrate`, else refuse, naming the command;
/// - ahead (a newer ferrostack migrated it): serve, with a warning; migrations are forward-only and
///   additive, which is what lets old and new replicas overlap during a rolling upgrade;
/// - diverged (an applied migration differs from this binary's file): refuse; it needs a person.
pub async fn ensure_current(catalog: &Catalog, auto_migrate: bool) -> anyhow::Result<()> {
    let status = catalog.migration_status().await.context("cannot read the database schema version")?;
    let mut diverged = String::new();
    let mut behind = String::new();
    for b in &status {
        // Pending and unknown migrations are judged separately: a database that a newer
        // ferrostack migrated can still lack one of this binary's migrations.
        if !b.divergent.is_empty() {
            let _ = write!(
                diverged,
                "\n  {}: applied migrations differ from this binary's files: {}",
                describe(catalog, &b.backend),
                list(&b.divergent)
            );
        }
        if !b.pending.is_empty() {
            let _ = write!(
                behind,
                "\n  {}: {} pending ({})",
                describe(catalog, &b.backend),
                b.pending.len(),
                list(&b.pending)
            );
        }
        if !b.unknown.is_empty() {
            tracing::warn!(
                backend = %b.backend,
                "the schema of {} has migrations this binary does not know ({}); a newer ferrostack \
                 migrated it",
                describe(catalog, &b.backend),
                list(&b.unknown)
            );
        }
    }
    if !diverged.is_empty() {
        anyhow::bail!(
            "the database schema does not match this ferrostack version:{diverged}\nmigrations are never \
             edited once applied; restore the original files or repair the database by hand"
        );
    }
    if behind.is_empty() {
        return Ok(());
    }
    if !auto_migrate {
        anyhow::bail!(
            "the database schema is behind this ferrostack version:{behind}\nrun `ferrostack migrate --config \
             <FILE>` first, or start with `ferrostack serve --auto-migrate`"
        );
    }
    // The catalog logs each migration it applies.
    catalog.migrate().await.context("applying migrations failed")?;
    Ok(())
}

/// `ferrostack migrate`: apply what is pending and say what was applied.
pub async fn apply(catalog: &Catalog, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let applied = catalog.migrate().await.context("applying migrations failed")?;
    for (backend, migrations) in applied {
        if migrations.is_empty() {
            writeln!(out, "{}: up to date", describe(catalog, &backend))?;
        }
        for m in migrations {
            writeln!(out, "{}: applied {m}", describe(catalog, &backend))?;
        }
    }
    Ok(())
}

/// `ferrostack migrate --status`: list applied and pending migrations per backend; change nothing.
pub async fn status(catalog: &Catalog, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let status = catalog.migration_status().await.context("cannot read the database schema version")?;
    for b in status {
        write_status(catalog, &b, out)?;
    }
    Ok(())
}

fn write_status(catalog: &Catalog, b: &BackendMigrations, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let state = match b.state() {
        SchemaState::Current => "current",
        SchemaState::Behind => "behind: run `ferrostack migrate`",
        SchemaState::Ahead => "ahead: migrated by a newer ferrostack",
        SchemaState::Diverged => "diverged: applied migrations differ from this binary's files",
    };
    writeln!(out, "{} [{state}]", describe(catalog, &b.backend))?;
    for (label, items) in
        [("applied", &b.applied), ("pending", &b.pending), ("unknown", &b.unknown), ("diverged", &b.divergent)]
    {
        for m in items {
            writeln!(out, "  {label:<8} {m}")?;
        }
    }
    Ok(())
}
