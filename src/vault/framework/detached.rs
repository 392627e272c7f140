//! Work that must not stop halfway when Vault abandons a request.
//!
//! Vault cancels a plugin call when its client hangs up or its request
//! deadline passes, and the call's future is then dropped at whatever await it
//! is on. Anything that changes the world outside Vault (an Atlas credential
//! created, deleted or changed) therefore runs as a detached task of the
//! mount's [`Tasks`]: it always runs to the end, and an issuance learns from
//! its [`Handover`] whether the request is still there to take the result, so
//! it can delete what nobody will ever lease.

use std::future::Future;

use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

use super::error::BackendError;

/// The detached tasks of one mount.
#[derive(Clone, Debug, Default)]
pub struct Tasks(TaskTracker);

impl Tasks {
    /// Runs `work` to completion even if the caller stops waiting, and returns its result.
    pub async fn run<T, Fut>(&self, work: Fut) -> Result<T, BackendError>
    where
        Fut: Future<Output = Result<T, BackendError>> + Send + 'static,
        T: Send + 'static,
    {
        self.0
            .spawn(work)
            .await
            .unwrap_or_else(|e| Err(task_failed(e)))
    }

    /// Starts `work` that nobody waits for (best-effort cleanup), tracked like
    /// the rest so [`Self::idle`] waits for it too.
    pub fn spawn<Fut>(&self, work: Fut)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.0.spawn(work);
    }

    /// Starts `work` with the sending half of a [`Handover`] and waits for what it
    /// delivers. If the caller is dropped, `work` carries on and finds the handover
    /// abandoned.
    pub async fn hand_over<T, F, Fut>(&self, work: F) -> Result<T, BackendError>
    where
        F: FnOnce(Handover<Result<T, BackendError>>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.0.spawn(work(Handover { tx }));
        match rx.await {
            Ok((value, taken)) => {
                // No await between receiving and acknowledging: once the task
                // hears "taken", this request is returning the value.
                let _ = taken.send(());
                value
            }
            Err(_) => Err(BackendError::internal(
                "the plugin's task for this request ended without an answer; see the plugin's log",
            )),
        }
    }

    /// Waits until no detached task is running (tests; a mount going away).
    pub async fn idle(&self) {
        self.0.close();
        self.0.wait().await;
        self.0.reopen();
    }

    /// How many detached tasks are running.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn task_failed(e: tokio::task::JoinError) -> BackendError {
    tracing::error!(error = %e, "a detached task failed");
    BackendError::internal(
        "internal error: the plugin failed while handling this request; see the plugin's log",
    )
}

/// The way back from a detached task to the request that started it.
#[derive(Debug)]
pub struct Handover<T> {
    tx: oneshot::Sender<(T, oneshot::Sender<()>)>,
}

impl<T> Handover<T> {
    /// True once the request has gone: nobody will receive what is delivered.
    pub fn abandoned(&self) -> bool {
        self.tx.is_closed()
    }

    /// Gives `value` to the waiting request. True once the request has taken
    /// it; false if the request went first, or was dropped with the value
    /// unread (a sent value alone proves nothing).
    pub async fn deliver(self, value: T) -> bool {
        let (taken_tx, taken) = oneshot::channel();
        if self.tx.send((value, taken_tx)).is_err() {
            return false;
        }
        taken.await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn run_finishes_work_whose_caller_was_dropped() {
        let tasks = Tasks::default();
        let (started_tx, started_rx) = oneshot::channel();
        let (go_tx, go_rx) = oneshot::channel::<()>();
        let finished = Arc::new(AtomicBool::new(false));
        let done = finished.clone();
        let caller = tokio::spawn({
            let tasks = tasks.clone();
            async move {
                tasks
                    .run(async move {
                        let _ = started_tx.send(());
                        let _ = go_rx.await;
                        done.store(true, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
            }
        });
        started_rx.await.expect("work started");
        caller.abort();
        assert!(caller.await.expect_err("aborted").is_cancelled());
        go_tx.send(()).expect("work still waiting");
        tasks.idle().await;
        assert!(finished.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_dropped_caller_abandons_the_handover() {
        let tasks = Tasks::default();
        let (seen_tx, seen_rx) = oneshot::channel();
        let (started_tx, started_rx) = oneshot::channel();
        let (go_tx, go_rx) = oneshot::channel::<()>();
        let caller = tokio::spawn({
            let tasks = tasks.clone();
            async move {
                tasks
                    .hand_over(|handover: Handover<Result<u32, BackendError>>| async move {
                        let _ = started_tx.send(());
                        let _ = go_rx.await;
                        let abandoned = handover.abandoned();
                        let taken = handover.deliver(Ok(7)).await;
                        let _ = seen_tx.send((abandoned, taken));
                    })
                    .await
            }
        });
        started_rx.await.expect("work started");
        caller.abort();
        let _ = caller.await;
        go_tx.send(()).expect("work still waiting");
        assert_eq!(seen_rx.await.expect("work ran"), (true, false));
        tasks.idle().await;
    }

    #[tokio::test]
    async fn a_waiting_caller_receives_the_delivery() {
        let tasks = Tasks::default();
        let got = tasks
            .hand_over(|handover| async move {
                assert!(!handover.abandoned());
                assert!(handover.deliver(Ok(5)).await);
            })
            .await;
        assert_eq!(got.expect("delivered"), 5);
    }

    #[tokio::test]
    async fn a_value_dropped_unread_is_not_taken() {
        let tasks = Tasks::default();
        let (sent_tx, sent_rx) = oneshot::channel();
        let (taken_tx, taken_rx) = oneshot::channel();
        let mut caller = Box::pin(tasks.hand_over(
            |handover: Handover<Result<u32, BackendError>>| async move {
                let _ = sent_tx.send(());
                let _ = taken_tx.send(handover.deliver(Ok(9)).await);
            },
        ));
        // Poll the caller until the work has sent its value, then drop the
        // caller without reading it: the request went away with the value inside.
        tokio::select! {
            biased;
            _ = sent_rx => {}
            _ = &mut caller => panic!("the caller must not finish first"),
        }
        drop(caller);
        assert!(
            !taken_rx.await.expect("work reported"),
            "an unread value was reported taken"
        );
    }

    #[tokio::test]
    async fn work_that_ends_without_delivering_is_an_internal_error() {
        let tasks = Tasks::default();
        let got: Result<(), _> = tasks
            .hand_over(|handover| async move { drop(handover) })
            .await;
        assert!(matches!(got, Err(BackendError::Internal(_))));
    }
}
