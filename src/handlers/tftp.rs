//! TFTP (protocols/tftp) on the reactor, with the real file system behind the crate's file trait.

use anyhow::Result;
use clap::Args;
use netlab_core::Service;

use crate::cli::Bind;

#[derive(Args, Debug, Clone)]
pub struct TftpArgs {
    /// TFTP: UDP address to listen on, or `off`.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:6969")]
    pub tftp: Bind,
}

pub fn register(args: &TftpArgs, _services: &mut Vec<Box<dyn Service>>) -> Result<()> {
    if args.tftp.0.is_some() {
        log::warn!("tftp is not implemented yet");
    }
    Ok(())
}
