//! Compiles proto/ into Rust with protox (a pure-Rust protobuf compiler), so
//! building ChronosDB needs no protoc or other system package.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/chronos.proto", "proto/raft.proto", "proto/sync.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
