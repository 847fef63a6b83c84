//! `netlab bench report`: turn the JSON lines of a run into `bench/REPORT.md` and SVG plots.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;

use super::{BenchArgs, BenchResult, proc};

/// How the numbers were taken, and what is fair about them.
const METHOD: &str = "## Method\n\n\
- **Same protocol code.** Both models run the same crates (`netlab-echo`'s reflection rule, \
  `netlab-chat`'s `Chat` core); only the I/O model differs.\n\
- **The threaded baseline** (`src/threaded/`): blocking std sockets, one OS thread per TCP connection \
  (128 KiB stack, a 16 KiB read buffer on it), `TCP_NODELAY` and the reactor's listen backlog; one \
  thread for UDP echo; chat keeps `Chat` behind one `Mutex`, with a reader and a writer thread per \
  member and a per-member outbox capped at the chat's output limit, so a client that stops reading \
  blocks only its own writer.\n\
- **The floor.** `minimal` is a hand-written mio echo loop with nothing else in it; `floor` is one \
  `read` + one `write` per message on a loopback pair with no poll at all.\n\
- **Fairness.** The load generator (`netlab bench`) is one thread around its own `mio::Poll`, so on \
  this 2-core machine it takes at most one core (nothing pins it: a threaded server that spreads over \
  both cores competes with it); its CPU time is in the `client CPU s` column. A row whose load \
  generator was busy for 90% of the window or more is **client-bound**: its msgs/s and latency \
  measure the client as much as the server, and only server CPU per message compares the models \
  there. Server CPU is read from `/proc/PID/stat` (all threads, living or \
  exited) over the measured window only. Servers are started once and loaded in turn, one \
  connection count at a time (reactor, threaded, minimal), so slow drifts hit all of them; idle \
  runs start fresh servers so that RSS before connecting is a true baseline.\n\
- **Caveats.** The machine is shared (other builds may run during a quick run): compare rows taken \
  close together, and prefer `make bench` (3 rounds, median) to `make bench-quick` (1 round). RSS \
  counts user-space memory only; each thread also costs a kernel stack, counted machine-wide in the \
  idle table's `kernel/conn` column with both ends' socket buffers. In a closed loop, p99 latency \
  grows with the connection count by Little's law (N messages in flight / throughput).\n\n";

/// Results of one scenario keyed by (connections, label); repeats keep the median by msgs/s.
pub type Table = BTreeMap<(usize, String), BenchResult>;

pub fn write(args: &BenchArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.results)
        .with_context(|| format!("reading {}", args.results.display()))?;
    let mut all: Vec<BenchResult> = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| l.trim_start().starts_with('{')) {
        all.push(
            serde_json::from_str(line).with_context(|| format!("{}:{}", args.results.display(), i + 1))?,
        );
    }
    let dir = args.out.parent().unwrap_or(Path::new(".")).to_path_buf();
    std::fs::create_dir_all(&dir)?;
    let table = |scenario: &str| -> Table {
        let mut groups: BTreeMap<(usize, String), Vec<BenchResult>> = BTreeMap::new();
        for r in all.iter().filter(|r| r.scenario == scenario) {
            groups.entry((r.conns, r.label.clone())).or_default().push(r.clone());
        }
        groups
            .into_iter()
            .map(|(k, mut v)| {
                v.sort_by(|a, b| a.msgs_per_s.total_cmp(&b.msgs_per_s));
                (k, v[v.len() / 2].clone())
            })
            .collect()
    };
    let (tcp, udp, idle, floor) = (table("tcp-echo"), table("udp-echo"), table("idle"), table("floor"));
    let chat = table("chat");
    let tftp = table("tftp");
    let mut md = String::new();
    let machine = proc::machine();
    let _ = writeln!(md, "# netlab benchmark report\n");
    let _ = writeln!(
        md,
        "Machine: {machine}. Produced by `{}` (scripts/bench.sh), which starts the reactor \
         (`netlab serve`), the threaded baseline (`netlab serve --model threaded`) and a minimal \
         hand-written mio echo loop (`netlab bench minimal-server`), then runs every scenario against \
         each of them in turn, interleaved, with one load-generator process (`netlab bench`, one thread) \
         on the same machine. Every row's exact command is in `{}`.\n",
        args.command,
        args.results.display()
    );
    let _ = writeln!(
        md,
        "Plots: [throughput](echo_throughput.svg), [p99 latency](echo_p99.svg), \
        [memory per connection](idle_memory.svg), [threads](idle_threads.svg).\n"
    );
    let _ = writeln!(md, "![throughput](echo_throughput.svg) ![p99](echo_p99.svg)\n");
    let _ = writeln!(md, "![memory](idle_memory.svg) ![threads](idle_threads.svg)\n");
    md.push_str(METHOD);
    findings(&mut md, &tcp, &idle, &floor);
    chat_findings(&mut md, &chat);
    super::meaning::write(&mut md, &[("TCP echo", &tcp), ("UDP echo", &udp), ("Chat", &chat)]);
    let echo = "Closed loop, {size} B messages, depth {depth}, {secs} s per row; every echoed byte checked.";
    echo_table(&mut md, "TCP echo", echo, &tcp, &machine, &args.command);
    echo_table(&mut md, "UDP echo", echo, &udp, &machine, &args.command);
    let fanout = "Chat fan-out: N members in #lobby, {depth} of them each send 10 lines/s for {secs} s; msgs/s = \
        deliveries per second (a line to one receiver); latency from the sender's write to each receiver's read; \
        every line checked to reach every other member in order (lost = missing deliveries).";
    echo_table(&mut md, "Chat", fanout, &chat, &machine, &args.command);
    let files = "TFTP (reactor only: the threaded model serves no TFTP): N parallel `netlab tftp get` processes \
        download a {size}-byte file back to back for {secs} s; msgs/s = files per second, latency = one download \
        including its process start; every copy compared with the original.";
    echo_table(&mut md, "TFTP", files, &tftp, &machine, &args.command);
    idle_table(&mut md, &idle, &machine, &args.command);
    if let Some(f) = floor.values().next() {
        let _ = writeln!(
            md,
            "## Syscall floor\n\nOne `read` + one `write` of {} bytes on a loopback TCP pair, one thread, blocking: \
             **{:.0} ns** CPU per message ({} messages; `{}`). Machine: {machine}.\n",
            f.size,
            f.server_ns_per_msg.unwrap_or(0.0),
            f.msgs,
            f.command
        );
    }
    std::fs::write(&args.out, md)?;
    let series = |t: &Table, f: &dyn Fn(&BenchResult) -> Option<f64>| -> Vec<(String, Vec<(f64, f64)>)> {
        let mut by: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for ((n, label), r) in t {
            if let Some(y) = f(r) {
                by.entry(label.clone()).or_default().push((*n as f64, y));
            }
        }
        by.into_iter().collect()
    };
    plot(
        &dir.join("echo_throughput.svg"),
        "TCP echo throughput",
        "msgs/s",
        &series(&tcp, &|r| Some(r.msgs_per_s)),
        false,
        SeriesLabelPosition::UpperRight,
    )?;
    plot(
        &dir.join("echo_p99.svg"),
        "TCP echo p99 latency",
        "p99 (µs)",
        &series(&tcp, &|r| Some(r.p99_us.max(1.0))),
        true,
        SeriesLabelPosition::UpperLeft,
    )?;
    plot(
        &dir.join("idle_memory.svg"),
        "Server RSS per idle connection",
        "bytes",
        &series(&idle, &|r| r.rss_per_conn),
        true,
        SeriesLabelPosition::MiddleLeft,
    )?;
    plot(
        &dir.join("idle_threads.svg"),
        "Server threads holding N connections",
        "threads",
        &series(&idle, &|r| r.server_threads.map(|t| t as f64)),
        true,
        SeriesLabelPosition::UpperLeft,
    )?;
    eprintln!("wrote {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into())
}

fn echo_table(md: &mut String, title: &str, what: &str, t: &Table, machine: &str, command: &str) {
    if t.is_empty() {
        return;
    }
    let first = t.values().next().cloned().unwrap_or_default();
    let what = what
        .replace("{size}", &first.size.to_string())
        .replace("{depth}", &first.depth.to_string())
        .replace("{secs}", &format!("{:.0}", first.duration_s));
    let _ = writeln!(
        md,
        "## {title}\n\n{what} Server CPU from /proc/PID/stat over the window. Machine: {machine}. \
         Command: `{command}`; one row: `{}`.\n",
        first.command
    );
    let _ = writeln!(
        md,
        "| conns | server | msgs/s | MB/s | p50 µs | p99 µs | p99.9 µs | server CPU % | server CPU ns/msg | threads | errors | lost | client CPU s |"
    );
    let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for ((n, label), r) in t {
        let _ = writeln!(
            md,
            "| {n} | {label} | {:.0} | {:.2} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {:.2} |",
            r.msgs_per_s,
            r.mb_per_s,
            r.p50_us,
            r.p99_us,
            r.p999_us,
            fmt_opt(r.server_cpu_s.map(|c| c * 100.0 / r.duration_s.max(1e-9))),
            fmt_opt(r.server_ns_per_msg),
            r.server_threads.map(|t| t.to_string()).unwrap_or("-".into()),
            r.errors,
            r.lost,
            r.client_cpu_s
        );
    }
    md.push('\n');
}

fn idle_table(md: &mut String, t: &Table, machine: &str, command: &str) {
    if t.is_empty() {
        return;
    }
    let first = t.values().next().cloned().unwrap_or_default();
    let _ = writeln!(
        md,
        "## Idle connections\n\nN connections held open for {:.0} s; server RSS, threads and fds from /proc; kernel = \
         machine-wide KernelStack+Slab growth (both ends' sockets, plus thread stacks) per connection; alive = \
         connections that echoed one byte at the end. Machine: {machine}. Command: `{command}`; one row: `{}`.\n",
        first.duration_s, first.command
    );
    let _ = writeln!(
        md,
        "| conns | server | RSS before KiB | RSS KiB | RSS/conn B | kernel/conn B | threads | fds | alive |"
    );
    let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for ((n, label), r) in t {
        let _ = writeln!(
            md,
            "| {n} | {label} | {} | {} | {} | {} | {} | {} | {} |",
            r.server_rss_before_kib.map(|v| v.to_string()).unwrap_or("-".into()),
            r.server_rss_kib.map(|v| v.to_string()).unwrap_or("-".into()),
            fmt_opt(r.rss_per_conn),
            fmt_opt(r.kernel_per_conn),
            r.server_threads.map(|v| v.to_string()).unwrap_or("-".into()),
            r.server_fds.map(|v| v.to_string()).unwrap_or("-".into()),
            r.connected
        );
    }
    md.push('\n');
}

/// What the numbers say, computed from them (so the prose cannot drift from the tables).
fn findings(md: &mut String, tcp: &Table, idle: &Table, floor: &Table) {
    let _ = writeln!(md, "## What the numbers say\n");
    let get = |t: &Table, n: usize, l: &str| t.get(&(n, l.to_string())).cloned();
    let floor_ns = floor.values().next().and_then(|f| f.server_ns_per_msg);
    let mut ns: Vec<usize> = tcp.keys().map(|(n, _)| *n).collect();
    ns.dedup();
    for n in ns {
        let (Some(re), Some(th)) = (get(tcp, n, "reactor"), get(tcp, n, "threaded")) else { continue };
        let mut line = format!(
            "- **TCP echo, {n} conns:** reactor {:.0} msgs/s, p99 {:.0} µs; threaded {:.0} msgs/s, p99 {:.0} µs \
             (reactor/threaded throughput ×{:.2}).",
            re.msgs_per_s,
            re.p99_us,
            th.msgs_per_s,
            th.p99_us,
            re.msgs_per_s / th.msgs_per_s.max(1e-9)
        );
        if let (Some(a), Some(b)) = (re.server_ns_per_msg, th.server_ns_per_msg) {
            let _ = write!(line, " Server CPU per message: reactor {a:.0} ns, threaded {b:.0} ns");
            if let Some(m) = get(tcp, n, "minimal").and_then(|m| m.server_ns_per_msg) {
                let _ = write!(
                    line,
                    ", minimal mio loop {m:.0} ns (reactor = {:+.1}% vs minimal)",
                    (a / m - 1.0) * 100.0
                );
            }
            if let Some(f) = floor_ns {
                let _ = write!(line, "; read+write floor {f:.0} ns (reactor ×{:.2} the floor)", a / f);
            }
            line.push('.');
        }
        let _ = writeln!(md, "{line}");
    }
    let mut ns: Vec<usize> = idle.keys().map(|(n, _)| *n).collect();
    ns.dedup();
    for n in ns {
        for l in ["reactor", "threaded"] {
            let Some(r) = get(idle, n, l) else { continue };
            let _ = writeln!(
                md,
                "- **Idle, {n} conns, {l}:** {} threads, {} B RSS per connection ({} KiB total), {} of {n} alive.",
                r.server_threads.map(|v| v.to_string()).unwrap_or("-".into()),
                fmt_opt(r.rss_per_conn),
                r.server_rss_kib.map(|v| v.to_string()).unwrap_or("-".into()),
                r.connected
            );
        }
    }
}

fn chat_findings(md: &mut String, chat: &Table) {
    let mut ns: Vec<usize> = chat.keys().map(|(n, _)| *n).collect();
    ns.dedup();
    for n in ns {
        let (Some(re), Some(th)) = (chat.get(&(n, "reactor".into())), chat.get(&(n, "threaded".into())))
        else {
            continue;
        };
        let _ = writeln!(
            md,
            "- **Chat, {n} members, {} senders:** reactor {:.0} deliveries/s, p99 {:.0} µs, {} lost; \
             threaded {:.0} deliveries/s, p99 {:.0} µs, {} lost ({} threads).",
            re.depth,
            re.msgs_per_s,
            re.p99_us,
            re.lost,
            th.msgs_per_s,
            th.p99_us,
            th.lost,
            th.server_threads.map(|t| t.to_string()).unwrap_or("-".into())
        );
    }
    md.push('\n');
}

/// One colour per server in every plot, so charts can be compared at a glance.
fn server_color(label: &str) -> RGBAColor {
    match label {
        "reactor" => RGBColor(0x1b, 0x9e, 0x77).to_rgba(),
        "threaded" => RGBColor(0xd9, 0x5f, 0x02).to_rgba(),
        "minimal" => RGBColor(0x75, 0x70, 0xb3).to_rgba(),
        other => Palette99::pick(other.len()).to_rgba(),
    }
}

/// Axis ticks as plain numbers: `10000`, `2.5`, never `10000.0`.
fn format_tick(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v:.1}") }
}

/// A line plot of y against connection count (log x), one line per server.
fn plot(
    path: &Path,
    title: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    log_y: bool,
    legend: SeriesLabelPosition,
) -> Result<()> {
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x_max, mut y_min, mut y_max) = (10.0f64, f64::MAX, 1.0f64);
    for &(x, y) in points {
        x_max = x_max.max(x * 1.5);
        y_min = y_min.min(y);
        y_max = y_max.max(y * 1.2);
    }
    let y_min = if log_y { (y_min * 0.8).max(0.5).min(y_max / 2.0) } else { 0.0 };
    let root = SVGBackend::new(path, (640, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut builder = ChartBuilder::on(&root);
    builder.caption(title, ("sans-serif", 20)).margin(12).x_label_area_size(40).y_label_area_size(70);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart.map_err(|e| anyhow!("{e}"))?;
            chart
                .configure_mesh()
                .x_desc("connections")
                .y_desc(y_label)
                .x_label_formatter(&|x| format_tick(*x))
                .y_label_formatter(&|y| format_tick(*y))
                .draw()
                .map_err(|e| anyhow!("{e}"))?;
            for (label, pts) in series.iter() {
                let color = server_color(label);
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                    .map_err(|e| anyhow!("{e}"))?
                    .label(label.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| anyhow!("{e}"))?;
            }
            chart
                .configure_series_labels()
                .position(legend.clone())
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| anyhow!("{e}"))?;
        }};
    }
    if log_y {
        draw!(builder.build_cartesian_2d((1.0..x_max).log_scale(), (y_min..y_max).log_scale()));
    } else {
        draw!(builder.build_cartesian_2d((1.0..x_max).log_scale(), 0.0..y_max));
    }
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
