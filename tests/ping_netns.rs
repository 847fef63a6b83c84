//! `netlab ping` under loss, duplication, damage and ICMP errors, made by nftables rules in a network
//! namespace each test creates (and always removes): only that namespace's loopback is touched.

mod pingkit;

use std::time::Duration;

use pingkit::Netns;

const LIMIT: Duration = Duration::from_secs(20);

/// The namespace's rules: per chosen 127.x address, one misbehaviour.
const RULES: &str = r#"
table ip netlab_test {
    # Requests are dropped or rejected where they arrive (dropping them on output would fail the
    # send with EPERM instead); replies are duplicated or damaged as they leave.
    chain in {
        type filter hook input priority 0;
        # every other echo request to .2 is lost
        ip daddr 127.0.0.2 icmp type echo-request numgen inc mod 2 == 1 drop
        # .3 never answers
        ip daddr 127.0.0.3 icmp type echo-request drop
        # .6 is unreachable
        ip daddr 127.0.0.6 icmp type echo-request reject with icmp type host-unreachable
        # .7 is administratively prohibited
        ip daddr 127.0.0.7 icmp type echo-request reject with icmp type admin-prohibited
        # .8 answers only requests sent with TTL 7
        ip daddr 127.0.0.8 icmp type echo-request ip ttl != 7 drop
    }
    chain out {
        type filter hook output priority 0;
        # .4 answers twice
        ip saddr 127.0.0.4 icmp type echo-reply dup to 127.0.0.1 device "lo"
        # .5 answers with a damaged payload byte, and nft leaves the checksum as it was: wrong.
        # .9 gets two bytes changed by +1 and -1 in the same column of 16-bit words: the checksum
        # still adds up, only the payload comparison can tell.
        ip saddr 127.0.0.5 icmp type echo-reply @th,200,8 set 0xff
        ip saddr 127.0.0.9 icmp type echo-reply @th,192,8 set 0x11 @th,208,8 set 0x11
    }
}
table ip6 netlab_test6 {
    chain in {
        type filter hook input priority 0;
        # 2001:db8::6 (an address on this namespace's lo) is unreachable
        ip6 daddr 2001:db8::6 icmpv6 type echo-request reject with icmpv6 type addr-unreachable
    }
}
"#;

fn netns() -> Option<Netns> {
    let ns = Netns::new()?;
    ns.run(&["ip", "-6", "addr", "add", "2001:db8::6/128", "dev", "lo", "nodad"]);
    ns.nft(RULES);
    Some(ns)
}

/// Our output and iputils' for the same run in `ns`: same exit status, same lines with the numbers
/// blanked out.
fn same_shape_as_iputils(ns: &Netns, args: &[&str]) {
    if !pingkit::have("ping", "iputils ping") {
        return;
    }
    let ours = ns.ping(args, LIMIT);
    let mut full = vec!["netns", "exec", ns.name.as_str(), "ping"];
    full.extend(args);
    let theirs = pingkit::finish(pingkit::spawn("ip", &full), LIMIT);
    assert_eq!(ours.code, theirs.code, "{ours:?} {theirs:?}");
    let shape = |r: &pingkit::Run| r.lines().iter().map(|l| pingkit::shape(l)).collect::<Vec<_>>();
    assert_eq!(shape(&ours), shape(&theirs));
}

fn stats_line(out: &str) -> &str {
    out.lines().find(|l| l.contains("packets transmitted")).unwrap_or_else(|| panic!("no statistics: {out}"))
}

#[test]
fn loss_is_counted_and_still_exits_0_when_some_replies_came() {
    let Some(ns) = netns() else { return };
    let run = ns.ping(&["-c", "4", "-i", "0.1", "-W", "1", "127.0.0.2"], LIMIT);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        stats_line(&run.stdout).starts_with("4 packets transmitted, 2 received, 50% packet loss"),
        "{run:?}"
    );
    assert_eq!(run.lines().iter().filter(|l| l.contains("bytes from")).count(), 2);
    same_shape_as_iputils(&ns, &["-c", "4", "-i", "0.1", "-W", "1", "127.0.0.2"]);
}

#[test]
fn a_silent_host_times_out_and_exits_1() {
    let Some(ns) = netns() else { return };
    let run = ns.ping(&["-c", "2", "-i", "0.1", "-W", "0.5", "127.0.0.3"], LIMIT);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        stats_line(&run.stdout).starts_with("2 packets transmitted, 0 received, 100% packet loss"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("rtt"), "{run:?}");
    assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
    same_shape_as_iputils(&ns, &["-c", "2", "-i", "0.1", "-W", "0.5", "127.0.0.3"]);
}

#[test]
fn duplicates_are_flagged_and_counted() {
    let Some(ns) = netns() else { return };
    let run = ns.ping(&["-c", "3", "-i", "0.1", "-W", "1", "127.0.0.4"], LIMIT);
    assert_eq!(run.code, Some(0), "{run:?}");
    // As with iputils, the run ends as soon as the last probe is answered: its duplicate, a moment
    // later, is not waited for.
    assert_eq!(run.lines().iter().filter(|l| l.ends_with(" ms (DUP!)")).count(), 2, "{run:?}");
    assert!(
        stats_line(&run.stdout)
            .starts_with("3 packets transmitted, 3 received, +2 duplicates, 0% packet loss")
    );
    // Without a count the run goes on, and every probe's duplicate shows up.
    let run = ns.ping(&["-w", "0.45", "-i", "0.2", "127.0.0.4"], LIMIT);
    assert!(
        stats_line(&run.stdout).starts_with("3 packets transmitted, 3 received, +3 duplicates"),
        "{run:?}"
    );
}

#[test]
fn damaged_replies_are_diagnosed_not_counted() {
    let Some(ns) = netns() else { return };
    let run = ns.ping(&["-c", "2", "-i", "0.1", "-W", "0.5", "127.0.0.9"], LIMIT);
    assert_eq!(run.code, Some(1), "{run:?}");
    // The nft rule rewrites payload bytes 16 and 18 (0x10 and 0x12 in our pattern) to 0x11.
    assert_eq!(run.stdout.matches("wrong data byte #16 should be 0x10 but was 0x11").count(), 2, "{run:?}");
    assert!(
        stats_line(&run.stdout)
            .starts_with("2 packets transmitted, 0 received, +2 corrupted, 100% packet loss")
    );

    let run = ns.ping(&["-c", "2", "-i", "0.1", "-W", "0.5", "127.0.0.5"], LIMIT);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout.matches("64 bytes from 127.0.0.5: icmp_seq=").count(), 2, "{run:?}");
    assert_eq!(run.stdout.matches(" (BAD CHECKSUM!)").count(), 2, "{run:?}");
    assert!(stats_line(&run.stdout).contains(", +2 corrupted, 100% packet loss"), "{run:?}");
}

#[test]
fn unreachable_errors_quote_our_probes() {
    let Some(ns) = netns() else { return };
    let run = ns.ping(&["-c", "2", "-i", "0.1", "-W", "1", "127.0.0.6"], LIMIT);
    assert_eq!(run.code, Some(1), "{run:?}");
    let lines = run.lines();
    assert_eq!(lines[1], "From 127.0.0.6 icmp_seq=1 Destination Host Unreachable", "{run:?}");
    assert_eq!(lines[2], "From 127.0.0.6 icmp_seq=2 Destination Host Unreachable", "{run:?}");
    assert!(
        stats_line(&run.stdout).starts_with("2 packets transmitted, 0 received, +2 errors, 100% packet loss")
    );
    // Errors settle their probes: no waiting for the 1 s timeout after the last one.
    assert!(run.elapsed < Duration::from_millis(900), "{:?}", run.elapsed);

    let run = ns.ping(&["-c", "1", "-W", "1", "127.0.0.7"], LIMIT);
    assert!(run.stdout.contains("From 127.0.0.7 icmp_seq=1 Packet filtered"), "{run:?}");

    same_shape_as_iputils(&ns, &["-c", "2", "-i", "0.2", "-W", "1", "127.0.0.6"]);
}

#[test]
fn ipv6_errors_on_raw_and_datagram_sockets() {
    let Some(ns) = netns() else { return };
    let args = ["-c", "2", "-i", "0.1", "-W", "1", "2001:db8::6"];
    for datagram in [false, true] {
        if datagram {
            ns.run(&["sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647"]);
        }
        let run = ns.ping_env(&args, &[("RUST_LOG", "netlab_icmp=debug")], LIMIT);
        let kind = if datagram { "ICMPv6 datagram socket open" } else { "ICMPv6 raw socket open" };
        assert!(run.stderr.contains(kind), "{run:?}");
        assert_eq!(run.code, Some(1), "{run:?}");
        let line = "From 2001:db8::6 icmp_seq=1 Destination unreachable: Address unreachable";
        assert_eq!(run.lines()[1], line, "{run:?}");
        assert!(
            stats_line(&run.stdout)
                .starts_with("2 packets transmitted, 0 received, +2 errors, 100% packet loss")
        );
    }
    same_shape_as_iputils(&ns, &args);
}

#[test]
fn many_targets_each_get_their_own_verdict() {
    let Some(ns) = netns() else { return };
    let targets = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.6"];
    let mut args = vec!["-c", "4", "-i", "0.1", "-W", "0.5"];
    args.extend(targets);
    let run = ns.ping(&args, LIMIT);
    assert_eq!(run.code, Some(1), "some targets never answered: {run:?}");
    let summary = |t: &str| {
        run.lines()
            .into_iter()
            .find(|l| l.starts_with(t) && l.contains("xmt/rcv"))
            .expect("summary")
            .to_string()
    };
    assert!(summary("127.0.0.1 ").contains("= 4/4/0%"), "{run:?}");
    assert!(summary("127.0.0.2 ").contains("= 4/2/50%"), "{run:?}");
    assert!(summary("127.0.0.3 ").contains("= 4/0/100%"), "{run:?}");
    assert!(summary("127.0.0.4 ").contains("= 4/4/0%") && summary("127.0.0.4 ").contains("dup=4"), "{run:?}");
    assert!(summary("127.0.0.6 ").contains("= 4/0/100%") && summary("127.0.0.6 ").contains("errors=4"));
    assert!(run.stdout.contains("127.0.0.6 : [1], Destination Host Unreachable from 127.0.0.6"), "{run:?}");
}

#[test]
fn ttl_option_reaches_the_wire() {
    let Some(ns) = netns() else { return };
    let run = ns.ping(&["-c", "1", "-t", "7", "-W", "1", "127.0.0.8"], LIMIT);
    assert_eq!(run.code, Some(0), "{run:?}");
    let run = ns.ping(&["-c", "1", "-t", "8", "-W", "0.3", "127.0.0.8"], LIMIT);
    assert_eq!(run.code, Some(1), "{run:?}");
}

#[test]
fn datagram_ping_socket_gets_replies_and_unreachable_errors() {
    let Some(ns) = netns() else { return };
    // ping_group_range is per namespace: allow every group the unprivileged datagram socket.
    ns.run(&["sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647"]);
    let log = [("RUST_LOG", "netlab_icmp=debug")];
    let run = ns.ping_env(&["-c", "2", "-i", "0.1", "-W", "1", "127.0.0.1"], &log, LIMIT);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("ICMPv4 datagram socket open"), "{run:?}");
    assert!(stats_line(&run.stdout).starts_with("2 packets transmitted, 2 received, 0% packet loss"));
    // Errors reach a datagram socket only through its error queue (IP_RECVERR).
    let run = ns.ping_env(&["-c", "2", "-i", "0.1", "-W", "1", "127.0.0.6"], &log, LIMIT);
    assert!(run.stderr.contains("ICMPv4 datagram socket open"), "{run:?}");
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stdout.matches("From 127.0.0.6 icmp_seq=").count(), 2, "{run:?}");
    assert!(run.stdout.contains("From 127.0.0.6 icmp_seq=1 Destination Host Unreachable"), "{run:?}");
    assert!(
        stats_line(&run.stdout).starts_with("2 packets transmitted, 0 received, +2 errors, 100% packet loss")
    );
}

#[test]
fn no_permission_is_one_clear_line_and_exit_2() {
    let Some(ns) = netns() else { return };
    if !pingkit::have("setpriv", "setpriv (util-linux)") {
        return;
    }
    // A fresh namespace keeps the default ping_group_range ("1 0": no datagram ping sockets), and
    // setpriv drops CAP_NET_RAW: neither socket kind is permitted.
    let bin = pingkit::netlab_bin();
    let args = [
        "netns",
        "exec",
        &ns.name,
        "setpriv",
        "--inh-caps=-net_raw",
        "--bounding-set=-net_raw",
        bin,
        "ping",
        "-c",
        "1",
        "127.0.0.1",
    ];
    let run = pingkit::finish(pingkit::spawn("ip", &args), LIMIT);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    for hint in ["root", "setcap cap_net_raw+ep", "ping_group_range"] {
        assert!(run.stderr.contains(hint), "{hint}: {}", run.stderr);
    }
    assert!(run.stdout.is_empty(), "{run:?}");
}

/// Three namespaces in a row, `a — r — b`, with `r` forwarding: a real router between pinger and
/// target, on addresses that exist only inside these namespaces.
fn routed() -> Option<(Netns, Netns, Netns)> {
    let (a, r, b) = (Netns::new()?, Netns::new()?, Netns::new()?);
    // Created inside a namespace, the veth names cannot collide with parallel tests'.
    a.run(&["ip", "link", "add", "a0", "type", "veth", "peer", "name", "r0", "netns", &r.name]);
    b.run(&["ip", "link", "add", "b0", "type", "veth", "peer", "name", "r1", "netns", &r.name]);
    for (ns, dev, addr) in
        [(&a, "a0", "10.201.1.1/24"), (&r, "r0", "10.201.1.2/24"), (&r, "r1", "10.201.2.1/24")]
    {
        ns.run(&["ip", "addr", "add", addr, "dev", dev]);
        ns.run(&["ip", "link", "set", dev, "up"]);
    }
    b.run(&["ip", "addr", "add", "10.201.2.2/24", "dev", "b0"]);
    b.run(&["ip", "link", "set", "b0", "up"]);
    a.run(&["ip", "route", "add", "default", "via", "10.201.1.2"]);
    b.run(&["ip", "route", "add", "default", "via", "10.201.2.1"]);
    r.run(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    Some((a, r, b))
}

#[test]
fn time_exceeded_from_a_router() {
    let Some((a, _r, _b)) = routed() else { return };
    let run = a.ping(&["-c", "2", "-i", "0.1", "-W", "2", "-t", "2", "10.201.2.2"], LIMIT);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("64 bytes from 10.201.2.2: icmp_seq=1 ttl=63 time="), "{run:?}");
    let run = a.ping(&["-c", "2", "-i", "0.1", "-W", "2", "-t", "1", "10.201.2.2"], LIMIT);
    assert_eq!(run.code, Some(1), "{run:?}");
    let lines = run.lines();
    assert_eq!(lines[1], "From 10.201.1.2 icmp_seq=1 Time to live exceeded", "{run:?}");
    assert_eq!(lines[2], "From 10.201.1.2 icmp_seq=2 Time to live exceeded", "{run:?}");
    assert!(
        stats_line(&run.stdout).starts_with("2 packets transmitted, 0 received, +2 errors, 100% packet loss")
    );
}
