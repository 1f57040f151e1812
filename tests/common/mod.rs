//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The deskwatch binary built for these tests.
pub fn deskwatch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deskwatch"));
    c.env("RUST_LOG", "warn");
    c
}

/// Runs deskwatch with `args`, returning its output (whatever the exit code).
pub fn run(args: &[&str]) -> Output {
    deskwatch().args(args).output().expect("deskwatch runs")
}

/// Runs a query and returns stdout.
pub fn query(data_dir: &Path, format: &str, sql: &str) -> String {
    let out = run(&[
        "query",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--format",
        format,
        sql,
    ]);
    assert!(
        out.status.success(),
        "query failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A data directory holding `tickets` simulated tickets at `per_day` a day (seed `seed`),
/// ingested with the CLI; returns its path (inside `dir`).
pub fn ingested(dir: &Path, tickets: u64, per_day: u64, seed: u64) -> PathBuf {
    let file = dir.join("sim.ndjson");
    let data = dir.join("data");
    let out = run(&[
        "simulate",
        "--tickets",
        &tickets.to_string(),
        "--per-day",
        &per_day.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = run(&[
        "ingest",
        "--data-dir",
        data.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    data
}

/// Simulates `tickets` tickets with `seed` into `path`.
pub fn simulate(path: &Path, tickets: u64, seed: u64) {
    let out = run(&[
        "simulate",
        "--tickets",
        &tickets.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Simulated events with their JSON bytes.
pub fn simulated(tickets: u64, seed: u64) -> Vec<(deskwatch::event::TicketEvent, Vec<u8>)> {
    deskwatch::simulate::Simulator::new(deskwatch::simulate::Params {
        tickets,
        seed,
        ..Default::default()
    })
    .map(|e| {
        let raw = e.to_json();
        (e, raw)
    })
    .collect()
}

/// Submissions borrowing `events`, for `Engine::submit`.
pub fn submissions(
    events: &[(deskwatch::event::TicketEvent, Vec<u8>)],
) -> Vec<deskwatch::engine::Submission<'_>> {
    events
        .iter()
        .map(|(event, raw)| deskwatch::engine::Submission {
            event,
            raw,
            text: None,
        })
        .collect()
}

/// A plain HTTP/1.1 request to `addr` (127.0.0.1:port); returns the status and body.
pub fn http(method: &str, addr: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(head, b)| {
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked")
            {
                dechunk(b)
            } else {
                b.to_owned()
            }
        })
        .unwrap_or_default();
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 200 ms until it returns `Some` or `seconds` pass.
pub fn wait_for<T>(seconds: u64, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A `deskwatch serve` child process, killed when dropped.
pub struct Server {
    pub child: std::process::Child,
    pub addr: String,
    log: std::path::PathBuf,
}

impl Server {
    /// Starts `deskwatch serve --config config` on a free port; waits for /healthz.
    pub fn start(config: &Path, data_dir: &Path) -> Server {
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .unwrap();
        let child = deskwatch()
            .env("RUST_LOG", "info")
            .args(["serve", "--config", config.to_str().unwrap()])
            .args(["--data-dir", data_dir.to_str().unwrap(), "--listen", &addr])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("deskwatch serve starts");
        let server = Server {
            child,
            addr,
            log: data_dir.with_extension("log"),
        };
        wait_for(30, || server.get("/healthz").filter(|(s, _)| *s == 200))
            .expect("the server answers /healthz within 30 s");
        server
    }

    /// Where its stderr goes.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// GET `path`; `None` when the server does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http("GET", &self.addr, path, "").ok()
    }

    /// POST `body` to `path`.
    pub fn post(&self, path: &str, body: &str) -> (u16, String) {
        http("POST", &self.addr, path, body).expect("the server answers")
    }

    /// Runs `sql` through /v1/query; returns the rows as JSON.
    pub fn sql(&self, sql: &str) -> serde_json::Value {
        let body = serde_json::json!({ "sql": sql }).to_string();
        let (status, text) = self.post("/v1/query", &body);
        assert_eq!(status, 200, "{sql}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["rows"].clone()
    }

    /// `select count(*)` of `table`.
    pub fn count(&self, table: &str) -> u64 {
        self.sql(&format!("select count(*) as n from {table}"))[0]["n"]
            .as_u64()
            .unwrap_or(0)
    }

    /// True when /readyz answers 200.
    pub fn ready(&self) -> bool {
        self.get("/readyz").is_some_and(|(s, _)| s == 200)
    }

    /// Stops with SIGTERM (graceful) and waits.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = wait_for(30, || self.child.try_wait().ok().flatten());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A one-thread HTTP sink that records request bodies.
pub fn webhook_sink() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            use std::io::{BufRead, Read, Write};
            let mut reader = std::io::BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok()
                && let Ok(v) = serde_json::from_slice(&body)
            {
                s.lock().unwrap().push(v);
            }
            let mut stream = reader.into_inner();
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        }
    });
    (addr, seen)
}

/// The first alert a [`webhook_sink`] received for `ticket` at `level` with `status`.
pub fn received_alert(
    seen: &std::sync::Mutex<Vec<serde_json::Value>>,
    ticket: &str,
    level: &str,
    status: &str,
) -> Option<serde_json::Value> {
    seen.lock().unwrap().iter().find_map(|body| {
        body["alerts"].as_array()?.iter().find_map(|a| {
            (a["labels"]["ticket_id"] == ticket
                && a["labels"]["level"] == level
                && a["status"] == status)
                .then(|| a.clone())
        })
    })
}

/// A tool from PATH; without it `None` and a notice, or a panic when
/// `DESKWATCH_REQUIRE_TOOLS=1` (set by scripts/test.sh).
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("DESKWATCH_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{name} is required (DESKWATCH_REQUIRE_TOOLS=1); run scripts/test.sh");
        }
        eprintln!("NOTICE: {name} not installed; skipping (scripts/test.sh installs it)");
    }
    found
}

/// A child process killed when dropped.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Alertmanager on a free port; `None` when it is not installed.
pub fn start_alertmanager(dir: &Path) -> Option<(Killed, String)> {
    let addr = format!("127.0.0.1:{}", free_port());
    start_alertmanager_at(dir, &addr).map(|am| (am, addr))
}

/// Starts Alertmanager on `addr` (again, after a stop: its alerts start empty); `None` when it
/// is not installed.
pub fn start_alertmanager_at(dir: &Path, addr: &str) -> Option<Killed> {
    let bin = tool("prometheus-alertmanager").or_else(|| tool("alertmanager"))?;
    let conf = dir.join("am.yml");
    std::fs::write(
        &conf,
        "route:\n  receiver: none\n  group_wait: 1s\nreceivers:\n  - name: none\n",
    )
    .unwrap();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", conf.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("am.log"))
                .unwrap(),
        )
        .spawn()
        .expect("alertmanager starts");
    let am = Killed(child);
    wait_for(30, || {
        http("GET", addr, "/-/ready", "")
            .ok()
            .filter(|(s, _)| *s == 200)
    })
    .expect("alertmanager ready within 30 s");
    Some(am)
}

pub fn am_alerts(addr: &str) -> Vec<serde_json::Value> {
    http("GET", addr, "/api/v2/alerts", "")
        .ok()
        .and_then(|(_, body)| serde_json::from_str::<Vec<serde_json::Value>>(&body).ok())
        .unwrap_or_default()
}

/// Runs `promtool check metrics` on `text`; fails with its findings.
pub fn check_metrics(promtool: &Path, text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
