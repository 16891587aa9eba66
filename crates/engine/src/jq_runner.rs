//! Runs jq programs with a time limit and without risk to the process.
//!
//! jaq has no fuel and no way to be interrupted, and a deeply recursive program overflows its
//! stack, which aborts the whole process. So by default programs run in worker processes
//! (`weft __jq-worker`), kept in a pool and reused: a program that runs past its deadline is
//! killed with its worker, and one that crashes takes only its worker down. Where no worker
//! program is available (library tests, benchmarks of the engine alone), programs run on
//! threads of this process instead, with the deadline but without the crash protection.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use weft_recipe::jq::{JqProgram, JqRunError};

/// Stack of a thread running jq: deep but finite recursion fits.
const JQ_STACK_BYTES: usize = 256 * 1024 * 1024;
/// Address space of a worker process: a program that allocates without bound fails here.
const WORKER_MEMORY_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Compiled programs a worker keeps.
const WORKER_CACHE: usize = 512;

/// Why a jq run gave no outputs.
#[derive(Debug)]
pub enum JqFailure {
    Error(JqRunError),
    Timeout(Duration),
    /// The program's worker died: deep recursion or memory exhaustion.
    Crashed(String),
    /// No worker or thread could be started for it.
    Unavailable(String),
}

#[derive(Serialize, Deserialize)]
struct Request {
    program: String,
    input: Value,
    collect: bool,
}

#[derive(Serialize, Deserialize)]
enum Reply {
    Ok(Value),
    Error(String),
}

/// Where jq programs run.
#[derive(Clone)]
pub enum JqRunner {
    /// Worker processes started from this program with the `__jq-worker` argument.
    Isolated(Arc<WorkerPool>),
    /// Threads of this process.
    InProcess(ThreadPool),
}

impl Default for JqRunner {
    fn default() -> Self {
        JqRunner::InProcess(ThreadPool::default())
    }
}

impl JqRunner {
    /// Programs run in worker processes started as `program __jq-worker`.
    pub fn isolated(program: PathBuf) -> JqRunner {
        let cores = std::thread::available_parallelism().map_or(2, |cores| cores.get());
        JqRunner::Isolated(Arc::new(WorkerPool {
            program,
            idle: Mutex::new(Vec::new()),
            running: tokio::sync::Semaphore::new((2 * cores).max(4)),
        }))
    }

    /// Runs a program on an input and waits at most `limit` for all of its outputs.
    pub async fn run(
        &self,
        program: &JqProgram,
        input: Value,
        collect: bool,
        limit: Duration,
    ) -> Result<Value, JqFailure> {
        // A bounded program takes microseconds: handing it to another thread or process
        // would cost many times that.
        if program.is_bounded() {
            return run_program(program, &input, collect).map_err(JqFailure::Error);
        }
        match self {
            JqRunner::Isolated(pool) => pool.run(program, input, collect, limit).await,
            JqRunner::InProcess(threads) => threads.run(program, input, collect, limit).await,
        }
    }
}

fn run_program(program: &JqProgram, input: &Value, collect: bool) -> Result<Value, JqRunError> {
    if collect {
        program.run(input).map(Value::Array)
    } else {
        program.run_one(input)
    }
}

/// Worker processes, started on demand and reused.
pub struct WorkerPool {
    program: PathBuf,
    idle: Mutex<Vec<Worker>>,
    /// Bounds the workers alive at once: a loop with high concurrency waits for a worker
    /// rather than starting a process per iteration.
    running: tokio::sync::Semaphore,
}

struct Worker {
    /// Killed when dropped.
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl WorkerPool {
    async fn run(
        &self,
        program: &JqProgram,
        input: Value,
        collect: bool,
        limit: Duration,
    ) -> Result<Value, JqFailure> {
        let _permit = self
            .running
            .acquire()
            .await
            .map_err(|_| JqFailure::Unavailable("the jq workers are shut down".to_owned()))?;
        let mut worker = match self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            Some(worker) => worker,
            None => self.start()?,
        };
        let request = Request {
            program: program.source().to_owned(),
            input,
            collect,
        };
        let mut line = serde_json::to_vec(&request)
            .map_err(|error| JqFailure::Unavailable(format!("cannot send the program: {error}")))?;
        line.push(b'\n');
        let exchange = async {
            worker.stdin.write_all(&line).await?;
            worker.stdin.flush().await?;
            let mut answer = String::new();
            worker.stdout.read_line(&mut answer).await?;
            Ok::<String, std::io::Error>(answer)
        };
        let answer = match tokio::time::timeout(limit, exchange).await {
            // The worker is dropped, and so killed, with the runaway program in it.
            Err(_) => return Err(JqFailure::Timeout(limit)),
            Ok(Err(_)) => return Err(crashed()),
            Ok(Ok(answer)) if answer.is_empty() => return Err(crashed()),
            Ok(Ok(answer)) => answer,
        };
        let reply: Reply = serde_json::from_str(&answer).map_err(|_| crashed())?;
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(worker);
        }
        match reply {
            Reply::Ok(value) => Ok(value),
            Reply::Error(message) => Err(JqFailure::Error(JqRunError { message })),
        }
    }

    fn start(&self) -> Result<Worker, JqFailure> {
        let mut child = Command::new(&self.program)
            .arg("__jq-worker")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| {
                JqFailure::Unavailable(format!("cannot start a jq worker: {error}"))
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(JqFailure::Unavailable(
                "the jq worker has no pipes".to_owned(),
            ));
        };
        Ok(Worker {
            _child: child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }
}

fn crashed() -> JqFailure {
    JqFailure::Crashed(
        "the jq program crashed: it recursed too deeply or used too much memory".to_owned(),
    )
}

/// The worker's side: answers requests from standard input until it closes. Run by the
/// `weft __jq-worker` command.
pub fn serve_jq_worker() -> std::io::Result<()> {
    limit_memory(WORKER_MEMORY_BYTES);
    let worker = std::thread::Builder::new()
        .name("jq-worker".to_owned())
        .stack_size(JQ_STACK_BYTES)
        .spawn(answer_requests)?;
    worker
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the jq worker failed")))
}

fn answer_requests() -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    let mut compiled: HashMap<String, JqProgram> = HashMap::new();
    for line in stdin.lock().lines() {
        let line = line?;
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(request) => answer(&mut compiled, request),
            Err(error) => Reply::Error(format!("a bad request reached the jq worker: {error}")),
        };
        serde_json::to_writer(&mut stdout, &reply)?;
        stdout.write_all(b"\n")?;
        stdout.flush()?;
    }
    Ok(())
}

fn answer(compiled: &mut HashMap<String, JqProgram>, request: Request) -> Reply {
    if !compiled.contains_key(&request.program) {
        if compiled.len() >= WORKER_CACHE {
            compiled.clear();
        }
        match JqProgram::compile(&request.program) {
            Ok(program) => {
                compiled.insert(request.program.clone(), program);
            }
            Err(errors) => {
                let messages: Vec<String> = errors.into_iter().map(|error| error.message).collect();
                return Reply::Error(messages.join("; "));
            }
        }
    }
    match compiled.get(&request.program) {
        Some(program) => match run_program(program, &request.input, request.collect) {
            Ok(value) => Reply::Ok(value),
            Err(error) => Reply::Error(error.message),
        },
        None => Reply::Error("the program was not compiled".to_owned()),
    }
}

/// Caps this process's address space, so that runaway allocation fails instead of taking
/// the machine's memory.
fn limit_memory(bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit reads the struct we pass and changes only this process's limits.
    unsafe {
        libc::setrlimit(libc::RLIMIT_AS, &limit);
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// How long a jq thread looks for its next job before it sleeps: a job's next transform
/// usually follows within microseconds.
const HANDOFF_SPIN: Duration = Duration::from_micros(200);
/// How long a step looks for its answer before it yields its task: short, because the task's
/// thread could run other jobs meanwhile.
const ANSWER_SPIN: Duration = Duration::from_micros(100);

/// The next job: looked for briefly, then waited for. `None` when the pool is gone.
fn next_job(jobs: &mpsc::Receiver<Job>) -> Option<Job> {
    let spin_until = Instant::now() + HANDOFF_SPIN;
    while Instant::now() < spin_until {
        match jobs.try_recv() {
            Ok(job) => return Some(job),
            Err(mpsc::TryRecvError::Empty) => std::thread::yield_now(),
            Err(mpsc::TryRecvError::Disconnected) => return None,
        }
    }
    jobs.recv().ok()
}

/// Threads with large stacks, reused. A thread whose program runs past its deadline is left
/// to finish on its own and leaves the pool.
#[derive(Clone, Default)]
pub struct ThreadPool {
    idle: Arc<Mutex<Vec<mpsc::Sender<Job>>>>,
}

impl ThreadPool {
    async fn run(
        &self,
        program: &JqProgram,
        input: Value,
        collect: bool,
        limit: Duration,
    ) -> Result<Value, JqFailure> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let program = program.clone();
        let job: Job = Box::new(move || {
            let _ = reply.send(run_program(&program, &input, collect));
        });
        self.dispatch(job)?;
        let mut answer = answer;
        // Most programs take microseconds, and waking a parked task costs far more on busy or
        // virtual machines: look for the answer for a moment before waiting for it.
        let spin_until = Instant::now() + ANSWER_SPIN;
        while Instant::now() < spin_until {
            match answer.try_recv() {
                Ok(result) => return result.map_err(JqFailure::Error),
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => std::thread::yield_now(),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => break,
            }
        }
        match tokio::time::timeout(limit, answer).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(error))) => Err(JqFailure::Error(error)),
            Ok(Err(_)) => Err(JqFailure::Crashed(
                "the jq program's thread stopped without an answer".to_owned(),
            )),
            Err(_) => Err(JqFailure::Timeout(limit)),
        }
    }

    fn dispatch(&self, job: Job) -> Result<(), JqFailure> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let job = match idle {
            Some(worker) => match worker.send(job) {
                Ok(()) => return Ok(()),
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        let (sender, jobs) = mpsc::channel::<Job>();
        let idle = Arc::clone(&self.idle);
        std::thread::Builder::new()
            .name("jq".to_owned())
            .stack_size(JQ_STACK_BYTES)
            .spawn(move || {
                job();
                loop {
                    if let Ok(mut pool) = idle.lock() {
                        pool.push(sender.clone());
                    }
                    match next_job(&jobs) {
                        Some(job) => job(),
                        None => return,
                    }
                }
            })
            .map(|_| ())
            .map_err(|error| {
                JqFailure::Unavailable(format!("cannot start a thread for jq: {error}"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A runner whose worker processes cannot start: only programs run inline succeed.
    fn runner_without_workers() -> JqRunner {
        JqRunner::isolated(PathBuf::from("/nonexistent/weft-jq-worker"))
    }

    #[tokio::test]
    async fn a_bounded_program_runs_inline_without_a_worker() {
        let program = JqProgram::compile("{name: (.name | ascii_upcase), total: (.amount * 1.2)}")
            .expect("the program compiles");
        assert!(program.is_bounded());
        let output = runner_without_workers()
            .run(
                &program,
                json!({"name": "ann", "amount": 10}),
                false,
                Duration::from_secs(1),
            )
            .await
            .expect("the program runs inline");
        assert_eq!(output, json!({"name": "ANN", "total": 12.0}));
    }

    #[tokio::test]
    async fn an_unbounded_program_goes_to_a_worker() {
        let program = JqProgram::compile("[.[] | . * 2]").expect("the program compiles");
        assert!(!program.is_bounded());
        let failure = runner_without_workers()
            .run(&program, json!([1, 2]), false, Duration::from_secs(1))
            .await
            .expect_err("no worker can start");
        assert!(matches!(failure, JqFailure::Unavailable(_)), "{failure:?}");
    }
}
