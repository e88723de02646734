//! Applying one committed entry: its stamp, then a client's script, a
//! group-commit entry's writes, a member's queued writes or a feature's
//! operation, each with its session record, in one atomic batch.

use super::sessions::record_session;
use super::{APPLIED, LAST_HLC, MEMBERSHIP, Membership, STATE, StateMachine, sm_err};

use crate::raft::hlc::{Timestamp, entry_stamp};
use crate::raft::{Command, Entry, Reply, StorageError};
use crate::raft::{FeatureOp, OpError};
use crate::sql::{Answer, ApplyContext};
use crate::storage::{RowVersion, Transaction, WriteBatch};
use openraft::{EntryPayload, ErrorVerb};

impl StateMachine {
    /// Applies one entry (on a blocking thread: sled and SQL are synchronous).
    pub(super) fn apply_entry(&self, entry: Entry) -> Result<Reply, StorageError> {
        let log_id = entry.log_id;
        let applied = serde_json::to_vec(&Some(log_id)).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let mut batch = WriteBatch::default();
        batch
            .writes
            .entry(STATE.to_string())
            .or_default()
            .insert(APPLIED.to_vec(), Some(applied.clone()));
        let command = match entry.payload {
            EntryPayload::Blank => None,
            EntryPayload::Membership(m) => {
                let stored = Membership::new(Some(log_id), m);
                let bytes = serde_json::to_vec(&stored).map_err(|e| sm_err(ErrorVerb::Write, e))?;
                batch
                    .writes
                    .entry(STATE.to_string())
                    .or_default()
                    .insert(MEMBERSHIP.to_vec(), Some(bytes));
                None
            }
            EntryPayload::Normal(c) => Some(c),
        };
        // Applied without a flush: the log entry is on disk already, and
        // after a crash Raft applies again whatever the state lost.
        let (Some(command), false) = (command, self.witness) else {
            self.engine().apply(batch).map_err(|e| sm_err(ErrorVerb::Write, e))?;
            return Ok(Reply::default());
        };
        if let Some(reply) = self.repeated(&command)? {
            self.engine().apply(batch).map_err(|e| sm_err(ErrorVerb::Write, e))?;
            return Ok(reply);
        }
        // Stamps increase in log order and stay above every version merged
        // so far, so a later local write always outranks what it overwrites.
        let last: u64 = self.read_state(LAST_HLC)?.unwrap_or(0);
        let merged = command.op.as_ref().map_or(0, |op| self.features.ops.least_stamp(op));
        let hlc = entry_stamp(command.hlc, last, merged);
        let stamp = Timestamp::from_u64(hlc);
        self.clock.observe(stamp);
        let hlc_bytes = serde_json::to_vec(&hlc).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let ctx = ApplyContext {
            now_ms: stamp.physical_ms,
            version: RowVersion {
                hlc,
                site: command.site,
            },
            change: self.feed_base.load(std::sync::atomic::Ordering::Relaxed) + log_id.index,
        };
        // What every entry writes beside its effects; `answer` is kept for
        // the command's key (a feature's operation has none).
        let finish = |answer: Option<&Answer>, txn: &mut Transaction| -> Result<(), crate::storage::StorageError> {
            self.features.recorder.record_entry(txn, log_id.index, hlc)?;
            txn.set(STATE, APPLIED.to_vec(), applied.clone());
            txn.set(STATE, LAST_HLC.to_vec(), hlc_bytes.clone());
            if let (Some(key), Some(answer)) = (&command.key, answer) {
                record_session(txn, key, answer, hlc);
            }
            Ok(())
        };
        if let Some(op) = &command.op {
            return self.apply_op(op, ctx, batch, finish);
        }
        if !command.queued.is_empty() {
            return self.apply_queued(&command, ctx, finish);
        }
        if !command.group.is_empty() {
            return self.apply_group(&command, ctx, hlc, finish);
        }
        let mut answer = Answer::default();
        self.db
            .apply_script(command.units(), ctx, |outcome, txn: &mut Transaction| {
                answer = Answer::of(outcome);
                finish(Some(&answer), txn)
            })
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        Ok(Reply::Write(answer))
    }

    /// Applies a feature's operation (raft/operation.rs). When it is
    /// refused (a batch that does not fit, say) nothing of it is written
    /// but the entry still counts as applied, and the reply says why.
    pub(super) fn apply_op(
        &self,
        op: &FeatureOp,
        ctx: ApplyContext,
        batch: WriteBatch,
        finish: impl Fn(Option<&Answer>, &mut Transaction) -> Result<(), crate::storage::StorageError>,
    ) -> Result<Reply, StorageError> {
        let began = std::time::Instant::now();
        let result = self.db.apply_with(ctx, |txn| -> Result<Vec<u8>, OpError> {
            let response = self.features.ops.apply(txn, op)?;
            finish(None, txn)?;
            Ok(response)
        });
        tracing::debug!(
            applied_ms = began.elapsed().as_millis() as u64,
            "applied a feature operation"
        );
        match result {
            Ok(response) => Ok(Reply::Op(response)),
            Err(OpError::Storage(e)) => Err(sm_err(ErrorVerb::Write, e)),
            Err(OpError::Refused { reason, reply }) => {
                tracing::warn!(error = %reason, "operation refused");
                self.engine().apply(batch).map_err(|e| sm_err(ErrorVerb::Write, e))?;
                Ok(Reply::Op(reply))
            }
        }
    }

    /// Applies a member's queued writes, each as if sent alone. Writes at
    /// or below the queue's last applied sequence were applied by an
    /// earlier entry (the member resent them after losing the answer) and
    /// are skipped.
    pub(super) fn apply_queued(
        &self,
        command: &Command,
        ctx: ApplyContext,
        finish: impl FnOnce(Option<&Answer>, &mut Transaction) -> Result<(), crate::storage::StorageError>,
    ) -> Result<Reply, StorageError> {
        let last = match &command.key {
            Some(key) => self.session(&key.client_id)?.map_or(0, |s| s.sequence),
            None => 0,
        };
        let fresh: Vec<_> = command.queued.iter().filter(|w| w.sequence > last).collect();
        let scripts = fresh.iter().map(|w| w.units()).collect();
        let mut answer = Answer::default();
        self.db
            .apply_each(scripts, ctx, |outcomes, txn| {
                let mut applied = outcomes.iter();
                let each = command
                    .queued
                    .iter()
                    .map(|w| match w.sequence > last {
                        true => applied.next().map(Answer::of).unwrap_or_default(),
                        false => Answer::already_applied(w.sequence, "the queue"),
                    })
                    .collect();
                answer = Answer::list(each);
                finish(Some(&answer), txn)
            })
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        Ok(Reply::Write(answer))
    }

    /// Applies a group-commit entry: each client's write as if sent alone,
    /// with its own idempotency record. The reply lists every write's
    /// answer in order (in `queued_outcomes`). A write whose key was
    /// applied before, by an earlier entry or earlier in this group, gets
    /// that answer instead of running again.
    pub(super) fn apply_group(
        &self,
        command: &Command,
        ctx: ApplyContext,
        hlc: u64,
        finish: impl FnOnce(Option<&Answer>, &mut Transaction) -> Result<(), crate::storage::StorageError>,
    ) -> Result<Reply, StorageError> {
        let mut picks: Vec<Pick> = Vec::with_capacity(command.group.len());
        for (i, write) in command.group.iter().enumerate() {
            let Some(key) = &write.key else {
                picks.push(Pick::Fresh);
                continue;
            };
            // The latest earlier write of this client in the group, if any.
            let earlier = (0..i).rev().find(|&j| {
                matches!(&command.group[j].key, Some(k) if k.client_id == key.client_id)
                    && matches!(picks[j], Pick::Fresh)
            });
            let answer = match earlier {
                Some(j) => match command.group[j].key.as_ref().map_or(0, |k| k.sequence) {
                    s if key.sequence > s => Pick::Fresh,
                    s if key.sequence == s => Pick::SameAs(j),
                    _ => Pick::Stored(Answer::already_applied(
                        key.sequence,
                        &format!("client {}", key.client_id),
                    )),
                },
                None => match self.repeated_key(key)? {
                    Some(Reply::Write(answer)) => Pick::Stored(answer),
                    Some(_) => Pick::Stored(Answer::already_applied(
                        key.sequence,
                        &format!("client {}", key.client_id),
                    )),
                    None => Pick::Fresh,
                },
            };
            picks.push(answer);
        }
        let scripts = command
            .group
            .iter()
            .zip(&picks)
            .filter(|(_, a)| matches!(a, Pick::Fresh))
            .map(|(w, _)| w.units())
            .collect();
        let mut answer = Answer::default();
        self.db
            .apply_each(scripts, ctx, |outcomes, txn| {
                let mut applied = outcomes.iter();
                let mut each: Vec<Answer> = Vec::with_capacity(picks.len());
                for (write, pick) in command.group.iter().zip(&picks) {
                    let one = match pick {
                        Pick::Fresh => {
                            let one = applied.next().map(Answer::of).unwrap_or_default();
                            if let Some(key) = &write.key {
                                record_session(txn, key, &one, hlc);
                            }
                            one
                        }
                        Pick::SameAs(j) => each[*j].clone(),
                        Pick::Stored(stored) => stored.clone(),
                    };
                    each.push(one);
                }
                answer = Answer::list(each);
                finish(Some(&answer), txn)
            })
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        Ok(Reply::Write(answer))
    }
}

/// What a write in a group-commit entry gets.
pub(super) enum Pick {
    /// It runs now.
    Fresh,
    /// Its key repeats an earlier write of the same group: that answer.
    SameAs(usize),
    /// Its key was applied by an earlier entry: the stored answer.
    Stored(Answer),
}

#[cfg(test)]
mod tests {
    use super::super::tests::open_in;
    use super::*;
    use crate::raft::LogId;

    fn grouped(key: Option<(&str, u64)>, sql: &str) -> crate::raft::command::GroupedWrite {
        crate::raft::command::GroupedWrite {
            key: key.map(|(client_id, sequence)| crate::raft::IdempotencyKey {
                client_id: client_id.to_string(),
                sequence,
            }),
            sql: sql.to_string(),
            params: Default::default(),
            batch: Vec::new(),
        }
    }

    fn group_entry(index: u64, group: Vec<crate::raft::command::GroupedWrite>) -> Entry {
        Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command {
                sql: String::new(),
                params: Default::default(),
                batch: Vec::new(),
                queued: Vec::new(),
                group,
                hlc: 1 << 20,
                site: 1,
                key: None,
                op: None,
            }),
        }
    }

    fn outcomes(reply: Reply) -> Vec<Answer> {
        match reply {
            Reply::Write(answer) => answer.each,
            other => panic!("a group was answered {other:?}"),
        }
    }

    /// A group-commit entry answers each write as if it had been sent alone:
    /// a failing write leaves the others, and a repeated key (in the same
    /// group or from an earlier entry) answers without running again.
    #[test]
    fn each_write_of_a_group_is_applied_and_answered_alone() {
        let dir = tempfile::tempdir().unwrap();
        let sm = open_in(dir.path());
        let first = sm
            .apply_entry(group_entry(
                1,
                vec![
                    grouped(Some(("a", 1)), "CREATE TABLE t (id INT PRIMARY KEY)"),
                    grouped(Some(("b", 1)), "INSERT INTO t VALUES (1)"),
                    grouped(Some(("c", 1)), "INSERT INTO t VALUES (1)"),
                    grouped(Some(("b", 1)), "INSERT INTO t VALUES (2)"),
                    grouped(None, "INSERT INTO t VALUES (3)"),
                ],
            ))
            .unwrap();
        let first = outcomes(first);
        assert_eq!(first.len(), 5);
        assert!(first[0].error.is_none() && first[1].error.is_none() && first[4].error.is_none());
        assert!(first[2].error.is_some(), "a duplicate key fails that write only");
        assert_eq!(first[3], first[1], "a repeated key in the group gets the first answer");
        let second = outcomes(
            sm.apply_entry(group_entry(
                2,
                vec![
                    grouped(Some(("b", 1)), "INSERT INTO t VALUES (9)"),
                    grouped(Some(("d", 1)), "INSERT INTO t VALUES (2)"),
                    grouped(None, "INSERT INTO t VALUES (3)"),
                ],
            ))
            .unwrap(),
        );
        assert_eq!(
            second[0], first[1],
            "a key applied by an earlier entry gets its stored answer"
        );
        assert!(
            second[1].error.is_none(),
            "the repeated write of the first group did not run"
        );
        assert!(
            second[2].error.is_some(),
            "the write without a key ran in the first group"
        );
    }
}
