//! Background jobs: a unit of work run every interval in a task of its own (a tick
//! missed while the work ran is not made up). Each unit is transactional, so the task
//! can be aborted at shutdown between or inside units without leaving half a write.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;

/// Runs `work` now and then every `interval`; abort the handle to stop it.
pub fn every<F, Fut>(interval: Duration, mut work: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            work().await;
        }
    })
}
