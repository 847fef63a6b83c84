//! `netlab tftp get|put`: a TFTP client on the same protocol crate as the server.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct TftpArgs {
    /// get or put
    pub action: String,
}

pub fn run(_args: TftpArgs) -> Result<ExitCode> {
    anyhow::bail!("the tftp client is not implemented yet")
}
