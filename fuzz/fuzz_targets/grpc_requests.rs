//! Client and peer requests as bytes off the wire: protobuf decoding, then
//! the checks a node runs before a request may enter the replicated log
//! (parameters bound, statements parsed and grouped, limits applied).
#![no_main]

#[path = "../checks/grpc_requests.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
