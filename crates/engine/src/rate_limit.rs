//! Per-connection budgets: every call on a connection passes its gate, shared by every job
//! of the process (which keeps to its share of the budget when several processes share one
//! store). A gate holds a sliding window (at most `requests` starts in any `per`), a count
//! of calls in flight (`concurrent`), and a pause that a remote end's `Retry-After` sets for
//! every call on the connection. Calls over budget wait; none fails for it.

use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use weft_connectors::{CallContext, Connection, Connector, ConnectorError, RateLimits};

use crate::Engine;

/// How many times one call waits out a remote end's `Retry-After` before it fails.
const MOST_PAUSES: u32 = 5;
/// The longest `Retry-After` a call waits out; a longer one fails the call at once (a recipe
/// `retry` policy can take it up later, without holding a worker).
const LONGEST_PAUSE: Duration = Duration::from_secs(300);

impl Engine {
    /// Calls an action on a connection within the connection's budget, for a step or a poll
    /// alike: the call waits for its turn; when the remote end answers "not now" with a time,
    /// every call on the connection waits that long and this one is made again; when it
    /// refuses OAuth 2 credentials, they are refreshed and the call made once more.
    /// `refreshed` sees the refreshed connection (whose new secrets must be hidden).
    pub(crate) async fn call_within_budget(
        &self,
        connector: &dyn Connector,
        action: &str,
        mut connection: Connection,
        input: Value,
        context: &CallContext,
        refreshed: impl Fn(&Connection),
    ) -> Result<Value, ConnectorError> {
        let gate = self.gates.gate(&context.workspace, &connection);
        let mut pauses = 0;
        let mut was_refreshed = false;
        loop {
            let turn = gate.enter().await;
            let outcome = connector
                .call(action, Some(&connection), input.clone(), context)
                .await;
            drop(turn);
            match outcome {
                Err(error) if error.retry_after.is_some() && pauses < MOST_PAUSES => {
                    let pause = error.retry_after.unwrap_or_default();
                    if pause > LONGEST_PAUSE {
                        return Err(error);
                    }
                    gate.pause(pause);
                    pauses += 1;
                }
                Err(error) if error.credentials_rejected && !was_refreshed => {
                    was_refreshed = true;
                    connection = self
                        .connections
                        .refreshed(&context.workspace, &connection.name)
                        .await
                        .map_err(ConnectorError::remote)?;
                    refreshed(&connection);
                }
                outcome => return outcome,
            }
        }
    }
}

/// The gates of this process, one per connection (and its limits: new limits, a new gate).
/// On a platform of several processes each gets an equal share of every budget.
pub struct Gates {
    gates: Mutex<HashMap<String, Arc<Gate>>>,
    /// How many processes share the budgets (1 until told otherwise).
    processes: AtomicUsize,
}

impl Default for Gates {
    fn default() -> Gates {
        Gates {
            gates: Mutex::default(),
            processes: AtomicUsize::new(1),
        }
    }
}

impl Gates {
    /// The gate of a workspace's connection.
    pub fn gate(&self, workspace: &str, connection: &Connection) -> Arc<Gate> {
        let processes = self.processes.load(Ordering::Relaxed).max(1);
        let limits = connection
            .limits
            .as_ref()
            .map(|limits| share_of(limits, processes));
        let key = format!("{workspace}\0{}\0{limits:?}", connection.name);
        let Ok(mut gates) = self.gates.lock() else {
            return Arc::new(Gate::new(limits.as_ref()));
        };
        Arc::clone(
            gates
                .entry(key)
                .or_insert_with(|| Arc::new(Gate::new(limits.as_ref()))),
        )
    }

    /// Sets how many processes share the budgets: later calls pass gates of their share.
    pub fn share_among(&self, processes: usize) {
        let previous = self.processes.swap(processes.max(1), Ordering::Relaxed);
        if previous != processes.max(1)
            && let Ok(mut gates) = self.gates.lock()
        {
            // The gates of the old share serve the calls that hold them, and no new ones.
            gates.clear();
        }
    }
}

/// One process's share of a budget that `processes` processes share: an equal part of the
/// requests per interval and of the calls at once, so that together they keep to the budget.
/// A process gets at least one call at once, and at least one request per interval, the
/// interval stretched so that on average they keep to it.
fn share_of(limits: &RateLimits, processes: usize) -> RateLimits {
    let processes = u32::try_from(processes).unwrap_or(u32::MAX).max(1);
    let (requests, per) = match limits.requests {
        Some(requests) if requests >= processes => (Some(requests / processes), limits.per),
        Some(requests) => (Some(1), limits.per * processes.div_ceil(requests.max(1))),
        None => (None, limits.per),
    };
    RateLimits {
        requests,
        per,
        concurrent: limits
            .concurrent
            .map(|concurrent| (concurrent / processes).max(1)),
    }
}

pub struct Gate {
    window: Option<Mutex<Window>>,
    in_flight: Option<Arc<Semaphore>>,
    paused_until: Mutex<Option<Instant>>,
}

/// The starts of the last `requests` calls: a call may start when the oldest of them is at
/// least `per` ago, so that no span of `per` holds more than `requests` starts.
struct Window {
    starts: VecDeque<Instant>,
    requests: usize,
    per: Duration,
}

/// A call's turn: holding it counts the call as in flight.
pub struct Turn {
    _in_flight: Option<OwnedSemaphorePermit>,
}

impl Gate {
    fn new(limits: Option<&RateLimits>) -> Gate {
        let window = limits.and_then(|limits| {
            let requests = limits.requests? as usize;
            Some(Mutex::new(Window {
                starts: VecDeque::with_capacity(requests),
                requests,
                per: limits.per,
            }))
        });
        let in_flight = limits
            .and_then(|limits| limits.concurrent)
            .map(|count| Arc::new(Semaphore::new(count as usize)));
        Gate {
            window,
            in_flight,
            paused_until: Mutex::new(None),
        }
    }

    /// Waits until a call may start: the pause is over, fewer than `concurrent` calls are in
    /// flight, and the window has room.
    pub async fn enter(&self) -> Turn {
        let in_flight = match &self.in_flight {
            Some(slots) => Arc::clone(slots).acquire_owned().await.ok(),
            None => None,
        };
        loop {
            let paused = self.paused_until.lock().ok().and_then(|until| *until);
            if let Some(until) = paused.filter(|until| *until > Instant::now()) {
                tokio::time::sleep_until(until).await;
                continue;
            }
            match self.start_in_window() {
                None => break,
                Some(at) => tokio::time::sleep_until(at).await,
            }
        }
        Turn {
            _in_flight: in_flight,
        }
    }

    /// Notes a start when the window has room; otherwise when it will.
    fn start_in_window(&self) -> Option<Instant> {
        let window = self.window.as_ref()?;
        let Ok(mut window) = window.lock() else {
            return None;
        };
        let now = Instant::now();
        if window.starts.len() == window.requests {
            let free_at = window.starts[0] + window.per;
            if free_at > now {
                return Some(free_at);
            }
            window.starts.pop_front();
        }
        window.starts.push_back(now);
        None
    }

    /// Holds every call on the connection for `pause`, as the remote end asked.
    pub fn pause(&self, pause: Duration) {
        let until = Instant::now() + pause;
        if let Ok(mut paused) = self.paused_until.lock() {
            *paused = Some(paused.map_or(until, |current| current.max(until)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn no_span_of_per_holds_more_than_requests_starts() {
        let gate = Gate::new(Some(&RateLimits {
            requests: Some(2),
            per: Duration::from_secs(1),
            concurrent: None,
        }));
        let start = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..5 {
            gate.enter().await;
            starts.push(start.elapsed());
        }
        // Two at once, two a second later, one more a second after that.
        let seconds: Vec<u64> = starts.iter().map(Duration::as_secs).collect();
        assert_eq!(seconds, vec![0, 0, 1, 1, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_call() {
        let gate = Gate::new(None);
        gate.pause(Duration::from_secs(3));
        let start = Instant::now();
        gate.enter().await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[test]
    fn processes_share_a_budget_without_going_over_it() {
        let limits = RateLimits {
            requests: Some(100),
            per: Duration::from_secs(1),
            concurrent: Some(10),
        };
        let one = share_of(&limits, 1);
        assert_eq!(
            (one.requests, one.per, one.concurrent),
            (Some(100), limits.per, Some(10))
        );
        let four = share_of(&limits, 4);
        assert_eq!(
            (four.requests, four.per, four.concurrent),
            (Some(25), limits.per, Some(2))
        );
        let three = share_of(&limits, 3);
        assert_eq!((three.requests, three.concurrent), (Some(33), Some(3)));
        // Fewer requests than processes: one each, over a longer interval.
        let few = RateLimits {
            requests: Some(2),
            per: Duration::from_secs(1),
            concurrent: None,
        };
        let five = share_of(&few, 5);
        assert_eq!((five.requests, five.per), (Some(1), Duration::from_secs(3)));
    }
}
