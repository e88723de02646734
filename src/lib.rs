//! ChronosDB: a small distributed SQL database for edge gateways and IoT.
pub mod sql;
pub mod storage;
