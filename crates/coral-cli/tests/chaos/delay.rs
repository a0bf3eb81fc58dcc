//! A TCP relay that adds latency: every chunk read on one side is written to
//! the other once `delay` has passed since it arrived, each direction on its
//! own, so a stream sees a one-way delay and keeps its bandwidth. It stands
//! on a link for `tc netem delay`, which this machine's kernel lacks
//! (CONFIG_NET_SCH_NETEM is not set); packet loss is nftables' (lab.rs).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A relay from `addr` to a target; the delay can change while it runs.
pub struct Delay {
    pub addr: String,
    delay_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Delay {
    /// Listens on `ip` (a port the system picks) and relays to `target`,
    /// without delay until [`Delay::set`].
    pub fn start(ip: &str, target: String) -> Delay {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, s) = (delay_ms.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect_timeout(
                            &target.parse().unwrap(),
                            Duration::from_secs(5),
                        ) else {
                            continue;
                        };
                        pump(client.try_clone().unwrap(), server.try_clone().unwrap(), &d);
                        pump(server, client, &d);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Delay {
            addr,
            delay_ms,
            stop,
        }
    }

    /// The one-way delay from now on (each direction).
    pub fn set(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }
}

impl Drop for Delay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Copies `from` to `to`, each chunk held until its delay has passed.
fn pump(mut from: TcpStream, mut to: TcpStream, delay_ms: &Arc<AtomicU64>) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let delay_ms = delay_ms.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let due =
                        Instant::now() + Duration::from_millis(delay_ms.load(Ordering::Relaxed));
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || {
        for (due, chunk) in rx {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
