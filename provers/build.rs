//! Compiles W3bstream's VM protocols (and gRPC health) from `proto/` with protox: no protoc
//! binary is needed on the build machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["vm_runtime.proto", "vm.proto", "health.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed=../proto/{proto}");
    }
    let fds = protox::compile(protos, ["../proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
