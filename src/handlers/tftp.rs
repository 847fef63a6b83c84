//! TFTP (protocols/tftp) on the reactor, with the real file system behind the crate's file trait.
//!
//! Everything is served from one root folder (`--tftp-root`, default: the current directory; nothing
//! is created there except uploads, when they are allowed). A requested name is checked component by
//! component, never by string prefix:
//! - a leading `/` (or the root's own absolute path) means the root; `\` separates like `/`;
//! - a `..` component is refused (ERROR 2), so is a name that resolves, through symlinks, to anything
//!   outside the canonical root; an absolute name that does not exist under the root is refused as
//!   outside it (ERROR 2) rather than reported missing;
//! - only regular files are read; uploads never write through a symlink.
//!
//! Error messages are the fixed TFTP texts: they never contain a server path.
//!
//! An upload goes to a hidden temporary file in the target's folder (`.NAME.PID-N.tftp-part`) and is
//! renamed into place after its last block; an aborted or timed-out upload removes it. Without
//! `--tftp-allow-overwrite` the final step is a hard link that fails if the name appeared meanwhile.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use netlab_core::Service;
use netlab_tftp::{Config, FileSystem, FsError, ReadFile, TftpService, WriteFile};

use crate::cli::Bind;

/// Buffer in front of an upload's temporary file: a few large blocks per write(2).
const UPLOAD_BUFFER: usize = 256 * 1024;

#[derive(Args, Debug, Clone)]
pub struct TftpArgs {
    /// TFTP: UDP address to listen on, or `off`.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:6969")]
    pub tftp: Bind,
    /// Folder served (and written, with --tftp-allow-upload). Default: the current directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub tftp_root: PathBuf,
    /// Accept write requests (uploads). Off by default.
    #[arg(long)]
    pub tftp_allow_upload: bool,
    /// Let an upload replace an existing file (never through a symlink).
    #[arg(long)]
    pub tftp_allow_overwrite: bool,
    /// Largest upload, in bytes (suffixes K, M, G); a declared tsize over it is refused up front.
    #[arg(long, value_name = "BYTES", default_value = "1G", value_parser = parse_size)]
    pub tftp_max_upload: u64,
    /// Most transfers at once.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub tftp_max_transfers: usize,
    /// Most transfers at once from one IP address.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub tftp_max_per_client: usize,
    /// First retransmit timeout when the client negotiates none (it doubles on each resend).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = crate::cli::parse_duration)]
    pub tftp_timeout: Duration,
    /// Resends before a silent peer's transfer is dropped.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub tftp_retries: u32,
    /// Largest blksize agreed to (8..=65464).
    #[arg(long, value_name = "BYTES", default_value_t = 65464,
          value_parser = clap::value_parser!(u16).range(8..=65464))]
    pub tftp_max_blksize: u16,
}

/// `1G`, `40M`, `512K`, `1000`.
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("invalid size '{s}' (try 100M)"))?;
    n.checked_mul(mult).ok_or_else(|| format!("size too large: '{s}'"))
}

/// Ending of an upload's temporary file (see the module docs).
const TEMP_SUFFIX: &str = ".tftp-part";

pub fn register(args: &TftpArgs, services: &mut Vec<Box<dyn Service>>) -> Result<()> {
    let Some(addr) = args.tftp.0 else { return Ok(()) };
    let root = fs::canonicalize(&args.tftp_root)
        .with_context(|| format!("--tftp-root {}", args.tftp_root.display()))?;
    anyhow::ensure!(root.is_dir(), "--tftp-root {}: not a directory", root.display());
    log::info!(
        "tftp: serving {} (uploads {})",
        root.display(),
        if args.tftp_allow_upload { "on" } else { "off" }
    );
    let mut cfg = Config::new(addr);
    cfg.allow_upload = args.tftp_allow_upload;
    cfg.max_upload = Some(args.tftp_max_upload);
    cfg.max_transfers = args.tftp_max_transfers;
    cfg.max_per_client = args.tftp_max_per_client;
    cfg.timeout = args.tftp_timeout.max(Duration::from_millis(10));
    cfg.max_retries = args.tftp_retries;
    cfg.max_blksize = args.tftp_max_blksize as usize;
    let fs = RootFs { root, overwrite: args.tftp_allow_overwrite, next_temp: 0 };
    services.push(Box::new(TftpService::new(cfg, fs)));
    Ok(())
}

/// The files under one canonical root.
pub struct RootFs {
    /// Canonical (absolute, symlink-free) root.
    root: PathBuf,
    /// Uploads may replace existing files.
    overwrite: bool,
    /// Counter making temporary names unique within this process.
    next_temp: u64,
}

impl RootFs {
    /// The path under the root a client's name means, before any symlink is followed; and whether
    /// the name was absolute.
    fn relative(&self, name: &str) -> Result<(PathBuf, bool), FsError> {
        let name = name.replace('\\', "/");
        let root = self.root.to_string_lossy();
        let name = match name.strip_prefix(&*root) {
            Some(rest) if rest.starts_with('/') => rest.to_string(),
            _ => name,
        };
        let absolute = name.starts_with('/');
        let mut rel = PathBuf::new();
        for c in Path::new(name.trim_start_matches('/')).components() {
            match c {
                Component::Normal(part) => rel.push(part),
                Component::CurDir => {}
                Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                    return Err(FsError::AccessDenied);
                }
            }
        }
        if rel.as_os_str().is_empty() {
            return Err(FsError::AccessDenied);
        }
        Ok((rel, absolute))
    }

    /// Canonicalize `path` and check it is still under the root.
    fn confine(&self, path: &Path, absolute: bool) -> Result<PathBuf, FsError> {
        let canon = fs::canonicalize(path).map_err(|e| match e.kind() {
            ErrorKind::NotFound if absolute => FsError::AccessDenied,
            ErrorKind::NotFound => FsError::NotFound,
            _ => FsError::AccessDenied,
        })?;
        if canon.starts_with(&self.root) { Ok(canon) } else { Err(FsError::AccessDenied) }
    }
}

struct RealRead {
    /// The open file.
    file: File,
    /// Its size when opened.
    size: u64,
}

impl ReadFile for RealRead {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        loop {
            match self.file.read_at(buf, offset) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                r => return r.map_err(|_| FsError::Io),
            }
        }
    }
}

struct RealWrite {
    /// The temporary file, buffered; None once closed.
    out: Option<BufWriter<File>>,
    /// Its path (hidden, next to `dest`).
    temp: PathBuf,
    /// The final path.
    dest: PathBuf,
    /// Replace an existing `dest` (rename) or never (link).
    overwrite: bool,
}

fn write_error(e: std::io::Error) -> FsError {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG) => FsError::DiskFull,
        _ => FsError::Io,
    }
}

impl WriteFile for RealWrite {
    fn write(&mut self, data: &[u8]) -> Result<(), FsError> {
        self.out.as_mut().ok_or(FsError::Io)?.write_all(data).map_err(write_error)
    }

    fn commit(mut self: Box<Self>) -> Result<(), FsError> {
        let out = self.out.take().ok_or(FsError::Io)?;
        let result = out.into_inner().map_err(|e| write_error(e.into_error())).and_then(|_| {
            if self.overwrite {
                fs::rename(&self.temp, &self.dest).map_err(|_| FsError::Io)
            } else {
                // link(2) fails if the name appeared since the request: never clobber.
                fs::hard_link(&self.temp, &self.dest).map_err(|e| match e.kind() {
                    ErrorKind::AlreadyExists => FsError::Exists,
                    _ => FsError::Io,
                })
            }
        });
        let _ = fs::remove_file(&self.temp);
        result
    }

    fn abort(mut self: Box<Self>) {
        self.out = None;
        let _ = fs::remove_file(&self.temp);
    }
}

impl FileSystem for RootFs {
    fn open_read(&mut self, name: &str) -> Result<Box<dyn ReadFile>, FsError> {
        if name.ends_with(TEMP_SUFFIX) {
            // An upload in progress is nobody's to read until it is renamed into place.
            return Err(FsError::NotFound);
        }
        let (rel, absolute) = self.relative(name)?;
        let path = self.confine(&self.root.join(rel), absolute)?;
        // O_NONBLOCK: opening a FIFO must not block the one thread that serves everyone (it is then
        // refused as not a regular file). O_NOFOLLOW: the canonical path has no symlinks; if one was
        // swapped in since, refuse rather than follow it.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => FsError::NotFound,
                _ => FsError::AccessDenied,
            })?;
        let meta = file.metadata().map_err(|_| FsError::Io)?;
        if !meta.is_file() {
            return Err(FsError::AccessDenied);
        }
        Ok(Box::new(RealRead { file, size: meta.len() }))
    }

    fn create(&mut self, name: &str) -> Result<Box<dyn WriteFile>, FsError> {
        let (rel, absolute) = self.relative(name)?;
        let file_name = rel.file_name().ok_or(FsError::AccessDenied)?.to_owned();
        let parent = self.root.join(rel.parent().unwrap_or(Path::new("")));
        let dir = self.confine(&parent, absolute)?;
        let dest = dir.join(&file_name);
        match fs::symlink_metadata(&dest) {
            Ok(m) if !m.file_type().is_file() => return Err(FsError::AccessDenied),
            Ok(_) if !self.overwrite => return Err(FsError::Exists),
            Ok(_) | Err(_) => {}
        }
        self.next_temp += 1;
        let temp_name = format!(
            ".{}.{}-{}{TEMP_SUFFIX}",
            file_name.to_string_lossy(),
            std::process::id(),
            self.next_temp
        );
        let temp = dir.join(temp_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temp)
            .map_err(|e| match e.kind() {
                ErrorKind::PermissionDenied => FsError::AccessDenied,
                _ => write_error(e),
            })?;
        let out = Some(BufWriter::with_capacity(UPLOAD_BUFFER, file));
        Ok(Box::new(RealWrite { out, temp, dest, overwrite: self.overwrite }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("netlab-tftp-unit-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::canonicalize(d).unwrap()
    }

    #[test]
    fn names_resolve_inside_the_root_only() {
        let root = tempdir("names");
        fs::write(root.join("a.txt"), b"hi").unwrap();
        fs::write(root.join("sub/b.txt"), b"yo").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("evil")).unwrap();
        std::os::unix::fs::symlink("sub/b.txt", root.join("good")).unwrap();
        let fifo = std::ffi::CString::new(root.join("fifo").to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let mut rfs = RootFs { root: root.clone(), overwrite: false, next_temp: 0 };
        for ok in ["a.txt", "/a.txt", "sub/b.txt", "sub\\b.txt", "./sub//b.txt", "good"] {
            assert!(rfs.open_read(ok).is_ok(), "{ok}");
        }
        let full = format!("{}/a.txt", root.display());
        assert!(rfs.open_read(&full).is_ok());
        let denied = ["../etc/passwd", "sub/../a.txt", "/etc/passwd", "evil", "sub", "/", "", "fifo"];
        for bad in denied {
            assert_eq!(rfs.open_read(bad).err(), Some(FsError::AccessDenied), "{bad}");
        }
        assert_eq!(rfs.open_read("missing").err(), Some(FsError::NotFound));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn uploads_appear_only_on_commit() {
        let root = tempdir("up");
        let mut rfs = RootFs { root: root.clone(), overwrite: false, next_temp: 0 };
        let mut w = rfs.create("sub/new.bin").unwrap();
        w.write(b"data").unwrap();
        assert!(!root.join("sub/new.bin").exists());
        let temp = fs::read_dir(root.join("sub")).unwrap().next().unwrap().unwrap().file_name();
        let temp = format!("sub/{}", temp.to_string_lossy());
        assert!(temp.ends_with(TEMP_SUFFIX), "{temp}");
        assert_eq!(rfs.open_read(&temp).err(), Some(FsError::NotFound), "a partial upload cannot be read");
        w.commit().unwrap();
        assert_eq!(fs::read(root.join("sub/new.bin")).unwrap(), b"data");
        assert_eq!(rfs.create("sub/new.bin").err(), Some(FsError::Exists));
        let mut w = rfs.create("gone.bin").unwrap();
        w.write(b"x").unwrap();
        w.abort();
        assert_eq!(fs::read_dir(&root).unwrap().count(), 1, "only sub/ is left");
        assert_eq!(rfs.create("nodir/x").err(), Some(FsError::NotFound));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("40m"), Ok(40 << 20));
        assert_eq!(parse_size("12"), Ok(12));
        assert!(parse_size("x").is_err());
    }
}
