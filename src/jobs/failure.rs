//! Turning the errors of engines, storage and the pipeline into operation failures.

use crate::domain::{Code, Failure, reason};
use crate::pipeline::unpack;
use crate::{engine, metadata, pipeline, storage};

/// The failure for an engine error.
pub(super) fn from_engine(error: &engine::Error) -> Failure {
    let (code, reason) = error.code_and_reason();
    Failure::new(code, reason, error.to_string())
}

/// The failure for an engine error while loading into a target database: the target,
/// not a source, is what could not be reached.
pub(super) fn from_load(error: &engine::Error) -> Failure {
    match error {
        engine::Error::Unreachable(message) => {
            Failure::new(Code::Unavailable, reason::TARGET_UNREACHABLE, message.clone())
        }
        other => from_engine(other),
    }
}

/// Attaches an engine's warnings to the operation, with code OK.
pub(super) fn warn_all(ctx: &crate::operations::JobContext, warnings: &[engine::Warning]) {
    for warning in warnings {
        ctx.warn(Failure::new(Code::Ok, warning.reason, warning.message.clone()));
    }
}

/// The failure for a storage error.
pub(super) fn from_storage(error: &storage::Error) -> Failure {
    let code = match error {
        storage::Error::Unsupported(_) => {
            return Failure::new(
                Code::FailedPrecondition,
                reason::DESTINATION_NOT_SUPPORTED,
                error.to_string(),
            );
        }
        storage::Error::Denied { .. } => {
            return Failure::new(Code::PermissionDenied, reason::STORAGE_DENIED, error.to_string());
        }
        storage::Error::Refused(_) => {
            return Failure::new(Code::PermissionDenied, reason::URL_NOT_ALLOWED, error.to_string());
        }
        storage::Error::NotFound { .. } => Code::NotFound,
        _ => Code::Unavailable,
    };
    Failure::new(code, reason::STORAGE_FAILED, error.to_string())
}

/// The failure for an import source (a file or URL) that cannot be read: absent is
/// `SOURCE_NOT_FOUND`, refused credentials `STORAGE_DENIED`, a URL the policy refuses
/// `URL_NOT_ALLOWED`, anything else `SOURCE_UNREACHABLE`.
pub(super) fn from_source(error: &storage::Error) -> Failure {
    match error {
        storage::Error::NotFound { .. } => {
            Failure::new(Code::NotFound, reason::SOURCE_NOT_FOUND, error.to_string())
        }
        storage::Error::Denied { .. } | storage::Error::Refused(_) => from_storage(error),
        _ => Failure::new(Code::Unavailable, reason::SOURCE_UNREACHABLE, error.to_string()),
    }
}

/// The failure for a catalog error.
pub(super) fn from_metadata(error: &metadata::Error) -> Failure {
    match error {
        metadata::Error::NotFound { .. } => {
            Failure::new(Code::NotFound, reason::NOT_FOUND, error.to_string())
        }
        _ => internal(error),
    }
}

/// The failure for a pipeline error: a source read error carries the engine's error
/// when there is one (corrupt data, connection lost).
pub(super) fn from_pipeline(error: &pipeline::Error) -> Failure {
    match error {
        pipeline::Error::Source(io) => {
            match io.get_ref().and_then(|inner| inner.downcast_ref::<engine::Error>()) {
                Some(engine_error) => from_engine(engine_error),
                None => Failure::new(
                    Code::Unavailable,
                    reason::SOURCE_UNREACHABLE,
                    format!("reading from the database failed: {io}"),
                ),
            }
        }
        pipeline::Error::Storage(storage_error) => from_storage(storage_error),
        other => internal(other),
    }
}

/// The failure for reading back stored or imported data: damage is `SOURCE_CORRUPT`; a
/// read error carries the engine's error when a live source broke.
pub(super) fn from_unpack(error: &unpack::Error) -> Failure {
    match error {
        unpack::Error::Corrupt(message) => {
            Failure::new(Code::DataLoss, reason::SOURCE_CORRUPT, message.clone())
        }
        unpack::Error::KeyMissing(message) => {
            Failure::new(Code::FailedPrecondition, reason::DECRYPTION_KEY_MISSING, message.clone())
        }
        unpack::Error::Source(io) => {
            let inner = io.get_ref();
            if let Some(storage_error) = inner.and_then(|inner| inner.downcast_ref::<storage::Error>()) {
                return from_source(storage_error);
            }
            match inner.and_then(|inner| inner.downcast_ref::<engine::Error>()) {
                Some(engine_error) => from_engine(engine_error),
                None => Failure::new(
                    Code::Unavailable,
                    reason::SOURCE_UNREACHABLE,
                    format!("reading the source failed: {io}"),
                ),
            }
        }
        unpack::Error::Spool(_) => internal(error),
    }
}

/// The failure of a load that read an [`unpack::Unpacking`] stream: the stream's own
/// failure when it has one (damaged or changed data, the source lost), the rest of it
/// read first when the engine stopped early, so that damaged data is reported as such
/// whatever the engine made of it (as when the data was checked whole before loading);
/// else the engine's error.
pub(super) async fn of_streamed_load<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut unpack::Unpacking<R>,
    error: &engine::Error,
) -> Failure {
    if stream.is_reading() {
        // A failure to read is kept by the stream itself.
        let _ = tokio::io::copy(stream, &mut tokio::io::sink()).await;
    }
    match stream.failure() {
        Some(stream_error) => from_unpack(stream_error),
        None => from_load(error),
    }
}

/// An unexpected failure: the whole chain goes to the log, a short message to the client.
pub(super) fn internal(error: &dyn std::error::Error) -> Failure {
    tracing::error!(error = %DisplayChain(error), "internal error in a job");
    Failure::new(Code::Internal, reason::INTERNAL, "internal error; see the server log")
}

struct DisplayChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
