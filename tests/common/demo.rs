//! A real audit writer configured as `demo seed` configures it, with its own spool folder (keep
//! the folder alive as long as the writer). Included with `#[path]` by the report tests.

use orderguard::audit::AuditWriter;
use sqlx::PgPool;

pub async fn demo_writer(pool: &PgPool) -> (AuditWriter, tempfile::TempDir) {
    let spool = tempfile::tempdir().unwrap();
    let writer = AuditWriter::start(
        pool.clone(),
        orderguard::demo::writer_config(spool.path().to_owned()),
    )
    .await
    .unwrap();
    (writer, spool)
}
