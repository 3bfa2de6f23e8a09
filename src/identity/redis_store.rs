//! A seen-store in Redis, shared by several bridge instances that consume
//! one queue: each id is a key set with `SET NX EX`, so the first instance
//! to meet an id wins and Redis forgets it after the retention.

use std::time::Duration;

use super::store::SeenStore;
use crate::error::{Error, Result};

/// A seen-store on a Redis server.
pub struct RedisStore {
    connection: redis::Connection,
    prefix: String,
    retention_secs: u64,
}

impl RedisStore {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379/0`); keys are
    /// `<prefix><id>`.
    pub fn connect(url: &str, prefix: &str, retention: Duration) -> Result<Self> {
        let client = redis::Client::open(url).map_err(|e| Error::Store(format!("{url}: {e}")))?;
        let connection = client
            .get_connection()
            .map_err(|e| Error::Store(format!("{url}: {e}")))?;
        Ok(RedisStore {
            connection,
            prefix: prefix.to_owned(),
            retention_secs: retention.as_secs().max(1),
        })
    }
}

impl SeenStore for RedisStore {
    fn seen_any(&mut self, ids: &[String]) -> Result<bool> {
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("SET")
                .arg(format!("{}{id}", self.prefix))
                .arg(1)
                .arg("NX")
                .arg("EX")
                .arg(self.retention_secs);
        }
        let replies: Vec<Option<String>> = pipe
            .query(&mut self.connection)
            .map_err(|e| Error::Store(e.to_string()))?;
        // SET NX answers nil for a key that already existed.
        Ok(replies.iter().any(Option::is_none))
    }

    /// Every `SET` is already on the server when `seen_any` returns.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}
