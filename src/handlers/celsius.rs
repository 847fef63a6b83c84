//! placeholder
use anyhow::Result;
use clap::Args;
use netlab_core::Service;

use crate::cli::Bind;

#[derive(Args, Debug, Clone)]
pub struct CelsiusArgs {
    /// Celsius to Fahrenheit over UDP (the example protocol): address, or `off`.
    #[arg(long, value_name = "ADDR|off", default_value = "off")]
    pub celsius: Bind,
}

pub fn register(_args: &CelsiusArgs, _services: &mut Vec<Box<dyn Service>>) -> Result<()> {
    Ok(())
}
