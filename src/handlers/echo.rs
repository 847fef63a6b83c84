//! Echo (protocols/echo) on the reactor: TCP and UDP on one address.

use anyhow::Result;
use clap::Args;
use netlab_core::{Service, StreamLimits};
use netlab_echo::EchoService;

use crate::cli::Bind;

#[derive(Args, Debug, Clone)]
pub struct EchoArgs {
    /// Echo (RFC 862) over TCP and UDP: address to listen on, or `off`.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:7007")]
    pub echo: Bind,
    /// Most TCP echo connections at once; more are accepted and closed at once.
    #[arg(long, value_name = "N", default_value_t = 15_000)]
    pub echo_max_conns: usize,
    /// Close a TCP echo connection that sends nothing for this long (`0`: never).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = crate::cli::parse_duration)]
    pub echo_idle_timeout: std::time::Duration,
}

pub fn register(args: &EchoArgs, services: &mut Vec<Box<dyn Service>>) -> Result<()> {
    if let Some(addr) = args.echo.0 {
        let limits = StreamLimits { max_conns: args.echo_max_conns, ..StreamLimits::default() };
        let idle = Some(args.echo_idle_timeout).filter(|d| !d.is_zero());
        services.push(Box::new(EchoService::new(Some((addr, limits)), Some(addr), idle)));
    }
    Ok(())
}
