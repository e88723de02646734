//! The idempotency records: the last answer given to each client, so a
//! retried write is answered from here instead of applied again.

use super::{SESSIONS, StateMachine, sm_err};
use crate::raft::{Command, Reply, StorageError};
use crate::sql::Answer;
use crate::storage::Transaction;
use openraft::ErrorVerb;
use serde::{Deserialize, Serialize};

/// The last answer given to a client, by client id.
#[derive(Serialize, Deserialize)]
pub(super) struct Session {
    pub(super) sequence: u64,
    /// None in a record kept by 0.1.0, which held the answer as protobuf
    /// bytes (`response`, no longer read): a retry of that request is told
    /// it was applied before, as when its record has expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) answer: Option<Answer>,
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
        let of = || format!("client {}", key.client_id);
        if key.sequence == session.sequence {
            let answer = session
                .answer
                .unwrap_or_else(|| Answer::already_applied(key.sequence, &of()));
            return Ok(Some(Reply::Write(answer)));
        }
        // An older request of this client: applied long ago, its answer no
        // longer kept.
        Ok(Some(Reply::Write(Answer::already_applied(key.sequence, &of()))))
    }
}

/// Keeps `answer` as the answer to `key`'s client for its sequence, so a
/// retry of that request is answered without applying it again.
pub(super) fn record_session(txn: &mut Transaction, key: &crate::raft::IdempotencyKey, answer: &Answer, hlc: u64) {
    // Serialized from a borrow: an answer with RETURNING rows can be large.
    #[derive(Serialize)]
    struct Stored<'a> {
        sequence: u64,
        answer: &'a Answer,
        hlc: u64,
    }
    let session = Stored {
        sequence: key.sequence,
        answer,
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
                answer: None,
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

    /// A record kept by 0.1.0 held its answer as protobuf bytes, which raft
    /// no longer reads: the retry is told it was applied before, and does
    /// not run again.
    #[test]
    fn a_record_from_0_1_0_answers_applied_before() {
        let dir = tempfile::tempdir().unwrap();
        let sm = super::super::tests::open_in(dir.path());
        let old = br#"{"sequence":3,"response":[8,1,18,0],"hlc":5}"#;
        let mut batch = crate::storage::WriteBatch::default();
        batch
            .writes
            .entry(SESSIONS.to_string())
            .or_default()
            .insert(b"c1".to_vec(), Some(old.to_vec()));
        sm.engine().apply(batch).unwrap();
        let key = crate::raft::IdempotencyKey {
            client_id: "c1".into(),
            sequence: 3,
        };
        let Some(Reply::Write(answer)) = sm.repeated_key(&key).unwrap() else {
            panic!("the repeated key was not answered");
        };
        assert!(answer.is_already_applied(), "{answer:?}");
        key_is_fresh_after(&sm, &key);
    }

    fn key_is_fresh_after(sm: &StateMachine, key: &crate::raft::IdempotencyKey) {
        let next = crate::raft::IdempotencyKey {
            sequence: key.sequence + 1,
            ..key.clone()
        };
        assert_eq!(sm.repeated_key(&next).unwrap(), None);
    }
}
