//! The MySQL and MariaDB engine.

use async_trait::async_trait;

use super::{Engine, Error, Loaded, PhaseSink, ProgressSink, Snapshot};
use crate::domain::{ConnectionUri, EngineKind};

/// The MySQL and MariaDB engine.
#[derive(Debug, Clone, Default)]
pub struct MysqlEngine {
    // Read once MySQL dumps and loads are implemented.
    #[allow(dead_code)]
    tools: super::tool::ToolPath,
}

impl MysqlEngine {
    /// The engine, finding its tools on `tools`.
    pub fn new(tools: super::tool::ToolPath) -> Self {
        MysqlEngine { tools }
    }
}

#[async_trait]
impl Engine for MysqlEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Mysql
    }

    async fn snapshot(
        &self,
        _uri: &ConnectionUri,
        _database: Option<&str>,
        _phase: PhaseSink<'_>,
    ) -> Result<Snapshot, Error> {
        Err(Error::Unsupported("mysql backups are not supported yet".to_owned()))
    }

    async fn load(
        &self,
        _uri: &ConnectionUri,
        _database: Option<&str>,
        _data: &[std::path::PathBuf],
        _phase: PhaseSink<'_>,
        _progress: ProgressSink<'_>,
    ) -> Result<Loaded, Error> {
        Err(Error::Unsupported("mysql loads are not supported yet".to_owned()))
    }
}
