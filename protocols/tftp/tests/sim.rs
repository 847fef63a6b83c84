//! Seeded simulation: the real `TftpService` and the real `Client` on virtual time, over a link that
//! loses, duplicates and reorders datagrams. After every step the data delivered so far must be a
//! prefix of the file; at the end it must be the whole file, and every transfer socket closed.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use netlab_core::{Bytes, Input, Opened, Output, RecvMeta, Service, SockId};
use netlab_tftp::{
    Client, Config, FileSystem, FsError, MemFs, MemRead, Mode, ReadFile, Status, TftpService, WriteFile,
};

/// xorshift64*: a small seeded PRNG, so every run of a seed is the same run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Shared buffer a writer appends to, so the test sees progress.
type Shared = Rc<RefCell<Vec<u8>>>;

struct SinkWrite(Shared);
impl WriteFile for SinkWrite {
    fn write(&mut self, data: &[u8]) -> Result<(), FsError> {
        self.0.borrow_mut().extend_from_slice(data);
        Ok(())
    }
    fn commit(self: Box<Self>) -> Result<(), FsError> {
        Ok(())
    }
    fn abort(self: Box<Self>) {}
}

/// Reads from memory; uploads go to one shared buffer the test watches.
struct SimFs {
    reads: MemFs,
    upload: Shared,
}
impl FileSystem for SimFs {
    fn open_read(&mut self, path: &str) -> Result<Box<dyn ReadFile>, FsError> {
        self.reads.open_read(path)
    }
    fn create(&mut self, _path: &str) -> Result<Box<dyn WriteFile>, FsError> {
        Ok(Box::new(SinkWrite(self.upload.clone())))
    }
}

struct Link {
    rng: Rng,
    loss: u64,
    dup: u64,
    /// (delivery time, sequence) → (from, to, data)
    queue: BTreeMap<(Instant, u64), (SocketAddr, SocketAddr, Bytes)>,
    seq: u64,
}

impl Link {
    fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: Bytes) {
        if self.rng.chance(self.loss) {
            return;
        }
        let copies = if self.rng.chance(self.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = Duration::from_micros(500 + self.rng.next() % 5000);
            self.seq += 1;
            self.queue.insert((now + delay, self.seq), (from, to, data.clone()));
        }
    }
}

const CLIENT: &str = "127.0.0.2:5000";

#[derive(Clone, Copy, Debug)]
struct Case {
    put: bool,
    mode: Mode,
    size: usize,
    blksize: usize,
    window: usize,
    loss: u64,
    seed: u64,
}

fn run(case: Case) {
    let mut rng = Rng(case.seed | 1);
    let file: Vec<u8> = (0..case.size).map(|_| (rng.next() % 256) as u8).collect();
    let reads = MemFs::default();
    reads.insert("f", file.clone());
    let upload: Shared = Rc::default();
    let mut cfg = Config::new("127.0.0.1:69".parse().unwrap());
    cfg.allow_upload = true;
    cfg.max_retries = 10;
    let mut svc = TftpService::new(cfg, SimFs { reads, upload: upload.clone() });
    let mut now = Instant::now();
    let t0 = now;
    let mut link = Link {
        rng: Rng(case.seed.wrapping_mul(7) | 1),
        loss: case.loss,
        dup: 5,
        queue: BTreeMap::new(),
        seq: 0,
    };
    let mut socks: HashMap<SocketAddr, SockId> = HashMap::new();
    let mut addrs: HashMap<SockId, SocketAddr> = HashMap::new();
    let mut next_index = 1;
    let mut opened = 0;
    let mut closed = 0;
    let client_addr: SocketAddr = CLIENT.parse().unwrap();
    let got: Shared = Rc::default();
    let blk = case.blksize.to_string();
    let win = case.window.to_string();
    let opts = [("blksize", blk.as_str()), ("windowsize", win.as_str()), ("tsize", "0")];
    let server: SocketAddr = "127.0.0.1:69".parse().unwrap();
    let timeout = Duration::from_secs(1);
    let mut client = if case.put {
        Client::put(server, "f", case.mode, &opts, Box::new(MemRead(file.clone())), now, timeout, 10)
    } else {
        Client::get(server, "f", case.mode, &opts, Box::new(SinkWrite(got.clone())), now, timeout, 10)
    };
    let mut tx = Vec::new();
    client.start(now, &mut tx);
    let mut steps = 0u64;
    let mut checked = 0;
    loop {
        // Drain the service, answering opens at once.
        while let Some(o) = svc.poll_output() {
            match o {
                Output::Listen { tag, addr, .. } | Output::Open { tag, addr, .. } => {
                    next_index += 1;
                    let sock = SockId { index: next_index, generation: 0 };
                    let local = if addr.port() == 0 {
                        SocketAddr::new(addr.ip(), 40000 + next_index as u16)
                    } else {
                        addr
                    };
                    socks.insert(local, sock);
                    addrs.insert(sock, local);
                    if addr.port() == 0 {
                        opened += 1;
                    }
                    svc.handle_input(now, Input::Opened { tag, result: Ok(Opened { sock, local }) });
                }
                Output::SendTo { sock, to, data } => link.send(now, addrs[&sock], to, data),
                Output::Close { sock, .. } => {
                    closed += 1;
                    socks.remove(&addrs[&sock]);
                    svc.handle_input(
                        now,
                        Input::Closed { sock, reason: netlab_core::CloseReason::Requested },
                    );
                }
                Output::Write { .. } => unreachable!(),
            }
        }
        for (to, data) in tx.drain(..) {
            link.send(now, client_addr, to, data);
        }
        // Invariant after every step: what arrived is a prefix of the file.
        // (Only the bytes new since the last step need comparing.)
        {
            let delivered = if case.put { upload.borrow() } else { got.borrow() };
            let n = delivered.len();
            assert!(
                n <= file.len() && delivered[checked..] == file[checked..n],
                "{case:?}: not a prefix after {steps} steps"
            );
            checked = n;
        }
        let client_done = matches!(client.status(), Status::Complete | Status::Finished);
        if client_done && svc.transfers() == 0 && link.queue.is_empty() {
            break;
        }
        if let Status::Failed(why) = client.status() {
            // TFTP's one unfixable case: every copy of the final ACK of an upload was lost, and
            // the server's dally ended. The server has the whole file; only the client cannot know.
            let whole = case.put && *upload.borrow() == file && svc.transfers() == 0;
            let counters: HashMap<_, _> = svc.counters().into_iter().collect();
            assert!(whole && counters["transfers_ok"] == 1, "{case:?}: client failed: {why}");
            eprintln!("{case:?}: upload complete, final ACKs lost");
            return;
        }
        steps += 1;
        assert!(steps < 5_000_000, "{case:?}: no end in sight");
        // Next event: a delivery, or a deadline.
        let next_pkt = link.queue.keys().next().map(|k| k.0);
        let mut next = [next_pkt, svc.poll_timeout(), (!client_done).then(|| client.deadline())]
            .into_iter()
            .flatten()
            .min()
            .expect("nothing left to happen");
        if next < now {
            next = now;
        }
        now = next;
        if next_pkt == Some(now) {
            let key = *link.queue.keys().next().unwrap();
            let (from, to, data) = link.queue.remove(&key).unwrap();
            if to == client_addr {
                // A finished client still answers a resent last block (its dally).
                client.on_datagram(now, from, &data, &mut tx);
            } else if let Some(&sock) = socks.get(&to) {
                svc.handle_input(now, Input::Datagram { sock, from, data: &data, meta: RecvMeta::default() });
            }
        } else {
            if svc.poll_timeout().is_some_and(|t| t <= now) {
                svc.handle_timeout(now);
            }
            if !client_done && client.deadline() <= now {
                client.on_timeout(now, &mut tx);
            }
        }
    }
    let delivered = if case.put { upload.borrow().clone() } else { got.borrow().clone() };
    assert_eq!(delivered.len(), file.len(), "{case:?}");
    assert!(delivered == file, "{case:?}: content differs");
    assert_eq!(opened, closed, "{case:?}: every transfer socket is closed");
    let counters: HashMap<_, _> = svc.counters().into_iter().collect();
    assert_eq!(counters["transfers_ok"], 1, "{case:?}: {counters:?}");
    assert!(now - t0 < Duration::from_secs(3600), "{case:?}");
}

#[test]
fn transfers_survive_loss_duplication_and_reordering() {
    let mut seed = 1;
    for put in [false, true] {
        for mode in [Mode::Octet, Mode::Netascii] {
            for &(size, blksize, window) in &[
                (0, 512, 1),
                (511, 512, 1),
                (512, 512, 1),
                (5000, 512, 4),
                (70_000, 1468, 16),
                (3000, 8, 3),
                (100_000, 65464, 4),
            ] {
                for loss in [0, 10] {
                    seed += 1;
                    run(Case { put, mode, size, blksize, window, loss, seed });
                }
            }
        }
    }
}

#[test]
fn block_numbers_roll_over() {
    // 600,000 bytes at blksize 8 is 75,001 blocks: past 65535, back through 0.
    for put in [false, true] {
        run(Case { put, mode: Mode::Octet, size: 600_000, blksize: 8, window: 8, loss: 2, seed: 99 });
    }
}

#[test]
fn many_seeds_heavy_loss() {
    // TFTP_SIM_SEEDS=2000 cargo test -p netlab-tftp --test sim many_seeds: a longer soak.
    let seeds: u64 = std::env::var("TFTP_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    for seed in 1000..1000 + seeds {
        let mut r = Rng(seed);
        let blksize = [8, 512, 1024, 1468][(r.next() % 4) as usize];
        let case = Case {
            put: r.chance(50),
            mode: if r.chance(50) { Mode::Octet } else { Mode::Netascii },
            size: (r.next() % 20_000) as usize,
            blksize,
            window: 1 + (r.next() % 8) as usize,
            loss: 20,
            seed,
        };
        run(case);
    }
}
