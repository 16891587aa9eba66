//! Runs jq programs with a time limit. jaq has no fuel, so a program runs on a thread of its
//! own, and the step stops waiting for it at the deadline. Threads are reused: a finished run
//! hands its thread back to the pool.

use serde_json::Value;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weft_recipe::jq::{JqProgram, JqRunError};

/// Stack of a jq thread: deep but finite recursion in a program fits.
const JQ_STACK_BYTES: usize = 256 * 1024 * 1024;

/// Why a jq run did not give outputs.
#[derive(Debug)]
pub enum JqFailure {
    Error(JqRunError),
    Timeout(Duration),
    /// The thread could not be started or died.
    Crashed(String),
}

type Job = Box<dyn FnOnce() + Send>;

/// A small pool of threads with large stacks for jq. A thread whose program runs past its
/// deadline is left to finish on its own and leaves the pool.
#[derive(Clone, Default)]
pub struct JqRunner {
    idle: Arc<Mutex<Vec<mpsc::Sender<Job>>>>,
}

impl JqRunner {
    /// Runs a program on an input and waits at most `limit` for all of its outputs.
    pub async fn run(
        &self,
        program: &JqProgram,
        input: Value,
        collect: bool,
        limit: Duration,
    ) -> Result<Value, JqFailure> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let program = program.clone();
        let job: Job = Box::new(move || {
            let result = if collect {
                program.run(&input).map(Value::Array)
            } else {
                program.run_one(&input)
            };
            let _ = reply.send(result);
        });
        self.dispatch(job)?;
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
        let idle = self.idle.lock().map(|mut idle| idle.pop()).unwrap_or(None);
        let job = match idle {
            Some(worker) => match worker.send(job) {
                Ok(()) => return Ok(()),
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        self.spawn(job)
    }

    fn spawn(&self, first: Job) -> Result<(), JqFailure> {
        let (sender, jobs) = mpsc::channel::<Job>();
        let idle = Arc::clone(&self.idle);
        std::thread::Builder::new()
            .name("jq".to_owned())
            .stack_size(JQ_STACK_BYTES)
            .spawn(move || {
                first();
                loop {
                    if let Ok(mut pool) = idle.lock() {
                        pool.push(sender.clone());
                    }
                    match jobs.recv() {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            })
            .map(|_| ())
            .map_err(|error| JqFailure::Crashed(format!("cannot start a thread for jq: {error}")))
    }
}
