//! Importing into registered databases: from files under the allowed roots, or from a
//! live server of the same engine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Cellar, Error, ImportDatabase};
use crate::domain::{Database, Invalid, Operation, OperationKind};
use crate::jobs::{ImportJob, ImportSource};
use crate::operations::Submission;

impl Cellar {
    /// Starts replacing a database's data with imported data; returns the operation.
    pub async fn import_database(&self, request: ImportDatabase) -> Result<Operation, Error> {
        if let Some(existing) =
            self.existing_operation(OperationKind::ImportDatabase, &request.request_id).await?
        {
            return Ok(existing);
        }
        let target = self.store.get_database(request.database_id).await?;
        let engine = self.engine(target.engine)?;
        let source = match request.source_connection_uri {
            Some(uri) => {
                Database::check_engine_matches_uri(target.engine, &uri).map_err(|_| {
                    Invalid::field(
                        "source_connection_uri",
                        format!("must be a {} server, like the target database", target.engine),
                    )
                })?;
                ImportSource::Live(uri)
            }
            None => ImportSource::Files(self.allowed_files(&request.source_uris)?),
        };
        let job = ImportJob::new(engine, target.clone(), source, self.places.spool_dir.clone());
        let submission = Submission {
            kind: OperationKind::ImportDatabase,
            database_id: Some(target.id),
            backup: None,
            insert_backup: false,
            request_id: request.request_id,
            job: Arc::new(job),
        };
        Ok(self.manager.submit(submission).await?)
    }

    // The local paths of `file://` sources, each inside an allowed root once resolved
    // (so `..` and links cannot leave it). Other schemes arrive with their storage.
    fn allowed_files(&self, sources: &[url::Url]) -> Result<Vec<PathBuf>, Error> {
        let mut invalid = Invalid::default();
        let mut paths = Vec::new();
        for (index, source) in sources.iter().enumerate() {
            let field = format!("source_uris[{index}]");
            if source.scheme() != "file" {
                return Err(Error::Unimplemented(format!(
                    "{field}: imports from {}:// sources are not supported yet; use file://",
                    source.scheme()
                )));
            }
            let Ok(path) = source.to_file_path() else {
                invalid.add(field, "is not a local file path");
                continue;
            };
            match std::fs::canonicalize(&path) {
                Ok(resolved) if self.under_a_root(&resolved) => paths.push(resolved),
                Ok(_) => {
                    return Err(Error::PermissionDenied(format!(
                        "{field}: {} is not under an allowed file root (see --file-root)",
                        path.display()
                    )));
                }
                Err(error) => invalid.add(field, format!("cannot read {}: {error}", path.display())),
            }
        }
        invalid.into_result(|| paths).map_err(Error::from)
    }

    fn under_a_root(&self, path: &Path) -> bool {
        self.places
            .file_roots
            .iter()
            .filter_map(|root| std::fs::canonicalize(root).ok())
            .any(|root| path.starts_with(root))
    }
}
