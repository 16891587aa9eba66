//! A TCP proxy in front of a real server (PostgreSQL), which a test can cut and restore: the
//! server looks as if it went down and came back, without stopping it for the other tests.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub struct TcpProxy {
    pub address: String,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
}

impl TcpProxy {
    /// Forwards a free local port to `target` (`host:port`) until the test process ends.
    pub fn start(target: &str) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let address = listener.local_addr().expect("a local address").to_string();
        let open = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (target, accepting, tracked) = (target.to_owned(), open.clone(), connections.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                // While cut, a connection is closed as soon as it is made.
                if !accepting.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(&target) else {
                    continue;
                };
                forward(client, upstream, &tracked);
            }
        });
        TcpProxy {
            address,
            open,
            connections,
        }
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().expect("the proxy lock").drain(..) {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

fn forward(client: TcpStream, upstream: TcpStream, tracked: &Mutex<Vec<TcpStream>>) {
    let pairs = [(&client, &upstream), (&upstream, &client)];
    let mut streams = tracked.lock().expect("the proxy lock");
    for (from, to) in pairs {
        let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
            return;
        };
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            // One side closed: so does the other.
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        });
    }
    streams.extend([client, upstream]);
}
