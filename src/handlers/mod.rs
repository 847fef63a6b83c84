//! The protocols `netlab serve` runs, and the one place where each is registered.
//!
//! A handler file adapts one protocol crate to the reactor: its command-line flags, and the code that
//! builds its [`Service`] (plus whatever real resource the sans-IO crate keeps behind a trait, such
//! as the TFTP file system). Adding a protocol touches its crate, its handler file and one line in
//! [`services`].

pub mod celsius;
pub mod chat;
pub mod chat_ping;
pub mod echo;
pub mod tftp;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use netlab_core::Service;

use crate::reactor::{Reactor, ReactorConfig};

/// Flags of `netlab serve`. Every protocol takes an address or `off`.
#[derive(Args, Debug, Clone)]
#[command(args_override_self = true)]
pub struct ServeArgs {
    #[command(flatten)]
    pub echo: echo::EchoArgs,
    #[command(flatten)]
    pub chat: chat::ChatArgs,
    #[command(flatten)]
    pub tftp: tftp::TftpArgs,
    #[command(flatten)]
    pub celsius: celsius::CelsiusArgs,
    /// I/O model: `reactor` (one thread, one mio::Poll) or `threaded` (a thread per connection, the
    /// baseline for `netlab bench`; serves echo and chat only).
    #[arg(long, value_enum, default_value_t = Model::Reactor)]
    pub model: Model,
    /// On SIGINT/SIGTERM, how long to keep flushing pending output before exiting anyway.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = crate::cli::parse_duration)]
    pub shutdown_timeout: Duration,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Model {
    /// One thread, one mio::Poll, every connection a state machine in a slab.
    Reactor,
    /// One blocking OS thread per TCP connection (the classic design, as a baseline).
    Threaded,
}

/// Build the services for the enabled protocols. One registration line per protocol.
pub fn services(args: &ServeArgs) -> Result<Vec<Box<dyn Service>>> {
    let mut services: Vec<Box<dyn Service>> = Vec::new();
    echo::register(&args.echo, &mut services)?;
    chat::register(&args.chat, &mut services)?;
    tftp::register(&args.tftp, &mut services)?;
    celsius::register(&args.celsius, &mut services)?;
    Ok(services)
}

/// `netlab serve`.
pub fn serve(args: ServeArgs) -> Result<ExitCode> {
    if args.model == Model::Threaded {
        return crate::threaded::serve(&args);
    }
    crate::reactor::raise_fd_limit();
    let services = services(&args)?;
    if services.is_empty() {
        anyhow::bail!("every protocol is off: nothing to serve");
    }
    let mut reactor = Reactor::new(ReactorConfig { shutdown_timeout: args.shutdown_timeout })?;
    for s in services {
        reactor.add(s);
    }
    reactor.run()?;
    Ok(ExitCode::SUCCESS)
}
