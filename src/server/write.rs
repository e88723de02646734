//! A client's write request as raft takes it ([`crate::raft::ClientWrite`]),
//! and raft's answer and refusals as the client gets them: protobuf and
//! gRPC status stay on this side of raft.

use crate::proto::v1::{ExecuteRequest, ExecuteResponse};
use crate::proto::{batch_from_proto, execute_answer, params_from_proto, request_script, v1};
use crate::raft::{ClientWrite, IdempotencyKey, QueuedWrite, RaftNode};
use tonic::Status;

/// Replicates the request's write through `node` (which sends it on to
/// the leader when it does not lead) and answers with its outcome.
pub async fn replicate(node: &RaftNode, request: &ExecuteRequest) -> Result<ExecuteResponse, Status> {
    let answer = node
        .write(client_write(request), request.forwarded)
        .await
        .map_err(Status::from)?;
    Ok(execute_answer(&answer))
}

fn client_write(request: &ExecuteRequest) -> ClientWrite {
    let (params, batch) = request_script(request);
    ClientWrite {
        sql: request.sql.clone(),
        params,
        batch,
        queued: queued_from_proto(&request.queued_batch),
        key: (!request.client_id.is_empty()).then(|| IdempotencyKey {
            client_id: request.client_id.clone(),
            sequence: request.sequence,
        }),
    }
}

/// The queued writes of a request that a member of version 0.1.0 forwarded
/// through Execute (members now forward over the peer service).
fn queued_from_proto(writes: &[v1::QueuedWrite]) -> Vec<QueuedWrite> {
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
