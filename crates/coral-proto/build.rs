//! Compiles Coral's `.proto` files (under `proto/` at the workspace root) with a
//! vendored `protoc`, so a fresh machine needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // Read at run time: a build-script binary can be reused from another
    // checkout of the same sources (a shared CARGO_TARGET_DIR), so a path
    // baked in at compile time may point at a checkout that is gone.
    let manifest = std::env::var("CARGO_MANIFEST_DIR")?;
    let root = std::path::Path::new(&manifest).join("../../proto");
    let files = [
        "coral/common/v1/telemetry.proto",
        "coral/common/v1/beyla.proto",
        "coral/agent/v1/agent.proto",
        "coral/colony/v1/colony.proto",
        "google/rpc/status.proto",
    ];
    let paths: Vec<_> = files.iter().map(|f| root.join(f)).collect();
    for p in &paths {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure().compile_with_config(config, &paths, &[root])?;
    Ok(())
}
