//! Raft's types in the protobuf messages that carry them between members:
//! the queued writes of a write forwarded to the leader. (Forwarding moves
//! to server/ with the replication issue; so does this file.)

use super::QueuedWrite;
use crate::proto::{batch_from_proto, params_from_proto, params_to_proto, v1};

/// The queued writes of a request forwarded between members.
pub fn queued_from_proto(writes: &[v1::QueuedWrite]) -> Vec<QueuedWrite> {
    writes
        .iter()
        .map(|w| QueuedWrite {
            sequence: w.sequence,
            sql: w.sql.clone(),
            params: params_from_proto(w.params.clone(), w.named_params.clone()),
            batch: batch_from_proto(&w.batch),
        })
        .collect()
}

/// A queued write as sent between members.
pub fn queued_to_proto(w: &QueuedWrite) -> v1::QueuedWrite {
    let (params, named_params) = params_to_proto(&w.params);
    v1::QueuedWrite {
        sequence: w.sequence,
        sql: w.sql.clone(),
        params,
        named_params,
        batch: w
            .batch
            .iter()
            .map(|s| {
                let (params, named_params) = params_to_proto(&s.params);
                v1::Statement {
                    sql: s.sql.clone(),
                    params,
                    named_params,
                }
            })
            .collect(),
    }
}
