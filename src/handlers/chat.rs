//! TCP chat (protocols/chat) on the reactor.

use anyhow::Result;
use clap::Args;
use netlab_core::Service;

use crate::cli::Bind;

#[derive(Args, Debug, Clone)]
pub struct ChatArgs {
    /// TCP chat: address to listen on, or `off`.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:7777")]
    pub chat: Bind,
}

pub fn register(args: &ChatArgs, _services: &mut Vec<Box<dyn Service>>) -> Result<()> {
    if args.chat.0.is_some() {
        log::warn!("chat is not implemented yet");
    }
    Ok(())
}
