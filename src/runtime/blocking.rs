//! Blocking work with a bound that holds: [`run_bounded`] waits for a permit, runs the work on
//! tokio's blocking pool, and keeps the permit until the work returns.
//!
//! The permit goes into the closure rather than staying with the future that awaits it. A
//! caller that stops waiting (a client that disconnects mid-login, a check that times out) drops
//! its future, but the blocking work it started cannot be cancelled and keeps its thread — and
//! its memory: an argon2id verification holds a 19 MiB block. Were the permit released with the
//! future, a stream of abandoned requests would run any number of such jobs at once.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Why blocking work did not produce its result.
#[derive(Debug, thiserror::Error)]
pub enum BlockingError {
    /// The semaphore was closed (the process is shutting down).
    #[error("no more blocking work is accepted: {0}")]
    Closed(#[from] tokio::sync::AcquireError),
    /// The work panicked, or the runtime shut down before it ran.
    #[error("blocking work did not complete: {0}")]
    Failed(#[from] tokio::task::JoinError),
}

/// Runs `work` on the blocking pool once `permits` grants a permit; the permit is released
/// when `work` returns, whether or not anyone still awaits the result.
pub async fn run_bounded<T, F>(permits: &Arc<Semaphore>, work: F) -> Result<T, BlockingError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let permit = permits.clone().acquire_owned().await?;
    let result = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn an_abandoned_caller_leaves_the_permit_with_the_work_until_it_returns() {
        let permits = Arc::new(Semaphore::new(1));
        let (started_tx, started) = mpsc::channel();
        let (finish, finish_rx) = mpsc::channel::<()>();
        let (done_tx, done) = mpsc::channel();
        let waiting = run_bounded(&permits, move || {
            started_tx.send(()).unwrap();
            finish_rx.recv().unwrap();
            done_tx.send(()).unwrap();
        });
        // The caller gives up once the work is running.
        let abandoned = tokio::time::timeout(Duration::from_millis(50), waiting).await;
        assert!(abandoned.is_err(), "the work is still blocked");
        started.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(permits.available_permits(), 0, "the running work keeps its permit");

        finish.send(()).unwrap();
        done.recv_timeout(Duration::from_secs(5)).unwrap();
        let back = tokio::time::timeout(Duration::from_secs(5), permits.acquire()).await;
        assert!(back.is_ok(), "the permit returns when the work returns");
    }

    #[tokio::test]
    async fn the_result_and_a_panic_come_back_to_the_caller() {
        let permits = Arc::new(Semaphore::new(2));
        assert_eq!(run_bounded(&permits, || 6 * 7).await.unwrap(), 42);
        let panicked = run_bounded(&permits, || panic!("inside the work")).await;
        assert!(matches!(panicked, Err(BlockingError::Failed(_))));
        assert_eq!(permits.available_permits(), 2);
    }
}
