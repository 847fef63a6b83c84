//! `netlab ping`: ICMP echo to one or many hosts, on the reactor.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct PingArgs {
    /// Hosts to ping.
    pub hosts: Vec<String>,
}

pub fn run(_args: PingArgs) -> Result<ExitCode> {
    anyhow::bail!("ping is not implemented yet")
}
