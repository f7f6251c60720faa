//! Process memory from `/proc/PID/status` and `smaps_rollup`, process start times, and
//! finding the PID that listens on a local TCP port.

use std::fs;
use std::path::Path;

/// (`process` column, value) pairs read from /proc.
pub type ProcStats = Vec<(&'static str, i64)>;

const STATUS_FIELDS: &[(&str, &str, i64)] = &[
    ("VmRSS", "rss_bytes", 1024),
    ("RssAnon", "rss_anon_bytes", 1024),
    ("RssFile", "rss_file_bytes", 1024),
    ("RssShmem", "rss_shmem_bytes", 1024),
    ("VmSize", "vm_size_bytes", 1024),
    ("VmHWM", "vm_hwm_bytes", 1024),
    ("VmSwap", "vm_swap_bytes", 1024),
    ("Threads", "threads", 1),
];

const ROLLUP_FIELDS: &[(&str, &str, i64)] = &[
    ("Pss", "pss_bytes", 1024),
    ("Pss_Anon", "pss_anon_bytes", 1024),
    ("Anonymous", "anonymous_bytes", 1024),
];

fn parse_fields(text: &str, fields: &[(&str, &'static str, i64)], out: &mut ProcStats) {
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        if let Some((_, col, mult)) = fields.iter().find(|(k, _, _)| *k == key) {
            if let Some(Ok(v)) = rest.split_whitespace().next().map(str::parse::<i64>) {
                out.push((col, v * mult));
            }
        }
    }
}

/// Reads memory figures of `pid` (status always, smaps_rollup when readable).
pub fn read_stats(pid: u32) -> std::io::Result<ProcStats> {
    let mut out = ProcStats::new();
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_fields(&status, STATUS_FIELDS, &mut out);
    if let Ok(rollup) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
        parse_fields(&rollup, ROLLUP_FIELDS, &mut out);
    }
    Ok(out)
}

/// Start time of `pid` in ns since the Unix epoch (from /proc/PID/stat and /proc/stat).
pub fn process_start_ns(pid: u32) -> Option<i64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime) counts from after the parenthesised command name.
    let after = &stat[stat.rfind(')')? + 2..];
    let ticks: i64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let btime: i64 = fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as i64 } else { 100 };
    btime
        .checked_mul(1_000_000_000)?
        .checked_add(ticks.checked_mul(1_000_000_000 / hz)?)
}

/// True when a process with this PID exists.
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The PID of the process listening on local TCP `port`, if it can be seen.
pub fn find_listening_pid(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 || cols[3] != "0A" {
                continue; // not LISTEN
            }
            let local_port = cols[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                inodes.push(format!("socket:[{}]", cols[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let me = std::process::id();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = fs::read_link(fd.path()) {
                if inodes.iter().any(|i| link.as_os_str() == i.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        let stats = read_stats(me).unwrap();
        let rss = stats.iter().find(|(c, _)| *c == "rss_bytes").unwrap().1;
        assert!(rss > 1 << 20);
        let start = process_start_ns(me).unwrap();
        let now = crate::now_ns();
        assert!(
            start <= now && now - start < 3_600 * 1_000_000_000,
            "start {start} now {now}"
        );
    }

    #[test]
    fn finds_listener_of_a_port() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        // Our own PID is skipped on purpose (the recorder never records itself).
        assert_eq!(find_listening_pid(port), None);
        let child = std::process::Command::new("python3")
            .args(["-c", "import socket,time,sys;s=socket.socket();s.bind(('127.0.0.1',0));s.listen();print(s.getsockname()[1],flush=True);time.sleep(30)"])
            .stdout(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = child else { return };
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let port: u16 = line.trim().parse().unwrap();
        assert_eq!(find_listening_pid(port), Some(child.id()));
        let _ = child.kill();
    }
}
