//! The thread-per-connection baseline: blocking std sockets, one OS thread per TCP connection.

use std::process::ExitCode;

use anyhow::Result;

use crate::handlers::ServeArgs;

pub fn serve(_args: &ServeArgs) -> Result<ExitCode> {
    anyhow::bail!("the threaded model is not implemented yet")
}
