//! `netlab tftp get|put`: a TFTP client on the same protocol crate as the server.
//!
//! One blocking UDP socket and a loop: wait for a datagram until the transfer's deadline, feed it (or
//! the timeout) to `netlab_tftp::Client`, send what it asks. A get writes to a hidden temporary file
//! next to LOCAL and renames it into place when the last block arrived, so a failed get leaves
//! nothing behind.

use std::fs::{self, File};
use std::io::{BufWriter, ErrorKind, IsTerminal, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use netlab_tftp::{Client, FsError, Mode, ReadFile, Status, Transmit, WriteFile};
use sha2::{Digest, Sha256};

/// Largest datagram we accept: the largest blksize plus the DATA header.
const RECV_BUFFER: usize = 65536;

#[derive(Args, Debug, Clone)]
pub struct TftpArgs {
    #[command(subcommand)]
    pub action: Action,
    #[command(flatten)]
    pub opts: Opts,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Action {
    /// Download REMOTE from HOST[:PORT] (port 69 by default) into LOCAL (default: REMOTE's last part).
    Get { host: String, remote: String, local: Option<PathBuf> },
    /// Upload LOCAL to HOST[:PORT] as REMOTE (default: LOCAL's file name).
    Put { host: String, local: PathBuf, remote: Option<String> },
}

#[derive(Args, Debug, Clone)]
pub struct Opts {
    /// Block size to ask for (8..=65464; 512 asks for nothing).
    #[arg(long, global = true, default_value_t = 1468, value_parser = clap::value_parser!(u16).range(8..=65464))]
    pub blksize: u16,
    /// Blocks in flight per ACK (RFC 7440; 1 asks for nothing).
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub windowsize: u16,
    /// Transfer mode.
    #[arg(long, global = true, value_enum, default_value_t = ModeArg::Octet)]
    pub mode: ModeArg,
    /// Print the SHA-256 of the file received or sent.
    #[arg(long, global = true)]
    pub sha256: bool,
    /// First retransmit timeout (doubles on each resend).
    #[arg(long, global = true, default_value = "1s", value_parser = crate::cli::parse_duration)]
    pub timeout: Duration,
    /// Resends before giving up.
    #[arg(long, global = true, default_value_t = 5)]
    pub retries: u32,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Octet,
    Netascii,
}

/// `HOST`, `HOST:PORT`, `[V6]:PORT` or a bare IPv6 address; port 69 when none is given.
fn resolve(host: &str) -> Result<SocketAddr> {
    if let Ok(a) = host.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 69));
    }
    let with_port = if host.contains(':') { host.to_string() } else { format!("{host}:69") };
    with_port
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .context("no address")
}

/// A local file being received: temporary name until commit, hashed as written.
struct LocalWrite {
    /// The temporary file, buffered.
    out: BufWriter<File>,
    /// Its path (renamed into place by the caller once the size is checked).
    temp: PathBuf,
    /// SHA-256 of what was written.
    hash: Sha256,
    /// The digest, handed back at commit.
    digest: std::rc::Rc<std::cell::Cell<Option<[u8; 32]>>>,
}

impl WriteFile for LocalWrite {
    fn write(&mut self, data: &[u8]) -> Result<(), FsError> {
        self.hash.update(data);
        self.out.write_all(data).map_err(|_| FsError::Io)
    }
    fn commit(self: Box<Self>) -> Result<(), FsError> {
        let LocalWrite { out, temp, hash, digest } = *self;
        let r = out.into_inner().map(drop).map_err(|_| FsError::Io);
        if r.is_err() {
            let _ = fs::remove_file(&temp);
        }
        digest.set(Some(hash.finalize().into()));
        r
    }
    fn abort(self: Box<Self>) {
        let _ = fs::remove_file(&self.temp);
    }
}

struct LocalRead(File, u64);

impl ReadFile for LocalRead {
    fn size(&self) -> u64 {
        self.1
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        self.0.read_at(buf, offset).map_err(|_| FsError::Io)
    }
}

fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn run(args: TftpArgs) -> Result<ExitCode> {
    let o = &args.opts;
    let mode = if o.mode == ModeArg::Netascii { Mode::Netascii } else { Mode::Octet };
    let (blk, win) = (o.blksize.to_string(), o.windowsize.to_string());
    let mut options = vec![("tsize", "0")];
    if o.blksize != 512 {
        options.push(("blksize", &blk));
    }
    if o.windowsize != 1 {
        options.push(("windowsize", &win));
    }
    let now = Instant::now();
    match &args.action {
        Action::Get { host, remote, local } => {
            let server = resolve(host)?;
            let dest = local.clone().unwrap_or_else(|| {
                PathBuf::from(
                    Path::new(&remote.replace('\\', "/")).file_name().unwrap_or("download".as_ref()),
                )
            });
            let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let name = dest.file_name().context("LOCAL has no file name")?.to_string_lossy();
            let temp = dir.join(format!(".{name}.{}.tftp-part", std::process::id()));
            // create_new: never follow (and truncate through) a symlink planted at the temp name.
            let file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)
                .with_context(|| format!("cannot write {}", temp.display()))?;
            let digest = std::rc::Rc::default();
            let sink = LocalWrite {
                out: BufWriter::with_capacity(1 << 18, file),
                temp: temp.clone(),
                hash: Sha256::new(),
                digest: std::rc::Rc::clone(&digest),
            };
            let client =
                Client::get(server, remote, mode, &options, Box::new(sink), now, o.timeout, o.retries);
            let result = drive(server, client, "received");
            // The file replaces LOCAL only once it is complete and its size checked.
            let checked = result.and_then(|(bytes, tsize)| match tsize.filter(|_| mode == Mode::Octet) {
                Some(t) if t != bytes => bail!("size mismatch: server announced {t} bytes, received {bytes}"),
                _ => Ok(()),
            });
            if let Err(e) = checked.and_then(|()| {
                fs::rename(&temp, &dest).with_context(|| format!("cannot write {}", dest.display()))
            }) {
                let _ = fs::remove_file(&temp);
                return Err(e);
            }
            if o.sha256 {
                println!("{}  {}", hex(&digest.get().unwrap_or_default()), dest.display());
            }
        }
        Action::Put { host, local, remote } => {
            let server = resolve(host)?;
            let file = File::open(local).with_context(|| format!("cannot read {}", local.display()))?;
            let size = file.metadata()?.len();
            let remote = match remote {
                Some(r) => r.clone(),
                None => local.file_name().context("LOCAL has no file name")?.to_string_lossy().into_owned(),
            };
            let size_s = size.to_string();
            if mode == Mode::Octet {
                options[0] = ("tsize", &size_s);
            } else {
                options.remove(0);
            }
            let source = LocalRead(file, size);
            let client =
                Client::put(server, &remote, mode, &options, Box::new(source), now, o.timeout, o.retries);
            drive(server, client, "sent")?;
            if o.sha256 {
                println!("{}  {}", hex(&sha256_file(local)?), local.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Run one transfer to its end. Returns the data bytes moved and the server's tsize, if any.
fn drive(server: SocketAddr, mut client: Client, verb: &str) -> Result<(u64, Option<u64>)> {
    let bind: SocketAddr = if server.is_ipv6() { "[::]:0".parse()? } else { "0.0.0.0:0".parse()? };
    let sock = udp_socket(bind)?;
    let started = Instant::now();
    let mut tx: Vec<Transmit> = Vec::new();
    let mut buf = vec![0u8; RECV_BUFFER];
    let bar = progress_bar();
    // Until the server answers once, "port unreachable" means nobody serves TFTP there.
    let mut heard = false;
    let mut armed: Option<Duration> = None;
    client.start(started, &mut tx);
    loop {
        for (to, data) in tx.drain(..) {
            // A lost datagram is the protocol's business: it will resend.
            let _ = sock.send_to(&data, to);
        }
        match client.status() {
            Status::Complete | Status::Finished => break,
            Status::Failed(why) => {
                bar.abandon();
                bail!("{why}");
            }
            Status::Running => {}
        }
        let now = Instant::now();
        let wait = client.deadline().saturating_duration_since(now).max(Duration::from_millis(1));
        // SO_RCVTIMEO applies to each recv from its start: re-arm (a system call) only when the
        // armed wait would overshoot the deadline, or would wake us far too early. An early wake is
        // harmless: `on_timeout` does nothing before the deadline.
        if armed.is_none_or(|a| wait < a || wait > a * 2) {
            sock.set_read_timeout(Some(wait))?;
            armed = Some(wait);
        }
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                heard |= from.ip() == server.ip();
                client.on_datagram(Instant::now(), from, &buf[..n], &mut tx)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                client.on_timeout(Instant::now(), &mut tx)
            }
            Err(e) if e.kind() == ErrorKind::ConnectionRefused && !heard => {
                bar.abandon();
                bail!("no TFTP server at {server} (port unreachable)");
            }
            // Later, a stray ICMP error for an old datagram: the protocol's timers decide.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
            Err(e) => bail!("receive failed: {e}"),
        }
        if let Some(t) = client.negotiated().tsize {
            bar.set_length(t);
        }
        bar.set_position(client.bytes());
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let bytes = client.bytes();
    let rate = bytes as f64 / secs.max(1e-9) / 1e6;
    eprintln!("{verb} {bytes} bytes in {secs:.3} s ({rate:.2} MB/s) [{}]", client.negotiated().describe());
    Ok((bytes, client.negotiated().tsize))
}

/// Kernel receive buffer asked for: a whole window of the largest blocks, with room for the kernel's
/// per-packet overhead (the default, ~208 KiB, drops the tail of a 4 × 64 KiB window).
const SOCKET_BUFFER: usize = 4 << 20;

/// A UDP socket with a receive buffer big enough for a window (best effort).
fn udp_socket(bind: SocketAddr) -> Result<UdpSocket> {
    let s = socket2::Socket::new(socket2::Domain::for_address(bind), socket2::Type::DGRAM, None)
        .context("cannot open a UDP socket")?;
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    // Report ICMP errors (port unreachable) on this unconnected socket, so that a request to a
    // port where nothing listens fails at once instead of after every retry. Best effort.
    let (level, name) = if bind.is_ipv6() {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
    } else {
        (libc::IPPROTO_IP, libc::IP_RECVERR)
    };
    let on: libc::c_int = 1;
    // SAFETY: setsockopt(2) on a socket we own, with a pointer to a c_int and its exact size.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&s),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    s.bind(&bind.into()).context("cannot bind a UDP socket")?;
    Ok(s.into())
}

/// A progress bar on a terminal; a hidden one otherwise.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template("{bytes}/{total_bytes} {wide_bar} {bytes_per_sec} {eta}")
    {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(resolve("127.0.0.1").unwrap(), "127.0.0.1:69".parse().unwrap());
        assert_eq!(resolve("127.0.0.1:6969").unwrap(), "127.0.0.1:6969".parse().unwrap());
        assert_eq!(resolve("::1").unwrap(), "[::1]:69".parse().unwrap());
        assert_eq!(resolve("[::1]:5").unwrap(), "[::1]:5".parse().unwrap());
    }
}
