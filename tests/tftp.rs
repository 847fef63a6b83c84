//! TFTP against the real binary, with the real clients (tftp-hpa `tftp`, `atftp`, `curl`), our own
//! `netlab tftp`, and hand-made packets for the hostile cases.

mod common;

use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{Server, netlab_bin};

/// A temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("netlab-tftp-test-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(p.join("root")).unwrap();
        fs::create_dir_all(p.join("out")).unwrap();
        TempDir(fs::canonicalize(p).unwrap())
    }
    fn root(&self) -> PathBuf {
        self.0.join("root")
    }
    fn out(&self, name: &str) -> PathBuf {
        self.0.join("out").join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Deterministic pseudo-random bytes.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Text with LF, CR LF, lone CR and a NUL: everything netascii converts.
fn text() -> Vec<u8> {
    let mut t = Vec::new();
    for i in 0..2000 {
        t.extend_from_slice(format!("line {i}\n").as_bytes());
        if i % 7 == 0 {
            t.extend_from_slice(b"cr\rcrlf\r\n\0");
        }
    }
    t
}

/// Start the server on `dir`'s root. The first retransmit timeout is short (an upload dallies 4 of
/// them before its socket is freed, and `settles` waits for that); loopback does not lose packets.
fn serve(dir: &TempDir, extra: &[&str]) -> (Server, SocketAddr) {
    let root = dir.root();
    let mut args =
        vec!["--tftp", "127.0.0.1:0", "--tftp-root", root.to_str().unwrap(), "--tftp-timeout", "250ms"];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let addr = server.addr("tftp/udp");
    (server, addr)
}

/// Run a command with a time limit.
fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new("timeout").arg("120").arg(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn hpa(addr: SocketAddr, mode: &str, cmd: &str) -> Output {
    let (ip, port) = (addr.ip().to_string(), addr.port().to_string());
    let fam = if addr.is_ipv6() { "-6" } else { "-4" };
    let mut args = vec![fam, "-m", mode, &ip, &port, "-c"];
    args.extend(cmd.split_whitespace());
    run("tftp", &args)
}

fn curl_url(addr: SocketAddr, name: &str) -> String {
    format!("tftp://{addr}/{name}")
}

fn same(a: &Path, b: &Path) {
    let (x, y) = (fs::read(a).unwrap(), fs::read(b).unwrap());
    assert!(x == y, "{} ({} bytes) differs from {} ({} bytes)", a.display(), x.len(), b.display(), y.len());
}

fn live_sockets(s: &mut Server) -> u64 {
    s.stats()["reactor.live_sockets"]
}

/// Wait until every transfer is over and the reactor holds only the listener again.
fn settles(s: &mut Server, baseline: u64) {
    let st = s.stats_until(Duration::from_secs(20), |m| {
        m.get("tftp.transfers_now") == Some(&0) && m.get("reactor.live_sockets") == Some(&baseline)
    });
    assert_eq!(st["tftp.transfers_now"], 0, "{st:?}");
    assert_eq!(st["reactor.live_sockets"], baseline, "{st:?}");
}

fn udp_client(addr: SocketAddr) -> UdpSocket {
    let bind = if addr.is_ipv6() { "[::1]:0" } else { "127.0.0.1:0" };
    let s = UdpSocket::bind(bind).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; 65536];
    s.recv_from(&mut buf).ok().map(|(n, from)| (buf[..n].to_vec(), from))
}

fn rrq(name: &str, opts: &[(&str, &str)]) -> Vec<u8> {
    let mut p = vec![0, 1];
    for part in [name, "octet"].into_iter().chain(opts.iter().flat_map(|(n, v)| [*n, *v])) {
        p.extend_from_slice(part.as_bytes());
        p.push(0);
    }
    p
}

fn error_code(pkt: &[u8]) -> Option<u16> {
    (pkt.len() >= 4 && pkt[1] == 5).then(|| u16::from_be_bytes([pkt[2], pkt[3]]))
}

#[test]
fn tftp_hpa_get_and_put_in_both_modes() {
    let dir = TempDir::new();
    for (name, len) in [("zero", 0), ("s511", 511), ("s512", 512), ("m1", 1 << 20)] {
        fs::write(dir.root().join(name), data(len, len as u64)).unwrap();
    }
    fs::write(dir.root().join("text.txt"), text()).unwrap();
    let (mut server, addr) = serve(&dir, &["--tftp-allow-upload"]);
    let baseline = live_sockets(&mut server);
    for name in ["zero", "s511", "s512", "m1"] {
        let local = dir.out(name);
        ok(&hpa(addr, "binary", &format!("get {name} {}", local.display())), name);
        same(&local, &dir.root().join(name));
    }
    // netascii both ways: the file arrives as it is stored, and goes back the same.
    let local = dir.out("text.txt");
    ok(&hpa(addr, "netascii", &format!("get text.txt {}", local.display())), "netascii get");
    same(&local, &dir.root().join("text.txt"));
    ok(&hpa(addr, "netascii", &format!("put {} text-up.txt", local.display())), "netascii put");
    ok(&hpa(addr, "binary", &format!("put {} m1-up", dir.root().join("m1").display())), "octet put");
    settles(&mut server, baseline);
    same(&dir.root().join("text-up.txt"), &dir.root().join("text.txt"));
    same(&dir.root().join("m1-up"), &dir.root().join("m1"));
    let log = server
        .wait_for_log("put \"m1-up\" octet", Duration::from_secs(5))
        .expect("one log line per transfer");
    assert!(log.contains("1048576 bytes") && log.ends_with(": ok"), "{log}");
}

#[test]
fn curl_blksizes_and_put() {
    let dir = TempDir::new();
    fs::write(dir.root().join("small"), data(20_000, 1)).unwrap();
    fs::write(dir.root().join("m1"), data(1 << 20, 2)).unwrap();
    fs::write(dir.root().join("empty"), b"").unwrap();
    let (mut server, addr) = serve(&dir, &["--tftp-allow-upload"]);
    let baseline = live_sockets(&mut server);
    for (name, blk) in
        [("small", "8"), ("small", "9"), ("m1", "512"), ("m1", "1468"), ("m1", "65464"), ("empty", "512")]
    {
        let local = dir.out(&format!("{name}-{blk}"));
        let out = run(
            "curl",
            &["-sS", "--tftp-blksize", blk, "-o", local.to_str().unwrap(), &curl_url(addr, name)],
        );
        ok(&out, &format!("curl {name} blksize {blk}"));
        same(&local, &dir.root().join(name));
    }
    let src = dir.root().join("m1");
    ok(&run("curl", &["-sS", "-T", src.to_str().unwrap(), &curl_url(addr, "m1-curl")]), "curl put");
    ok(
        &run(
            "curl",
            &[
                "-sS",
                "--tftp-blksize",
                "8",
                "-T",
                dir.root().join("small").to_str().unwrap(),
                &curl_url(addr, "s8"),
            ],
        ),
        "curl put 8",
    );
    settles(&mut server, baseline);
    same(&dir.root().join("m1-curl"), &src);
    same(&dir.root().join("s8"), &dir.root().join("small"));
}

#[test]
fn atftp_options_and_windowsize() {
    let dir = TempDir::new();
    fs::write(dir.root().join("m1"), data(1 << 20, 3)).unwrap();
    let (mut server, addr) = serve(&dir, &["--tftp-allow-upload"]);
    let baseline = live_sockets(&mut server);
    let (ip, port) = (addr.ip().to_string(), addr.port().to_string());
    for (blk, win) in [("512", "1"), ("1468", "8"), ("8192", "4"), ("65464", "2")] {
        let local = dir.out(&format!("a-{blk}-{win}"));
        let args = [
            "-g",
            "-r",
            "m1",
            "-l",
            local.to_str().unwrap(),
            "--option",
            &format!("blksize {blk}"),
            "--option",
            &format!("windowsize {win}"),
            "--option",
            "tsize 0",
            &ip,
            &port,
        ];
        ok(&run("atftp", &args), &format!("atftp get blksize {blk} windowsize {win}"));
        same(&local, &dir.root().join("m1"));
    }
    let src = dir.root().join("m1");
    let args = ["-p", "-l", src.to_str().unwrap(), "-r", "m1-atftp", "--option", "blksize 1024", &ip, &port];
    ok(&run("atftp", &args), "atftp put");
    settles(&mut server, baseline);
    same(&dir.root().join("m1-atftp"), &src);
    assert!(server.log.iter().any(|l| l.contains("windowsize=8")), "windowsize negotiated");
}

#[test]
fn forty_megabytes_roll_block_numbers_over() {
    // 40 MB at blksize 512 is 81,921 blocks: the block number wraps past 65535 to 0.
    let dir = TempDir::new();
    let len = 40_000_000;
    fs::write(dir.root().join("big"), data(len, 4)).unwrap();
    let (mut server, addr) = serve(&dir, &[]);
    let baseline = live_sockets(&mut server);
    let local = dir.out("big");
    let out = run(
        netlab_bin(),
        &[
            "tftp",
            "get",
            &addr.to_string(),
            "big",
            local.to_str().unwrap(),
            "--blksize",
            "512",
            "--windowsize",
            "16",
        ],
    );
    ok(&out, "netlab tftp get 40 MB");
    same(&local, &dir.root().join("big"));
    settles(&mut server, baseline);
}

#[test]
fn hundred_concurrent_downloads() {
    let dir = TempDir::new();
    fs::write(dir.root().join("f"), data(300_000, 5)).unwrap();
    let (mut server, addr) = serve(&dir, &[]);
    let baseline = live_sockets(&mut server);
    let children: Vec<_> = (0..100)
        .map(|i| {
            let local = dir.out(&format!("f{i}"));
            let child = Command::new("curl")
                .args(["-sS", "--tftp-blksize", "1024", "-o", local.to_str().unwrap(), &curl_url(addr, "f")])
                .spawn()
                .unwrap();
            (child, local)
        })
        .collect();
    for (mut child, local) in children {
        assert!(child.wait().unwrap().success());
        same(&local, &dir.root().join("f"));
    }
    settles(&mut server, baseline);
    assert_eq!(server.stats()["tftp.transfers_ok"], 100);
    assert_eq!(server.threads(), 1, "one thread serves them all");
}

#[test]
fn paths_outside_the_root_are_refused() {
    let dir = TempDir::new();
    fs::write(dir.0.join("secret"), b"top secret").unwrap();
    fs::create_dir(dir.root().join("sub")).unwrap();
    fs::write(dir.root().join("sub/ok"), b"fine").unwrap();
    std::os::unix::fs::symlink(dir.0.join("secret"), dir.root().join("link-out")).unwrap();
    std::os::unix::fs::symlink(dir.0.clone(), dir.root().join("dir-out")).unwrap();
    let (_server, addr) = serve(&dir, &[]);
    let root = dir.root().display().to_string();
    let secret_abs = dir.0.join("secret").display().to_string();
    for name in [
        "../secret",
        "sub/../../secret",
        "..\\secret",
        "/etc/passwd",
        &secret_abs,
        "link-out",
        "dir-out/secret",
        "sub/..",
        "/",
    ] {
        let s = udp_client(addr);
        s.send_to(&rrq(name, &[]), addr).unwrap();
        let (pkt, _) = recv(&s).unwrap_or_else(|| panic!("{name}: no answer"));
        assert_eq!(error_code(&pkt), Some(2), "{name}: {pkt:?}");
        let text = String::from_utf8_lossy(&pkt);
        assert!(!text.contains(&root) && !text.contains("/tmp"), "{name}: error reveals a path: {text}");
    }
    // A leading slash means the root, and the root's own absolute path is inside it.
    for name in ["/sub/ok", "sub/ok", &format!("{root}/sub/ok")] {
        let local = dir.out("ok");
        ok(&run("curl", &["-sS", "-o", local.to_str().unwrap(), &format!("tftp://{addr}/{name}")]), name);
        assert_eq!(fs::read(&local).unwrap(), b"fine");
    }
}

#[test]
fn uploads_refused_unless_enabled_and_never_overwrite() {
    let dir = TempDir::new();
    fs::write(dir.root().join("exists"), b"old").unwrap();
    let src = dir.out("src");
    fs::write(&src, data(5000, 6)).unwrap();
    let (server, addr) = serve(&dir, &[]);
    let out = run("curl", &["-sS", "-T", src.to_str().unwrap(), &curl_url(addr, "new")]);
    assert!(!out.status.success());
    let s = udp_client(addr);
    s.send_to(b"\x00\x02new\x00octet\x00", addr).unwrap();
    assert_eq!(error_code(&recv(&s).unwrap().0), Some(2));
    assert_eq!(fs::read_dir(dir.root()).unwrap().count(), 1, "nothing created");
    drop(server);
    let (_server, addr) = serve(&dir, &["--tftp-allow-upload", "--tftp-max-upload", "4000"]);
    let s = udp_client(addr);
    s.send_to(b"\x00\x02exists\x00octet\x00", addr).unwrap();
    assert_eq!(error_code(&recv(&s).unwrap().0), Some(6), "no overwrite");
    assert_eq!(fs::read(dir.root().join("exists")).unwrap(), b"old");
    s.send_to(b"\x00\x02big\x00octet\x00tsize\x005000\x00", addr).unwrap();
    assert_eq!(error_code(&recv(&s).unwrap().0), Some(3), "declared size over the cap");
    // Undeclared, over the cap: refused mid-way, and nothing is left behind.
    let out = run(
        netlab_bin(),
        &["tftp", "put", &addr.to_string(), src.to_str().unwrap(), "big2", "--mode", "netascii"],
    );
    assert!(!out.status.success());
    assert_eq!(fs::read_dir(dir.root()).unwrap().count(), 1, "no partial upload left");
}

#[test]
fn silent_client_is_retried_then_freed() {
    let dir = TempDir::new();
    fs::write(dir.root().join("f"), data(10_000, 7)).unwrap();
    fs::write(dir.root().join("up-src"), b"x").unwrap();
    let (mut server, addr) =
        serve(&dir, &["--tftp-timeout", "100ms", "--tftp-retries", "2", "--tftp-allow-upload"]);
    let baseline = live_sockets(&mut server);
    let s = udp_client(addr);
    s.send_to(&rrq("f", &[]), addr).unwrap();
    let mut copies = 0;
    while let Some((pkt, _)) = recv(&s) {
        assert_eq!(&pkt[..4], b"\x00\x03\x00\x01", "only DATA 1, resent");
        copies += 1;
    }
    assert_eq!(copies, 3, "first send and two resends");
    // A silent uploader too: WRQ, then nothing. Its temporary file must go.
    s.send_to(b"\x00\x02quiet\x00octet\x00", addr).unwrap();
    let (_, tid) = recv(&s).unwrap();
    let block = [b"\x00\x03\x00\x01".as_slice(), &[b'p'; 512]].concat();
    s.send_to(&block, tid).unwrap();
    assert_eq!(recv(&s).unwrap().0, b"\x00\x04\x00\x01");
    settles(&mut server, baseline);
    assert!(server.log.iter().any(|l| l.contains("timed out")));
    let names: Vec<_> = fs::read_dir(dir.root()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "only the two files we made, no partial upload: {names:?}");
}

#[test]
fn foreign_tid_and_duplicate_acks() {
    let dir = TempDir::new();
    let content = data(1500, 8);
    fs::write(dir.root().join("f"), &content).unwrap();
    // A long timeout, so that nothing is resent while we watch for sends caused by duplicates.
    let (mut server, addr) = serve(&dir, &["--tftp-timeout", "3s"]);
    let baseline = live_sockets(&mut server);
    let a = udp_client(addr);
    let b = udp_client(addr);
    a.send_to(&rrq("f", &[]), addr).unwrap();
    let (d1, tid) = recv(&a).unwrap();
    assert_ne!(tid, addr, "the transfer has its own port");
    assert_eq!(&d1[4..], &content[..512]);
    b.send_to(b"\x00\x04\x00\x01", tid).unwrap();
    assert_eq!(error_code(&recv(&b).unwrap().0), Some(5), "stranger gets ERROR 5");
    a.send_to(b"\x00\x04\x00\x01", tid).unwrap();
    let (d2, _) = recv(&a).unwrap();
    assert_eq!(&d2[..4], b"\x00\x03\x00\x02");
    for _ in 0..3 {
        a.send_to(b"\x00\x04\x00\x01", tid).unwrap(); // duplicates: nothing may come of them
    }
    a.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(recv(&a).is_none(), "a duplicate ACK caused a send (Sorcerer's Apprentice)");
    a.send_to(b"\x00\x04\x00\x02", tid).unwrap();
    let (d3, _) = recv(&a).unwrap();
    assert_eq!(&d3[4..], &content[1024..]);
    a.send_to(b"\x00\x04\x00\x03", tid).unwrap();
    settles(&mut server, baseline);
    assert_eq!(server.stats()["tftp.transfers_ok"], 1);
}

#[test]
fn malformed_packets_then_a_normal_transfer() {
    let dir = TempDir::new();
    fs::write(dir.root().join("f"), data(3000, 9)).unwrap();
    let (mut server, addr) = serve(&dir, &[]);
    let baseline = live_sockets(&mut server);
    let junk = vec![0x41u8; 65507];
    let cases: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
        ("one byte", b"\x00".to_vec(), None),
        ("truncated ACK", b"\x00\x04\x00".to_vec(), None),
        ("unknown opcode", b"\x00\x63hello\x00".to_vec(), Some(4)),
        ("missing NUL", b"\x00\x01f".to_vec(), Some(4)),
        ("missing mode NUL", b"\x00\x01f\x00octet".to_vec(), Some(4)),
        ("empty filename", b"\x00\x01\x00octet\x00".to_vec(), Some(4)),
        ("bad mode", b"\x00\x01f\x00binary\x00".to_vec(), Some(4)),
        ("mail mode", b"\x00\x01f\x00mail\x00".to_vec(), Some(4)),
        ("option without value", b"\x00\x01f\x00octet\x00blksize\x00".to_vec(), Some(4)),
        ("64 KiB of junk", junk, Some(4)),
        ("stray DATA", b"\x00\x03\x00\x01zz".to_vec(), None),
        ("stray ERROR", b"\x00\x05\x00\x00x\x00".to_vec(), None),
    ];
    for (what, pkt, expect) in cases {
        let s = udp_client(addr);
        s.set_read_timeout(Some(Duration::from_millis(if expect.is_some() { 3000 } else { 200 }))).unwrap();
        s.send_to(&pkt, addr).unwrap();
        let got = recv(&s).map(|(p, _)| error_code(&p));
        assert_eq!(got, expect.map(Some), "{what}");
    }
    let local = dir.out("f");
    ok(&hpa(addr, "binary", &format!("get f {}", local.display())), "normal transfer after junk");
    same(&local, &dir.root().join("f"));
    settles(&mut server, baseline);
}

#[test]
fn client_error_8_after_oack_ends_quietly() {
    let dir = TempDir::new();
    fs::write(dir.root().join("f"), data(3000, 10)).unwrap();
    let (mut server, addr) = serve(&dir, &[]);
    let baseline = live_sockets(&mut server);
    let s = udp_client(addr);
    s.send_to(&rrq("f", &[("tsize", "0")]), addr).unwrap();
    let (oack, tid) = recv(&s).unwrap();
    assert_eq!(oack, b"\x00\x06tsize\x003000\x00");
    s.send_to(b"\x00\x05\x00\x08just the size\x00", tid).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    assert!(recv(&s).is_none(), "no answer to the ERROR");
    settles(&mut server, baseline);
    assert!(server.log.iter().any(|l| l.contains("options declined")));
}

#[test]
fn ipv6_loopback() {
    let dir = TempDir::new();
    fs::write(dir.root().join("f"), data(100_000, 11)).unwrap();
    let root = dir.root();
    let mut server = Server::start(&["--tftp", "[::1]:0", "--tftp-root", root.to_str().unwrap()]);
    let addr = server.addr("tftp/udp");
    assert!(addr.is_ipv6());
    let baseline = live_sockets(&mut server);
    let l1 = dir.out("hpa");
    ok(&hpa(addr, "binary", &format!("get f {}", l1.display())), "tftp-hpa over ::1");
    same(&l1, &root.join("f"));
    let l2 = dir.out("curl");
    ok(&run("curl", &["-sS", "-g", "-o", l2.to_str().unwrap(), &curl_url(addr, "f")]), "curl over ::1");
    same(&l2, &root.join("f"));
    let l3 = dir.out("netlab");
    ok(&run(netlab_bin(), &["tftp", "get", &addr.to_string(), "f", l3.to_str().unwrap()]), "netlab over ::1");
    same(&l3, &root.join("f"));
    settles(&mut server, baseline);
}

#[test]
fn netlab_client_against_netlab_server() {
    let dir = TempDir::new();
    fs::write(dir.root().join("m1"), data(1 << 20, 12)).unwrap();
    fs::write(dir.root().join("text"), text()).unwrap();
    let (mut server, addr) = serve(&dir, &["--tftp-allow-upload"]);
    let baseline = live_sockets(&mut server);
    let a = addr.to_string();
    for (blk, win, mode) in
        [("512", "1", "octet"), ("1468", "8", "octet"), ("65464", "4", "octet"), ("700", "3", "netascii")]
    {
        let name = if mode == "netascii" { "text" } else { "m1" };
        let local = dir.out(&format!("{name}-{blk}"));
        let args = [
            "tftp",
            "get",
            &a,
            name,
            local.to_str().unwrap(),
            "--blksize",
            blk,
            "--windowsize",
            win,
            "--mode",
            mode,
        ];
        let out = run(netlab_bin(), &args);
        ok(&out, &format!("get {blk}/{win}/{mode}"));
        same(&local, &dir.root().join(name));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("bytes in") && stderr.contains("MB/s"), "last line: {stderr}");
        let up = format!("up-{blk}");
        let args = [
            "tftp",
            "put",
            &a,
            local.to_str().unwrap(),
            &up,
            "--blksize",
            blk,
            "--windowsize",
            win,
            "--mode",
            mode,
        ];
        ok(&run(netlab_bin(), &args), &format!("put {blk}/{win}/{mode}"));
        settles(&mut server, baseline);
        same(&dir.root().join(&up), &dir.root().join(name));
    }
    let local = dir.out("hashed");
    let out = run(netlab_bin(), &["tftp", "get", &a, "m1", local.to_str().unwrap(), "--sha256"]);
    ok(&out, "sha256");
    let sum = run("sha256sum", &[dir.root().join("m1").to_str().unwrap()]);
    let want = String::from_utf8_lossy(&sum.stdout).split_whitespace().next().unwrap().to_string();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&want));
    let out = run(netlab_bin(), &["tftp", "get", &a, "missing", local.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("File not found"));
    let t0 = Instant::now();
    settles(&mut server, baseline);
    assert!(t0.elapsed() < Duration::from_secs(20));
}

#[test]
fn netlab_client_fails_fast_when_no_server_listens() {
    // A port that was free a moment ago: nothing answers there but the kernel's port unreachable.
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("netlab-noserver-{}", std::process::id()));
    let started = Instant::now();
    let out = Command::new(netlab_bin())
        .args(["tftp", "get", &format!("127.0.0.1:{port}"), "f"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no TFTP server"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "it waited for every retry");
    assert!(!dir.exists(), "nothing is written when nothing was received");
}
