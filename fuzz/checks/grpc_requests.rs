//! Client and peer requests as bytes off the wire: protobuf decoding, then
//! the checks a node runs before a request may enter the replicated log
//! (parameters bound, statements parsed and grouped, limits applied).
//!
//! Shared by the cargo-fuzz target of the same name and by
//! tests/it/fuzz_replay.rs, which `cargo test` runs.

use chronos::proto::v1::{ExecuteRequest, QueryRequest, SubscribeRequest};
use chronos::proto::{raft, sync};
use prost::Message;

pub fn check(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            if let Ok(request) = ExecuteRequest::decode(bytes) {
                let (params, batch) = chronos::proto::request_script(&request);
                let units = match batch.is_empty() {
                    true => chronos::sql::script::prepare(&request.sql, &params),
                    false => chronos::sql::script::prepare_batch(&batch),
                };
                if let Ok(units) = units {
                    let _ =
                        chronos::server::Limits::from(&chronos::config::LimitsConfig::default()).check_units(&units);
                }
            }
        }
        1 => {
            if let Ok(request) = QueryRequest::decode(bytes) {
                let params = chronos::proto::params_from_proto(request.params, request.named_params);
                let _ = chronos::sql::parser::parse_one_with(&request.sql, &params);
            }
        }
        2 => {
            if let Ok(sync::PushRequest { batch: Some(batch), .. }) = sync::PushRequest::decode(bytes) {
                let _ = chronos::sync::batch::decode_changes(&batch.table, &batch.changes);
            }
            let _ = SubscribeRequest::decode(bytes);
        }
        _ => {
            let _ = raft::RaftMessage::decode(bytes);
            let _ = raft::SnapshotChunk::decode(bytes);
        }
    }
}
