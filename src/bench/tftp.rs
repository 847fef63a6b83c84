//! `tftp`: M parallel downloads of one file, back to back for the window; total MB/s; every copy
//! compared byte for byte with the original.
//!
//! Each download is one `netlab tftp get` process (the client on the same `netlab-tftp` crate as
//! the server), so the time includes starting that process: the number is the server's throughput
//! as M independent real clients see it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::latency::Latencies;
use super::{BenchArgs, BenchResult, proc, progress};

/// A download still running this long after the window is killed and counted as an error.
const DRAIN: Duration = Duration::from_secs(30);

struct Slot {
    child: Child,
    local: PathBuf,
    started: Instant,
}

pub fn run(args: &BenchArgs) -> Result<BenchResult> {
    let (Some(remote), Some(expect_path)) = (&args.file, &args.expect) else {
        bail!("tftp: needs --file REMOTE (a file the server serves) and --expect LOCAL (the same file here)");
    };
    let expect = std::fs::read(expect_path).with_context(|| format!("reading {}", expect_path.display()))?;
    let dir = std::env::temp_dir().join(format!("netlab-bench-tftp-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let exe = std::env::current_exe()?;
    let spawn = |i: usize, n: u64| -> Result<Slot> {
        let local = dir.join(format!("get-{i}-{n}"));
        let child = Command::new(&exe)
            .args([
                "tftp",
                "--blksize",
                &args.blksize.to_string(),
                "--windowsize",
                &args.windowsize.to_string(),
            ])
            .arg("get")
            .arg(args.target.to_string())
            .arg(remote)
            .arg(&local)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Slot { child, local, started: Instant::now() })
    };
    let pb = progress(args.duration, "tftp");
    let server0 = args.server_pid.and_then(proc::sample);
    let t0 = Instant::now();
    let end = t0 + args.duration;
    let mut lat = Latencies::default();
    let (mut done, mut errors, mut started) = (0u64, 0u64, 0u64);
    let mut slots: Vec<Option<Slot>> = Vec::new();
    for i in 0..args.conns {
        slots.push(Some(spawn(i, started)?));
        started += 1;
    }
    while slots.iter().any(Option::is_some) {
        let now = Instant::now();
        for (i, slot) in slots.iter_mut().enumerate() {
            let Some(s) = slot else { continue };
            let status = match s.child.try_wait()? {
                Some(st) => st,
                None if now > end + DRAIN => {
                    let _ = s.child.kill();
                    s.child.wait()?
                }
                None => continue,
            };
            if status.success() && same(&s.local, &expect) {
                done += 1;
                lat.record(now - s.started);
            } else {
                errors += 1;
                log::warn!("tftp: download {} failed or differs ({status})", s.local.display());
            }
            let _ = std::fs::remove_file(&s.local);
            *slot = None;
            if now < end {
                *slot = Some(spawn(i, started)?);
                started += 1;
            }
        }
        pb.set_position((now - t0).as_millis().min(args.duration.as_millis()) as u64);
        pb.set_message(format!("{done} files"));
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let server1 = args.server_pid.and_then(proc::sample);
    pb.finish_and_clear();
    let _ = std::fs::remove_dir_all(&dir);
    let mut r = BenchResult::new(args, "tftp");
    r.size = expect.len();
    r.depth = args.windowsize as usize;
    r.duration_s = elapsed;
    r.connected = args.conns;
    r.msgs = done;
    r.msgs_per_s = done as f64 / elapsed;
    r.mb_per_s = (done * expect.len() as u64) as f64 / elapsed / 1e6;
    (r.p50_us, r.p99_us, r.p999_us) = lat.summary();
    r.errors = errors;
    r.server_cpu(server0, server1);
    Ok(r)
}

/// True if the file at `path` holds exactly `expect`.
fn same(path: &Path, expect: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|got| got == expect)
}
