//! SQL errors as gRPC statuses: the message says what was wrong, and the
//! `chronos-error-code` metadata carries the stable code.

use crate::sql::SqlError;
use tonic::{Code, Status};

pub const ERROR_CODE_KEY: &str = "chronos-error-code";

pub fn status_of(e: &SqlError) -> Status {
    let code = match e {
        SqlError::Storage(_) => Code::Internal,
        SqlError::QueryTimeout => Code::DeadlineExceeded,
        _ => Code::InvalidArgument,
    };
    let mut status = Status::new(code, e.to_string());
    if let Ok(v) = e.code().parse() {
        status.metadata_mut().insert(ERROR_CODE_KEY, v);
    }
    status
}
