//! One snapshot of a live database stored as one object: engine -> pipeline -> storage
//! writer, committed only when the whole stream was read, compressed and hashed. What
//! backups and exports share.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::failure;
use crate::domain::{Compression, ConnectionUri, Failure};
use crate::engine::{Engine, Snapshot};
use crate::operations::JobContext;
use crate::pipeline;
use crate::storage::{ObjectWriter, Storage};

/// A snapshot stored as one committed object.
pub(super) struct StoredSnapshot {
    /// Sizes and checksum of the object.
    pub(super) stored: pipeline::Stored,
    /// The server's version.
    pub(super) server_version: String,
    /// The data format (`rdb`, `pg_custom`, `mysql_sql`).
    pub(super) format: &'static str,
    /// The format's own version.
    pub(super) format_version: String,
    /// Items (keys, tables) in the snapshot.
    pub(super) items: u64,
    /// Engine facts for the manifest.
    pub(super) details: std::collections::BTreeMap<String, String>,
}

/// What to snapshot and where to put it.
pub(super) struct Target<'a> {
    /// The server.
    pub(super) uri: &'a ConnectionUri,
    /// Its logical database, for engines that have them.
    pub(super) database: Option<&'a str>,
    /// The store and the object's key on it.
    pub(super) storage: &'a dyn Storage,
    pub(super) key: &'a str,
    /// How to compress it.
    pub(super) compression: Compression,
    /// Whom to encrypt it to (after compressing); empty: not encrypted.
    pub(super) recipients: &'a [crate::domain::AgeRecipient],
}

/// Snapshots `target.database` of the server into the object `target.key`, committed;
/// progress counts on from `before` (bytes, items) of earlier objects. On failure
/// nothing is left at the key (the writer is aborted). Cancel-safe: dropping the future
/// drops the snapshot (its connection or dump tool) and the uncommitted writer, which
/// discards its partial object.
pub(super) async fn store_snapshot(
    ctx: &JobContext,
    engine: &Arc<dyn Engine>,
    target: Target<'_>,
    before: (u64, u64),
) -> Result<StoredSnapshot, Failure> {
    let phase = |phase: &'static str| ctx.set_phase(phase);
    let snapshot = engine
        .snapshot(target.uri, target.database, &phase)
        .await
        .map_err(|error| failure::from_engine(&error))?;
    tracing::info!(key = target.key, database = ?target.database, ?snapshot, "snapshot started");
    let Snapshot {
        server_version,
        format,
        format_version,
        bytes_total,
        items_total,
        details,
        items_done,
        produced_here,
        body,
        ..
    } = snapshot;
    let threads = if produced_here { pipeline::Threads::One } else { pipeline::Threads::PerCore };
    let (bytes_before, items_before) = before;
    ctx.set_totals(bytes_before + bytes_total.unwrap_or(0), items_before + items_total.unwrap_or(0));
    let mut writer =
        target.storage.writer(target.key).await.map_err(|error| failure::from_storage(&error))?;
    let items_now = || items_done.as_ref().map_or(0, |done| done.load(Ordering::Relaxed));
    // The engine's phase (`dumping`, `snapshotting`) holds until its first bytes
    // arrive: a dump waiting for a lock, or a server still writing its RDB, is not
    // uploading yet.
    let mut uploading = false;
    let mut on_progress = |bytes: u64| {
        if !uploading && bytes > 0 {
            uploading = true;
            ctx.set_phase("uploading");
        }
        ctx.set_done(bytes_before + bytes, items_before + items_now());
    };
    let stored = match pipeline::store_with(
        body,
        target.compression,
        threads,
        target.recipients,
        writer.as_mut(),
        &mut on_progress,
    )
    .await
    {
        Ok(stored) => stored,
        Err(error) => {
            abort(writer).await;
            return Err(failure::from_pipeline(&error));
        }
    };
    let items = items_total.unwrap_or(0).max(items_now());
    ctx.set_done(bytes_before + stored.logical_bytes, items_before + items);
    writer.commit().await.map_err(|error| failure::from_storage(&error))?;
    Ok(StoredSnapshot { stored, server_version, format, format_version, items, details })
}

/// Discards a writer's partial object, logging (not failing) when that fails.
pub(super) async fn abort(writer: Box<dyn ObjectWriter>) {
    if let Err(error) = writer.abort().await {
        tracing::warn!(%error, "cannot discard a partial object");
    }
}
