//! Celsius to Fahrenheit (protocols/celsius) on the reactor: the example protocol of README's
//! "Add a protocol".

use anyhow::Result;
use clap::Args;
use netlab_celsius::CelsiusService;
use netlab_core::Service;

use crate::cli::Bind;

#[derive(Args, Debug, Clone)]
pub struct CelsiusArgs {
    /// Celsius to Fahrenheit over UDP (the example protocol): address to listen on, or `off`.
    #[arg(long, value_name = "ADDR|off", default_value = "off")]
    pub celsius: Bind,
}

pub fn register(args: &CelsiusArgs, services: &mut Vec<Box<dyn Service>>) -> Result<()> {
    if let Some(addr) = args.celsius.0 {
        services.push(Box::new(CelsiusService::new(addr)));
    }
    Ok(())
}
