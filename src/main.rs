//! netlab: one thread, one `mio::Poll`, every protocol. See README.md and ARCHITECTURE.md.

mod bench;
mod cli;
mod handlers;
mod ping;
mod reactor;
mod tftp_client;
mod threaded;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let result = match cli.command {
        cli::Command::Serve(args) => handlers::serve(args),
        cli::Command::Ping(args) => ping::run(args),
        cli::Command::Tftp(args) => tftp_client::run(args),
        cli::Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("netlab: {e:#}");
            ExitCode::from(2)
        }
    }
}
