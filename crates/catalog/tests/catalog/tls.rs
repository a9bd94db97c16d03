//! TLS to PostgreSQL against the real server: each `ssl_mode` as libpq means it. The machine's
//! server uses the distribution's self-signed certificate (issued to the host name, not to
//! 127.0.0.1), which makes the refusals testable too.

use ferrostack_catalog::{Catalog, Sql};
use ferrostack_testkit::{Postgres, Test, TestDatabase};
use serde_json::json;

use crate::support;

pub fn tests() -> Vec<Test> {
    vec![Test::postgres("tls::each_ssl_mode_against_a_tls_server", each_mode)]
}

/// Whether the connection the pool hands out is encrypted, or the error that kept it from connecting.
async fn encrypted(db: &TestDatabase, extra: serde_json::Value) -> Result<bool, String> {
    let storage = support::storage([("pg", support::postgres("sql_postgres", db, extra))]);
    let catalog = Catalog::open(&storage).await.map_err(|e| e.to_string())?;
    let rows = catalog
        .sql("pg")
        .map_err(|e| e.to_string())?
        .fetch_all(Sql::new().push("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
        .await
        .map_err(|e| e.to_string());
    catalog.close().await;
    rows?.first().map(|r| r.get::<bool>("ssl").map_err(|e| e.to_string())).unwrap_or(Ok(false))
}

async fn each_mode(pg: Postgres) {
    let admin = pg.admin_client().await;
    let ssl = admin.query_one("SHOW ssl", &[]).await.expect("SHOW ssl").get::<_, String>(0);
    if ssl != "on" {
        eprintln!("*** tls: the PostgreSQL server has ssl = {ssl}; only the plain modes can be checked");
        return;
    }
    let cert: String = admin.query_one("SHOW ssl_cert_file", &[]).await.expect("cert").get(0);
    let db = pg.fresh_database().await;

    assert_eq!(encrypted(&db, json!({"ssl_mode": "disable"})).await, Ok(false), "disable: plain TCP");
    assert_eq!(encrypted(&db, json!({"ssl_mode": "prefer"})).await, Ok(true), "prefer: TLS when offered");
    assert_eq!(encrypted(&db, json!({"ssl_mode": "require"})).await, Ok(true), "require: TLS, certificate unchecked");

    // Migrations run on a dedicated connection; it must use TLS as well.
    let storage = support::storage([("pg", support::postgres("sql_postgres", &db, json!({"ssl_mode": "require"})))]);
    let catalog = support::open_migrated(&storage).await;
    catalog.close().await;

    // A certificate from a CA we do not trust is refused by verify-ca, and by require once a CA
    // file is given (libpq's rule).
    let public_cas = "/etc/ssl/certs/ca-certificates.crt";
    if std::path::Path::new(public_cas).exists() {
        for mode in ["verify-ca", "require"] {
            let err = encrypted(&db, json!({"ssl_mode": mode, "ca_cert_path": public_cas})).await.unwrap_err();
            assert!(err.contains("certificate"), "{mode} with an unrelated CA: {err}");
            assert!(err.contains("'pg'"), "the error names the backend: {err}");
        }
    }
    // verify-full checks the host name: the server's certificate names the host, not 127.0.0.1.
    if std::fs::metadata(&cert).is_ok() && db.server().host().parse::<std::net::IpAddr>().is_ok() {
        let err = encrypted(&db, json!({"ssl_mode": "verify-full", "ca_cert_path": cert})).await.unwrap_err();
        assert!(err.contains("certificate"), "verify-full against an address the certificate does not name: {err}");
        // verify-ca does not compare names: the same certificate, trusted, is accepted.
        let verify_ca = encrypted(&db, json!({"ssl_mode": "verify-ca", "ca_cert_path": cert})).await;
        assert_eq!(verify_ca, Ok(true), "verify-ca with the server's certificate trusted");
        // verify-full through the name the certificate carries is accepted.
        let subject_host = json!({"ssl_mode": "verify-full", "ca_cert_path": cert, "host": "localhost"});
        assert_eq!(encrypted(&db, subject_host).await, Ok(true), "verify-full via the certificate's own name");
    }
}
