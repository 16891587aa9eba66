//! A broker of the test's own (redis-server, nats-server, mosquitto) on a free port, which the
//! test stops and starts again without disturbing the servers the other tests use.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct OwnServer {
    pub port: u16,
    program: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl OwnServer {
    /// Starts `program` with the arguments `args` gives for a free port. `None` (with the
    /// reason printed) when the machine does not have the program, unless services are
    /// required.
    pub fn start(program: &str, args: impl Fn(u16) -> Vec<String>) -> Option<OwnServer> {
        let Some(found) = find_program(program) else {
            assert!(
                std::env::var("WEFT_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "{program} is required (WEFT_REQUIRE_SERVICES=1) but is not installed"
            );
            eprintln!("skipped: no {program} to start");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free port");
        let mut server = OwnServer {
            port,
            program: found,
            args: args(port),
            child: None,
        };
        server.run();
        Some(server)
    }

    /// Starts the program (again) and waits until its port answers.
    pub fn run(&mut self) {
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the server starts");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the test's {} does not answer", self.program.display());
    }

    /// Kills the program, as a crash or a restart of the broker would end it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The program on the `PATH`, or in the system folders a service's binary is installed in.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|folder| folder.join(name))
        .find(|candidate| candidate.is_file())
}
