//! The "What it means" section of the report: where the threaded model wins (computed from the
//! run, so it cannot drift from the tables), and the mechanisms behind the numbers.

use std::fmt::Write as _;

use super::report::Table;

/// Differences smaller than this are noise on a shared machine, not a win.
const MARGIN: f64 = 0.05;
/// A row whose load generator was busy this share of the window measured the client, not the
/// server: its rate and latency are not compared.
const CLIENT_BOUND: f64 = 0.9;

fn client_bound(r: &super::BenchResult) -> bool {
    r.client_cpu_s >= CLIENT_BOUND * r.duration_s
}

/// Why the two designs measure as they do; true whatever the exact numbers of a run.
const WHY: &str = "### Why\n\n\
- **One connection.** A blocking thread goes straight from `read` to `write`; the reactor also calls \
  `epoll_wait` and reads once more to see `EAGAIN`. With nothing else to multiplex, readiness \
  notification is pure overhead, so a thread per connection is as fast or slightly faster here.\n\
- **Many connections.** The reactor takes many ready sockets from one `epoll_wait` and serves them \
  without a context switch; each threaded message wakes a sleeping thread, so the kernel switches \
  threads for every message, and with thousands of runnable threads the scheduler and cache misses \
  cost more. That is the gap in throughput and CPU per message from 10 connections up, and in p99 \
  latency at 1,000 and 10,000.\n\
- **Memory.** An idle reactor connection is a socket and a slab entry (about a hundred bytes of user \
  memory); an idle thread has a stack of its own (its touched pages, about 26 KB here) plus a kernel \
  stack, so the threaded model needs 10,000 threads and a few hundred MB to hold 10,000 idle clients. \
  It does not fail at that size on this machine, but the cost grows linearly.\n\
- **Chat fan-out.** A line to 1,000 members is one `Bytes` queued 1,000 times and written in the same \
  turn by the reactor; the threaded model takes a lock, hands the line to 1,000 writer threads and \
  wakes each, so its p99 grows to seconds while every line still arrives.\n\
- **UDP echo.** One socket is one loop in both designs (a reactor turn or a blocking thread), so \
  their throughput is alike; tail latency differs by run.\n\n";

/// Write "What it means" for the TCP echo, UDP echo and chat tables.
pub fn write(md: &mut String, scenarios: &[(&str, &Table)]) {
    let _ = writeln!(md, "## What it means\n\n### Where the threaded model wins\n");
    let mut wins = 0;
    for (name, table) in scenarios {
        let mut ns: Vec<usize> = table.keys().map(|(n, _)| *n).collect();
        ns.dedup();
        for n in ns {
            let (Some(re), Some(th)) =
                (table.get(&(n, "reactor".into())), table.get(&(n, "threaded".into())))
            else {
                continue;
            };
            let mut said = Vec::new();
            // Rate and latency only where neither row was bound by the load generator.
            let compare_rate = !client_bound(re) && !client_bound(th);
            if compare_rate && th.msgs_per_s > re.msgs_per_s * (1.0 + MARGIN) {
                said.push(format!("{:.0} vs {:.0} msgs/s", th.msgs_per_s, re.msgs_per_s));
            }
            if compare_rate && th.p99_us < re.p99_us * (1.0 - MARGIN) {
                said.push(format!("p99 {:.0} vs {:.0} µs", th.p99_us, re.p99_us));
            }
            if let (Some(t), Some(r)) = (th.server_ns_per_msg, re.server_ns_per_msg) {
                if t < r * (1.0 - MARGIN) {
                    said.push(format!("{t:.0} vs {r:.0} ns of server CPU per message"));
                }
            }
            if !said.is_empty() {
                wins += 1;
                let plural = if n == 1 { "" } else { "s" };
                let _ = writeln!(
                    md,
                    "- {name}, {n} client{plural}: threaded {} (threaded vs reactor).",
                    said.join(", ")
                );
            }
        }
    }
    if wins == 0 {
        let _ = writeln!(md, "- Nowhere in this run by more than {:.0}%.", MARGIN * 100.0);
    }
    let _ = writeln!(
        md,
        "\nDifferences under {:.0}% are not listed: on a shared machine they are noise. Where the load \
         generator was busy for {:.0}% of the window or more (client-bound), only server CPU per \
         message is compared.\n",
        MARGIN * 100.0,
        CLIENT_BOUND * 100.0
    );
    md.push_str(WHY);
}
