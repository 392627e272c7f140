//! `atlas-sim`: runs the MongoDB Atlas simulator (see `atlas-sim --help` and
//! `atlas_sim`). Prints one JSON line with URLs and seeded credentials.

use std::io::Write as _;
use std::process::ExitCode;

use atlas_sim::{cli, Simulator};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match cli::parse(&args) {
        Ok(cli::Command::Help) => {
            print!("{}", cli::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(cli::Command::Run(cfg)) => cfg,
        Err(e) => {
            eprintln!("atlas-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let sim = match Simulator::start(*cfg).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("atlas-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let line = match serde_json::to_string(&sim.startup_info()) {
        Ok(line) => line,
        Err(e) => {
            eprintln!("atlas-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    drop(stdout);
    wait_for_signal().await;
    sim.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
