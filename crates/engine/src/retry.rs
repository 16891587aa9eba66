//! How long to wait before the next attempt of a failed step.

use rand::Rng;
use std::time::Duration;
use weft_recipe::model::{Backoff, Retry};

/// The delay before attempt `next_attempt` (2 for the first retry). Exponential backoff
/// doubles the delay each time; jitter picks a point in the upper half of it, so that many
/// jobs failing together do not retry together; `max_delay` caps the result.
pub fn delay_before(retry: &Retry, next_attempt: u32) -> Duration {
    let retries_so_far = next_attempt.saturating_sub(2);
    let base = match retry.backoff {
        Backoff::Fixed => retry.delay,
        Backoff::Exponential => retry
            .delay
            .saturating_mul(2u32.saturating_pow(retries_so_far.min(30))),
    };
    let capped = match retry.max_delay {
        Some(max) => base.min(max),
        None => base,
    };
    if retry.jitter && !capped.is_zero() {
        let half = capped / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    } else {
        capped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(backoff: Backoff, jitter: bool, max_delay: Option<Duration>) -> Retry {
        Retry {
            attempts: 10,
            backoff,
            delay: Duration::from_secs(1),
            max_delay,
            jitter,
        }
    }

    #[test]
    fn exponential_doubles_and_stops_at_the_cap() {
        let policy = retry(Backoff::Exponential, false, Some(Duration::from_secs(5)));
        let delays: Vec<u64> = (2..=6)
            .map(|attempt| delay_before(&policy, attempt).as_secs())
            .collect();
        assert_eq!(delays, vec![1, 2, 4, 5, 5]);
    }

    #[test]
    fn fixed_stays_the_same() {
        let policy = retry(Backoff::Fixed, false, None);
        assert_eq!(delay_before(&policy, 5), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_the_upper_half() {
        let policy = retry(Backoff::Exponential, true, None);
        for _ in 0..200 {
            let delay = delay_before(&policy, 3);
            assert!(
                delay >= Duration::from_secs(1) && delay <= Duration::from_secs(2),
                "{delay:?}"
            );
        }
    }
}
