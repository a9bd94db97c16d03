//! `ferrostack migrate [--status]`, and the schema check `serve` makes before it listens.

use std::fmt::Write as _;

use anyhow::Context;
use ferrostack_catalog::Catalog;
use ferrostack_config::{BackendConfig, RunConfig};

/// How a backend is named in messages: `sql_default (sql_postgres at db.internal:5432/ferrostack)`.
pub fn describe(name: &str, config: &RunConfig) -> String {
    match config.storage.backends.get(name) {
        Some(b @ (BackendConfig::KvPostgres(pg) | BackendConfig::SqlPostgres(pg))) => {
            format!("{name} ({} at {}:{}/{})", b.type_name(), pg.host, pg.port, pg.db)
        }
        Some(b @ (BackendConfig::KvSqlite(s) | BackendConfig::SqlSqlite(s))) => {
            format!("{name} ({} at {})", b.type_name(), s.db_path)
        }
        None => name.to_owned(),
    }
}

/// Refuse to serve on a schema that is behind, unless `auto_migrate`, which applies what is pending.
pub async fn ensure_current(catalog: &Catalog, config: &RunConfig, auto_migrate: bool) -> anyhow::Result<()> {
    let status = catalog.migration_status().await.context("cannot read the database schema version")?;
    let behind: Vec<_> = status.iter().filter(|b| !b.pending.is_empty()).collect();
    if behind.is_empty() {
        return Ok(());
    }
    if auto_migrate {
        for (backend, applied) in catalog.migrate().await.context("applying migrations failed")? {
            for m in applied {
                tracing::info!(backend = %backend, migration = %m, "applied migration");
            }
        }
        return Ok(());
    }
    let mut msg = String::from("the database schema is behind this ferrostack version:");
    for b in behind {
        let names: Vec<String> = b.pending.iter().map(ToString::to_string).collect();
        let _ = write!(msg, "\n  {}: {} pending ({})", describe(&b.backend, config), names.len(), names.join(", "));
    }
    msg.push_str(
        "\nrun `ferrostack migrate --config <FILE>` first, or start with `ferrostack serve --auto-migrate`",
    );
    anyhow::bail!(msg)
}

/// `ferrostack migrate`: apply what is pending and say what was applied.
pub async fn apply(catalog: &Catalog, config: &RunConfig, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let applied = catalog.migrate().await.context("applying migrations failed")?;
    for (backend, migrations) in applied {
        if migrations.is_empty() {
            writeln!(out, "{}: up to date", describe(&backend, config))?;
        }
        for m in migrations {
            writeln!(out, "{}: applied {m}", describe(&backend, config))?;
        }
    }
    Ok(())
}

/// `ferrostack migrate --status`: list applied and pending migrations per backend; change nothing.
pub async fn status(catalog: &Catalog, config: &RunConfig, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let status = catalog.migration_status().await.context("cannot read the database schema version")?;
    for b in status {
        writeln!(out, "{}:", describe(&b.backend, config))?;
        for m in &b.applied {
            writeln!(out, "  applied  {m}")?;
        }
        for m in &b.pending {
            writeln!(out, "  pending  {m}")?;
        }
        if b.applied.is_empty() && b.pending.is_empty() {
            writeln!(out, "  (no migrations)")?;
        }
    }
    Ok(())
}
