//! A tracker's callback endpoint for end-to-end tests: a real HTTP server on a loopback port
//! that records every request and answers as the test scripts it (errors, late answers, down).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// A request the fake tracker received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub answered: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A tracker's callback endpoint: answers 500 to the first `failures` requests, leaves the
/// next `hangs` without an answer for `hang`, then answers 200 (or 500 while `down`).
pub struct FakeTracker {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    /// While set, every request is answered 500.
    pub down: Arc<AtomicBool>,
}

impl FakeTracker {
    pub fn start(failures: usize, hangs: usize, hang: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let down = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicUsize::new(0));
        let (rec, dn) = (received.clone(), down.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (rec, dn, seen) = (rec.clone(), dn.clone(), seen.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut headers = Vec::new();
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap_or(0);
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        if let Some((n, v)) = line.trim_end().split_once(": ") {
                            headers.push((n.to_string(), v.to_string()));
                        }
                    }
                    let len: usize = headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; len];
                    let _ = reader.read_exact(&mut body);
                    let n = seen.fetch_add(1, Ordering::SeqCst);
                    let code = if n < failures || dn.load(Ordering::SeqCst) {
                        500
                    } else if n < failures + hangs {
                        // Answering after the coordinator gave up: a time-out to it.
                        std::thread::sleep(hang);
                        200
                    } else {
                        200
                    };
                    rec.lock().unwrap().push(Received {
                        headers,
                        body: String::from_utf8_lossy(&body).into_owned(),
                        answered: code,
                    });
                    let mut out = stream;
                    let _ = write!(
                        out,
                        "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                });
            }
        });
        FakeTracker {
            url,
            received,
            down,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Events the tracker acknowledged (answered 200), by event name.
    pub fn acknowledged(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter(|r| r.answered == 200)
            .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
            .map(|v| v["event"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}
