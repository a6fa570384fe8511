//! `conclave-prover`: a bring-your-own prover that Conclave nodes (and W3bstream nodes) call
//! over W3bstream's VM gRPC protocols, both versions, running projects' code with the `wasm`
//! backend (docs/provers.md).

use clap::Parser;
use conclave_provers::byop::DEFAULT_MAX_MESSAGE;
use conclave_provers::byop::server::{Backend, ProverService, serve};
use conclave_provers::wasm::{WasmEngine, WasmLimits};

/// How long calls in flight may finish after SIGTERM.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Parser)]
#[command(
    version,
    about = "Serves W3bstream's VM gRPC protocols (vm.VM and vm_runtime.VmRuntime) with a Conclave backend"
)]
struct Args {
    /// Address to listen on (host:port). Keep it on 127.0.0.1 or a private network: the
    /// protocol has no authentication of its own.
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: String,
    /// The backend that runs projects' code. Only `wasm` is served so far.
    #[arg(long, default_value = "wasm", value_parser = ["wasm"])]
    backend: String,
    /// Largest gRPC message taken or sent, in bytes (a project's code travels in one).
    #[arg(long, default_value_t = DEFAULT_MAX_MESSAGE)]
    max_message_bytes: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber_init();
    let args = Args::parse();
    let engine = WasmEngine::new(WasmLimits::default())?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let address = listener.local_addr()?;
    // One line a script (or a test) can read the bound address from.
    println!(
        "conclave-prover listening on {address} (backend {})",
        args.backend
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        ProverService::new(Backend::Wasm(engine)),
        listener,
        args.max_message_bytes,
        async {
            let _ = stopped.await;
        },
    ));
    // SIGTERM (systemd, containers) and Ctrl-C both stop it: no new calls, calls in flight get
    // a grace period, then idle client connections are closed.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping");
    let _ = stop.send(());
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(served) => served??,
        Err(_) => tracing::info!("closing the connections still open"),
    }
    Ok(())
}

fn tracing_subscriber_init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
