//! Generates the gRPC code for go-plugin's and Vault's protocols from our own
//! .proto files, with a pure-Rust protobuf compiler (no system `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/goplugin/broker.proto",
        "proto/goplugin/controller.proto",
        "proto/goplugin/stdio.proto",
        "proto/vault/logical.proto",
        "proto/vault/backend.proto",
        "proto/vault/multiplexing.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Brokered connections use goplugin::broker::BrokerChannel, not tonic's Channel.
        .build_transport(false)
        .compile_fds(fds)?;
    Ok(())
}
