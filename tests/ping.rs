//! `netlab ping` against the real binary on loopback: iputils' format, IPv6, many targets, two
//! pingers side by side, argument errors, SIGINT. Loss, duplicates, damage and errors are in
//! `tests/ping_netns.rs`.

mod pingkit;

use std::time::Duration;

use pingkit::{finish, have, ping, raw_sockets, shape, spawn, threads};

const LIMIT: Duration = Duration::from_secs(20);

/// Our output and iputils' for the same run, compared line by line with the numbers blanked out.
fn same_shape_as_iputils(args: &[&str]) {
    if !raw_sockets() || !have("ping", "iputils ping") {
        return;
    }
    let ours = ping(args, LIMIT);
    let theirs = finish(spawn("ping", args), LIMIT);
    assert_eq!(ours.code, Some(0), "{ours:?}");
    assert_eq!(theirs.code, Some(0), "{theirs:?}");
    let ours: Vec<String> = ours.lines().iter().map(|l| shape(l)).collect();
    let theirs: Vec<String> = theirs.lines().iter().map(|l| shape(l)).collect();
    assert_eq!(ours, theirs);
}

#[test]
fn one_ipv4_target_prints_like_iputils() {
    same_shape_as_iputils(&["-c", "3", "-i", "0.2", "127.0.0.1"]);
    same_shape_as_iputils(&["-c", "2", "-i", "0.2", "-q", "127.0.0.1"]);
    same_shape_as_iputils(&["-c", "2", "-i", "0.2", "-s", "100", "-t", "9", "127.0.0.1"]);
}

#[test]
fn one_ipv6_target_prints_like_iputils() {
    same_shape_as_iputils(&["-c", "2", "-i", "0.2", "::1"]);
}

#[test]
fn exact_lines_for_one_target() {
    if !raw_sockets() {
        return;
    }
    let run = ping(&["-c", "3", "-i", "0.2", "-s", "100", "127.0.0.1"], LIMIT);
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines = run.lines();
    assert_eq!(lines[0], "PING 127.0.0.1 (127.0.0.1) 100(128) bytes of data.");
    for (i, l) in lines[1..4].iter().enumerate() {
        let prefix = format!("108 bytes from 127.0.0.1: icmp_seq={} ttl=64 time=", i + 1);
        assert!(l.starts_with(&prefix) && l.ends_with(" ms"), "{l}");
    }
    assert_eq!(lines[4], "");
    assert_eq!(lines[5], "--- 127.0.0.1 ping statistics ---");
    assert!(lines[6].starts_with("3 packets transmitted, 3 received, 0% packet loss, time "), "{}", lines[6]);
    assert!(lines[7].starts_with("rtt min/avg/max/mdev = "), "{}", lines[7]);
    assert_eq!(lines.len(), 8);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn fifty_targets_at_once_on_one_thread() {
    if !raw_sockets() {
        return;
    }
    let targets: Vec<String> = (1..=50).map(|i| format!("127.0.0.{i}")).collect();
    let mut args = vec!["-c", "8", "-i", "0.25"];
    args.extend(targets.iter().map(String::as_str));
    let mut full = vec!["ping"];
    full.extend_from_slice(&args);
    let child = spawn(pingkit::netlab_bin(), &full);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(threads(child.id()), Some(1), "one thread while pinging 50 targets");
    let run = finish(child, LIMIT);
    assert_eq!(run.code, Some(0), "{run:?}");
    let summaries: Vec<&str> = run.lines().into_iter().filter(|l| l.contains("xmt/rcv/%loss")).collect();
    assert_eq!(summaries.len(), 50);
    for (line, target) in summaries.iter().zip(&targets) {
        let expected = format!("{target:<10} : xmt/rcv/%loss = 8/8/0%, min/avg/max = ");
        assert!(line.starts_with(&expected), "{line}");
    }
    let replies = run.lines().iter().filter(|l| l.contains(" bytes, ")).count();
    assert_eq!(replies, 400, "one line per reply");
}

#[test]
fn summary_only_for_many_targets() {
    if !raw_sockets() {
        return;
    }
    let run = ping(&["-q", "-c", "2", "-i", "0.1", "127.0.0.1", "::1", "127.0.0.9"], LIMIT);
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines = run.lines();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1].starts_with("::1       : xmt/rcv/%loss = 2/2/0%"), "{}", lines[1]);
}

#[test]
fn two_pingers_side_by_side_count_only_their_own_replies() {
    if !raw_sockets() {
        return;
    }
    let args = ["ping", "-c", "20", "-i", "0.05", "127.0.0.1"];
    let a = spawn(pingkit::netlab_bin(), &args);
    let b = spawn(pingkit::netlab_bin(), &args);
    for run in [finish(a, LIMIT), finish(b, LIMIT)] {
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(run.stdout.contains("20 packets transmitted, 20 received, 0% packet loss"), "{}", run.stdout);
        assert!(!run.stdout.contains("DUP") && !run.stdout.contains('+'), "{}", run.stdout);
        assert_eq!(run.lines().iter().filter(|l| l.contains("bytes from")).count(), 20);
    }
}

#[test]
fn every_bad_argument_is_one_line_and_exit_2() {
    let cases: &[&[&str]] = &[
        &["-c", "0", "127.0.0.1"],
        &["-c", "abc", "127.0.0.1"],
        &["-t", "256", "127.0.0.1"],
        &["-t", "0", "127.0.0.1"],
        &["-s", "70000", "127.0.0.1"],
        &["-i", "-1", "127.0.0.1"],
        &["-W", "0", "127.0.0.1"],
        &["-w", "x", "127.0.0.1"],
        &[],
        &["no-such-host.invalid"],
        &["-4", "::1"],
        &["-6", "127.0.0.1"],
        &["-4", "-6", "127.0.0.1"],
        &["--bogus", "127.0.0.1"],
    ];
    for args in cases {
        let run = ping(args, Duration::from_secs(5));
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        assert!(run.elapsed < Duration::from_secs(1), "{args:?} took {:?}", run.elapsed);
    }
}

#[test]
fn sigint_prints_the_statistics_so_far() {
    if !raw_sockets() {
        return;
    }
    let child = spawn(pingkit::netlab_bin(), &["ping", "-i", "0.2", "127.0.0.1"]);
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let run = finish(child, Duration::from_secs(5));
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines = run.lines();
    let stats = lines.iter().position(|l| *l == "--- 127.0.0.1 ping statistics ---").expect("statistics");
    let replies = lines.iter().filter(|l| l.contains("bytes from")).count();
    assert!(replies >= 2, "{lines:?}");
    // The signal may land between a probe and its reply: that probe counts as sent, not received.
    let all = format!("{replies} packets transmitted, {replies} received, 0% packet loss");
    let one_out = format!("{} packets transmitted, {replies} received, ", replies + 1);
    assert!(lines[stats + 1].starts_with(&all) || lines[stats + 1].starts_with(&one_out), "{lines:?}");
    assert!(lines[stats + 2].starts_with("rtt min/avg/max/mdev"), "{lines:?}");
}

#[test]
fn deadline_ends_the_run() {
    if !raw_sockets() {
        return;
    }
    let run = ping(&["-w", "1", "-i", "0.3", "127.0.0.1"], LIMIT);
    assert_eq!(run.code, Some(0), "{run:?}");
    // Sends at 0, 0.3, 0.6 and 0.9 s; on a loaded machine the last may miss the deadline.
    let sent = ["4 packets transmitted, 4 received", "3 packets transmitted, 3 received"];
    assert!(sent.iter().any(|s| run.stdout.contains(s)), "{}", run.stdout);
    assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
}

#[test]
fn timestamps_prefix_each_reply() {
    if !raw_sockets() {
        return;
    }
    let run = ping(&["-D", "-c", "2", "-i", "0.1", "127.0.0.1"], LIMIT);
    assert_eq!(run.code, Some(0), "{run:?}");
    let replies: Vec<&str> = run.lines().into_iter().filter(|l| l.contains("bytes from")).collect();
    assert_eq!(replies.len(), 2);
    for l in replies {
        let (stamp, rest) = l.split_once("] ").expect("a [time] prefix");
        let (secs, micros) = stamp.trim_start_matches('[').split_once('.').expect("seconds.micros");
        assert!(secs.parse::<u64>().unwrap() > 1_600_000_000 && micros.len() == 6, "{l}");
        assert!(rest.starts_with("64 bytes from 127.0.0.1: icmp_seq="), "{l}");
    }
}

#[test]
fn a_closed_stdout_ends_the_run() {
    if !raw_sockets() {
        return;
    }
    use std::io::{BufRead, BufReader};
    let mut child = spawn(pingkit::netlab_bin(), &["ping", "-i", "0.05", "127.0.0.1"]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("PING 127.0.0.1"), "{line}");
    drop(out); // like `| head -1`
    let run = finish(child, Duration::from_secs(5));
    assert!(run.code.is_some(), "{run:?}");
}
