//! A small SMTP server for the tests: it speaks enough of RFC 5321 (with AUTH PLAIN and
//! LOGIN) for a client to deliver mail, and keeps every message it receives.

use base64::Engine as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

pub const USER: &str = "mailer";
pub const PASSWORD: &str = "smtp-pass-6b2d40";

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

pub struct SmtpServer {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("a local address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let kept = Arc::clone(&kept);
                std::thread::spawn(move || {
                    let _ = serve(stream, &kept);
                });
            }
        });
        SmtpServer { port, received }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .map(|all| all.clone())
            .unwrap_or_default()
    }
}

fn serve(stream: TcpStream, kept: &Mutex<Vec<Received>>) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut lines = BufReader::new(stream);
    let mut say = |text: &str| out.write_all(format!("{text}\r\n").as_bytes());
    say("220 test SMTP ready")?;
    let (mut from, mut to, mut authenticated) = (String::new(), Vec::new(), false);
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            say("250-test greets you")?;
            say("250 AUTH PLAIN LOGIN")?;
        } else if upper.starts_with("AUTH PLAIN") {
            let given = command.split_whitespace().nth(2).unwrap_or_default();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(given)
                .unwrap_or_default();
            let expected = format!("\0{USER}\0{PASSWORD}");
            authenticated = decoded == expected.as_bytes();
            say(if authenticated {
                "235 ok"
            } else {
                "535 bad credentials"
            })?;
        } else if upper.starts_with("AUTH LOGIN") {
            say("334 VXNlcm5hbWU6")?;
            let mut user = String::new();
            lines.read_line(&mut user)?;
            say("334 UGFzc3dvcmQ6")?;
            let mut password = String::new();
            lines.read_line(&mut password)?;
            let decode = |text: &str| {
                base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .unwrap_or_default()
            };
            authenticated =
                decode(&user) == USER.as_bytes() && decode(&password) == PASSWORD.as_bytes();
            say(if authenticated {
                "235 ok"
            } else {
                "535 bad credentials"
            })?;
        } else if upper.starts_with("MAIL FROM:") {
            if !authenticated {
                say("530 authentication required")?;
                continue;
            }
            from = command[10..].trim().to_owned();
            to.clear();
            say("250 ok")?;
        } else if upper.starts_with("RCPT TO:") {
            to.push(command[8..].trim().to_owned());
            say("250 ok")?;
        } else if upper == "DATA" {
            say("354 go ahead")?;
            let mut data = String::new();
            loop {
                let mut part = String::new();
                if lines.read_line(&mut part)? == 0 || part == ".\r\n" {
                    break;
                }
                data.push_str(&part);
            }
            if let Ok(mut all) = kept.lock() {
                all.push(Received {
                    from: from.clone(),
                    to: to.clone(),
                    data,
                });
            }
            say("250 queued as test-1")?;
        } else if upper == "QUIT" {
            say("221 bye")?;
            return Ok(());
        } else {
            say("250 ok")?;
        }
    }
}
