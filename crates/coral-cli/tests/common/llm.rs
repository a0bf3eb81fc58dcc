//! A stand-in for an OpenAI-compatible chat endpoint: answers each
//! `POST …/chat/completions` with the next canned reply (or never, to test
//! timeouts), and records every connection and request it gets.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the stand-in answers next.
pub enum Reply {
    /// A chat completion whose message is this text.
    Says(String),
    /// Nothing: the connection is held open unanswered.
    Hangs,
}

/// One request received: its head (request line and headers) and body.
#[derive(Debug, Clone)]
pub struct Received {
    pub head: String,
    pub body: String,
}

/// The running stand-in.
pub struct FakeLlm {
    /// `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
    replies: Arc<Mutex<VecDeque<Reply>>>,
}

impl FakeLlm {
    pub fn start() -> FakeLlm {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let replies = Arc::new(Mutex::new(VecDeque::new()));
        let (c, r, q) = (connections.clone(), received.clone(), replies.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let (r, q) = (r.clone(), q.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        head.push_str(&line);
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    r.lock().unwrap().push(Received {
                        head,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    let reply = q.lock().unwrap().pop_front();
                    match reply {
                        Some(Reply::Says(text)) => {
                            let json = serde_json::json!({
                                "id": "chatcmpl-1", "object": "chat.completion",
                                "choices": [{"index": 0, "finish_reason": "stop",
                                             "message": {"role": "assistant", "content": text}}]
                            })
                            .to_string();
                            let _ = write!(
                                stream,
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
                                json.len()
                            );
                        }
                        Some(Reply::Hangs) | None => {
                            std::thread::sleep(Duration::from_secs(60));
                        }
                    }
                });
            }
        });
        FakeLlm {
            base_url,
            connections,
            received,
            replies,
        }
    }

    /// Queues the next reply.
    pub fn then(&self, reply: Reply) {
        self.replies.lock().unwrap().push_back(reply);
    }

    /// Connections made so far: a probe connection is made and awaited,
    /// so every connection made before the call has been accepted and
    /// counted (the listen queue is first in, first out).
    pub fn connections(&self) -> usize {
        let before = self.connections.load(Ordering::SeqCst);
        let addr = self
            .base_url
            .trim_start_matches("http://")
            .trim_end_matches("/v1")
            .to_owned();
        let probe = std::net::TcpStream::connect(&addr).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut now = self.connections.load(Ordering::SeqCst);
        while now < before + 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the probe was not accepted"
            );
            std::thread::sleep(Duration::from_millis(10));
            now = self.connections.load(Ordering::SeqCst);
        }
        drop(probe);
        // The probe itself does not count, and it is not a request.
        self.connections.fetch_sub(1, Ordering::SeqCst);
        now - 1
    }

    /// Requests read so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}
