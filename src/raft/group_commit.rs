//! Group commit on the leader: client writes that arrive while earlier
//! ones are being committed go into the Raft log together, as one entry.
//!
//! openraft 0.9 appends and fsyncs each entry before it takes the next
//! client write, so one write per entry caps a node at one fsync per write
//! however many clients wait. Here at most `MAX_IN_FLIGHT` entries are
//! being committed at a time; writes that queue meanwhile are packed into
//! the next entry (up to `MAX_WRITES` or `MAX_BYTES`), which then costs one
//! append and one fsync on each member. A lone write goes alone, at once:
//! nothing waits for company. Each write is still applied as if sent alone
//! and acknowledged only once its entry is committed (durable on a
//! majority) and applied.

use super::command::{Command, GroupedWrite, Reply};
use super::{NodeId, Raft};
use crate::sql::Answer;
use openraft::error::{ClientWriteError, RaftError};
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Entries being committed at once. Measured on 3 nodes with 16-256
/// clients (docs/performance.md): 1 starves the pipeline, 2-8 are close,
/// 4 was best at 64 and 256 clients.
const MAX_IN_FLIGHT: usize = 4;
/// Writes in one entry.
const MAX_WRITES: usize = 512;
/// SQL bytes in one entry.
const MAX_BYTES: usize = 1 << 20;
/// Writes this large (a bulk INSERT) already spread their entry's cost over
/// many rows: they go alone, at once, as before group commit.
const LARGE_WRITE: usize = 16 << 10;

pub type RaftWriteError = RaftError<NodeId, ClientWriteError<NodeId, super::Member>>;

/// Why a write was not committed.
#[derive(Clone, Debug)]
pub enum WriteError {
    /// Raft refused it (not the leader, stopped, ...).
    Raft(RaftWriteError),
    /// The entry's reply did not hold one answer per write (a bug).
    BrokenReply(String),
}

/// The answer of one write, or why it was not committed.
pub type WriteResult = Result<Answer, WriteError>;

struct Pending {
    command: Command,
    reply: oneshot::Sender<WriteResult>,
}

/// Hands writes to the batching task.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::UnboundedSender<Pending>,
    raft: Raft,
}

impl GroupCommit {
    /// Starts the batching task for `raft`.
    pub fn start(raft: Raft) -> GroupCommit {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(run(raft.clone(), pending));
        GroupCommit { queue, raft }
    }

    async fn alone(&self, command: Command) -> WriteResult {
        self.raft
            .client_write(command)
            .await
            .map_err(WriteError::Raft)
            .and_then(|r| written_answer(r.data))
    }

    /// Commits a plain SQL write (no queued writes, no sync operation) and
    /// answers its answer.
    pub async fn write(&self, command: Command) -> WriteResult {
        if sql_bytes(&command) >= LARGE_WRITE {
            return self.alone(command).await;
        }
        let (reply, answer) = oneshot::channel();
        if self.queue.send(Pending { command, reply }).is_err() {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> WriteError {
    WriteError::Raft(RaftError::Fatal(openraft::error::Fatal::Stopped))
}

async fn run(raft: Raft, mut pending: mpsc::UnboundedReceiver<Pending>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        // Wait for a free slot first: what arrives meanwhile joins the group.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = pending.recv().await else { return };
        let mut bytes = sql_bytes(&first.command);
        let mut group = vec![first];
        while group.len() < MAX_WRITES && bytes < MAX_BYTES {
            match pending.try_recv() {
                Ok(next) => {
                    bytes += sql_bytes(&next.command);
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            commit(&raft, group).await;
            drop(slot);
        });
    }
}

fn sql_bytes(command: &Command) -> usize {
    command.sql.len() + command.batch.iter().map(|p| p.sql.len()).sum::<usize>()
}

/// Commits one entry for the group and answers each of its writes.
async fn commit(raft: &Raft, mut group: Vec<Pending>) {
    if group.len() == 1 {
        let Some(only) = group.pop() else { return };
        let result = raft
            .client_write(only.command)
            .await
            .map_err(WriteError::Raft)
            .and_then(|r| written_answer(r.data));
        let _ = only.reply.send(result);
        return;
    }
    let hlc = group.iter().map(|p| p.command.hlc).max().unwrap_or(0);
    let site = group[0].command.site;
    let (writes, replies): (Vec<GroupedWrite>, Vec<_>) = group
        .into_iter()
        .map(|p| {
            let c = p.command;
            let write = GroupedWrite {
                key: c.key,
                sql: c.sql,
                params: c.params,
                batch: c.batch,
            };
            (write, p.reply)
        })
        .unzip();
    let command = Command {
        sql: String::new(),
        params: Default::default(),
        batch: Vec::new(),
        queued: Vec::new(),
        group: writes,
        hlc,
        site,
        key: None,
        op: None,
    };
    match raft.client_write(command).await {
        Ok(written) => {
            let each = match written.data {
                Reply::Write(answer) => answer.each,
                _ => Vec::new(),
            };
            let count = replies.len();
            if each.len() != count {
                let broken = broken_reply(count, each.len());
                for reply in replies {
                    let _ = reply.send(Err(broken.clone()));
                }
                return;
            }
            for (reply, answer) in replies.into_iter().zip(each) {
                let _ = reply.send(Ok(answer));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(WriteError::Raft(e.clone())));
            }
        }
    }
}

/// A client write's answer from its entry's reply.
pub fn written_answer(reply: Reply) -> Result<Answer, WriteError> {
    match reply {
        Reply::Write(answer) => Ok(answer),
        other => Err(WriteError::BrokenReply(format!("a write was answered {other:?}"))),
    }
}

fn broken_reply(expected: usize, got: usize) -> WriteError {
    let message = format!("a group-commit entry answered {got} writes of {expected}");
    tracing::error!("{message}");
    WriteError::BrokenReply(message)
}
