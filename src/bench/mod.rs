//! `netlab bench`: a load generator for both I/O models.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Scenario to run.
    pub scenario: String,
}

pub fn run(_args: BenchArgs) -> Result<ExitCode> {
    anyhow::bail!("bench is not implemented yet")
}
