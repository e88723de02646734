//! The idempotency records: the last answer given to each client, so a
//! retried write is answered from here instead of applied again.

use super::{SESSIONS, StateMachine, already_applied, sm_err};
use crate::raft::{Command, Reply, StorageError};
use crate::storage::Transaction;
use openraft::ErrorVerb;
use prost::Message as _;
use serde::{Deserialize, Serialize};

/// The last answer given to a client, by client id.
#[derive(Serialize, Deserialize)]
pub(super) struct Session {
    pub(super) sequence: u64,
    pub(super) response: Vec<u8>,
    /// The stamp of the entry that stored it (for expiry).
    #[serde(default)]
    pub(super) hlc: u64,
}

impl StateMachine {
    pub(super) fn session(&self, client_id: &str) -> Result<Option<Session>, StorageError> {
        let Some(bytes) = self
            .engine()
            .get(SESSIONS, client_id.as_bytes())
            .map_err(|e| sm_err(ErrorVerb::Read, e))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| sm_err(ErrorVerb::Read, e))
    }

    /// The stored answer when the command repeats a key already applied.
    pub(super) fn repeated(&self, command: &Command) -> Result<Option<Reply>, StorageError> {
        match &command.key {
            Some(key) => self.repeated_key(key),
            None => Ok(None),
        }
    }

    /// The stored answer when `key` was applied already.
    pub(super) fn repeated_key(&self, key: &crate::raft::IdempotencyKey) -> Result<Option<Reply>, StorageError> {
        let Some(session) = self.session(&key.client_id)? else {
            return Ok(None);
        };
        if key.sequence > session.sequence {
            return Ok(None);
        }
        if key.sequence == session.sequence {
            return Ok(Some(Reply {
                response: session.response,
            }));
        }
        // An older request of this client: applied long ago, its answer no
        // longer kept.
        let response = already_applied(&key.sequence.to_string(), &format!("client {}", key.client_id));
        Ok(Some(Reply {
            response: response.encode_to_vec(),
        }))
    }
}

/// Keeps `response` as the answer to `key`'s client for its sequence, so a
/// retry of that request is answered without applying it again.
pub(super) fn record_session(txn: &mut Transaction, key: &crate::raft::IdempotencyKey, response: Vec<u8>, hlc: u64) {
    let session = Session {
        sequence: key.sequence,
        response,
        hlc,
    };
    if let Ok(bytes) = serde_json::to_vec(&session) {
        txn.set(SESSIONS, key.client_id.as_bytes().to_vec(), bytes);
    }
}

/// Forgets idempotency records stored before `before_hlc` (sync's purge
/// does this in the same step as its tombstones).
pub fn purge_sessions(txn: &mut Transaction, before_hlc: u64) -> Result<u64, crate::storage::StorageError> {
    let mut old = Vec::new();
    let all = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
    for item in txn.scan(SESSIONS, all)? {
        let (key, bytes) = item?;
        let hlc = serde_json::from_slice::<Session>(&bytes).map_or(0, |s| s.hlc);
        if hlc < before_hlc {
            old.push(key.to_vec());
        }
    }
    let n = old.len() as u64;
    for key in old {
        txn.delete(SESSIONS, key);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Engine, MemoryEngine, RowVersion};
    use std::sync::Arc;

    #[test]
    fn idempotency_records_expire_by_the_stamp_that_stored_them() {
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        let mut txn = Transaction::new(engine.clone(), RowVersion::default());
        for (client, hlc) in [("old", 100u64), ("new", 300), ("legacy", 0)] {
            let session = Session {
                sequence: 1,
                response: Vec::new(),
                hlc,
            };
            txn.set(
                SESSIONS,
                client.as_bytes().to_vec(),
                serde_json::to_vec(&session).unwrap(),
            );
        }
        txn.commit().unwrap();
        let mut txn = Transaction::new(engine.clone(), RowVersion::default());
        assert_eq!(purge_sessions(&mut txn, 200).unwrap(), 2);
        txn.commit().unwrap();
        assert!(engine.get(SESSIONS, b"old").unwrap().is_none());
        assert!(engine.get(SESSIONS, b"legacy").unwrap().is_none());
        assert!(engine.get(SESSIONS, b"new").unwrap().is_some());
    }
}
