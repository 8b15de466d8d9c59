//! What the database benchmarks share: running one on SQLite, then on a fresh PostgreSQL
//! database made for it and dropped after (at `FOREMAN_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; `skip` benches SQLite alone).

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Runs `bench(backend name, database URL)` on both backends; `tag` names the PostgreSQL
/// database it makes.
pub fn on_both_backends(tag: &str, bench: impl AsyncFn(&str, &str)) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
        bench("sqlite", &sqlite).await;

        let admin_url =
            std::env::var("FOREMAN_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.into());
        if admin_url == "skip" {
            return;
        }
        let db = format!("foreman_{tag}_{}", std::process::id());
        admin(&admin_url, format!("CREATE DATABASE {db}")).await;
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&db);
        bench("postgres", url.as_str()).await;
        admin(&admin_url, format!("DROP DATABASE {db} WITH (FORCE)")).await;
    });
}

async fn admin(url: &str, sql: String) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url)
        .await
        .expect("PostgreSQL reachable");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .unwrap();
}
