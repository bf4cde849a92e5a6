//! Command line only: parse the arguments and hand over to `progression_gateway::app`.

use clap::Parser;
use progression_gateway::app::{self, Cli};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(app::EXIT_FAILURE);
        }
    };
    runtime.block_on(app::run(cli))
}
