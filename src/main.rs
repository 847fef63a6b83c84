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
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        // `netlab` or `netlab tftp` alone: show what there is, as clap does (exit 2).
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        Err(e) => {
            // One line, not clap's usage block: scripts and tests read the first line of stderr.
            let text = e.to_string();
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            let mut first = lines.next().unwrap_or("invalid arguments").to_string();
            if first.ends_with(':') {
                // "the following required arguments were not provided:" names them on the next line.
                first = format!("{first} {}", lines.next().unwrap_or_default());
            }
            eprintln!("netlab: {} (see --help)", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
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
