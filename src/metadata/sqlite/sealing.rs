//! At open: the key check (the catalog's key-check value must open with the key given;
//! a new catalog takes the key it is first opened with) and the sealing of secrets an
//! older catalog holds in plain text, in place, in one transaction.

use sqlx::{Row as _, SqliteConnection, SqlitePool};

use super::backend;
use super::rows::seal;
use crate::metadata::Error;
use crate::metadata::seal::{self as sealed, Sealer};

/// What the key-check value holds.
const CHECK_TEXT: &str = "cellar catalog key check";
/// The place the key-check value is sealed for.
const CHECK_PLACE: &str = "catalog_key.check_value:1";

/// Checks that `sealer`'s key is the catalog's (recording it in a new catalog), then
/// seals every secret still in plain text. Returns how many values it sealed.
pub(super) async fn check_key_and_seal(pool: &SqlitePool, sealer: &Sealer) -> Result<u64, Error> {
    let mut transaction =
        pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend("checking the catalog key"))?;
    check_key(&mut transaction, sealer).await?;
    let mut sealed = 0;
    sealed += seal_column(&mut transaction, sealer, "databases", "connection_uri", false).await?;
    sealed += seal_column(&mut transaction, sealer, "databases", "webhook_secret", false).await?;
    sealed += seal_column(&mut transaction, sealer, "destinations", "uri", false).await?;
    sealed += seal_column(&mut transaction, sealer, "destinations", "credentials", true).await?;
    transaction.commit().await.map_err(backend("sealing the catalog's secrets"))?;
    if sealed > 0 {
        // The plain values are gone from the database file (secure_delete), but the
        // write-ahead log still holds page images from before: fold it in and empty it.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await
            .map_err(backend("checkpointing the sealed catalog"))?;
    }
    Ok(sealed)
}

async fn check_key(connection: &mut SqliteConnection, sealer: &Sealer) -> Result<(), Error> {
    let row = sqlx::query("SELECT key_id, check_value FROM catalog_key WHERE id = 1")
        .fetch_optional(&mut *connection)
        .await
        .map_err(backend("reading the catalog key check"))?;
    let Some(row) = row else {
        let check_value = sealer
            .seal(CHECK_PLACE, CHECK_TEXT)
            .map_err(|error| Error::Backend(format!("the catalog key check {error}")))?;
        sqlx::query("INSERT INTO catalog_key (id, key_id, check_value) VALUES (1, ?, ?)")
            .bind(sealer.key_id())
            .bind(check_value)
            .execute(&mut *connection)
            .await
            .map_err(backend("recording the catalog key"))?;
        return Ok(());
    };
    let key_id: String = row.try_get("key_id").map_err(backend("reading the catalog key check"))?;
    let check_value: String = row.try_get("check_value").map_err(backend("reading the catalog key check"))?;
    match sealer.open(CHECK_PLACE, &check_value) {
        Ok(text) if text == CHECK_TEXT => Ok(()),
        Ok(_) | Err(sealed::Error::Damaged | sealed::Error::NotSealed | sealed::Error::NoRandom) => {
            Err(Error::Backend(format!(
                "the catalog key check does not open with catalog key {} (the catalog's is {key_id}): \
                 wrong key, or a damaged catalog",
                sealer.key_id()
            )))
        }
        Err(sealed::Error::OtherKey { .. }) => Err(Error::Backend(format!(
            "wrong catalog key: this catalog's secrets are sealed with key {key_id}, the key given is {}; \
             start with the key the catalog was created with (catalog_key_file or CELLAR_CATALOG_KEY)",
            sealer.key_id()
        ))),
    }
}

// Seals the plain values of one column; `json_string`: the column holds JSON, so the
// sealed text goes in as a JSON string.
async fn seal_column(
    connection: &mut SqliteConnection,
    sealer: &Sealer,
    table: &str,
    column: &str,
    json_string: bool,
) -> Result<u64, Error> {
    let context = format!("sealing {table}.{column}");
    let rows = sqlx::query(&format!("SELECT id, {column} FROM {table}"))
        .fetch_all(&mut *connection)
        .await
        .map_err(backend(&context))?;
    let mut sealed = 0;
    for row in rows {
        let id: String = row.try_get("id").map_err(backend(&context))?;
        // A column that may be empty (NULL) has nothing to seal there.
        let Some(stored): Option<String> = row.try_get(column).map_err(backend(&context))? else { continue };
        let inner =
            if json_string { serde_json::from_str::<String>(&stored).ok() } else { Some(stored.clone()) };
        if inner.as_deref().is_some_and(Sealer::is_sealed) {
            continue;
        }
        let mut value = seal(sealer, table, column, &id, &stored)?;
        if json_string {
            value = serde_json::Value::String(value).to_string();
        }
        sqlx::query(&format!("UPDATE {table} SET {column} = ? WHERE id = ?"))
            .bind(value)
            .bind(&id)
            .execute(&mut *connection)
            .await
            .map_err(backend(&context))?;
        sealed += 1;
    }
    Ok(sealed)
}
