//! Running agents off the driver thread, results back as messages.

use crate::agent::{AgentOutcome, AgentReply, AgentRequest, FailureKind, FenceAgent};
use crossbeam_channel::{Sender, TrySendError};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A finished call, as the driver receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCompletion {
    /// The id the caller gave to [`AgentPool::submit`].
    pub id: u64,
    /// The request.
    pub request: AgentRequest,
    /// What came back.
    pub reply: AgentReply,
}

/// A request the pool did not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Every worker is busy and the queue is full: try again later.
    #[error("fence agent queue is full")]
    Full(Box<AgentRequest>),
}

/// A fixed set of worker threads that run calls of one [`FenceAgent`] and send each
/// [`AgentCompletion`] to a channel.
///
/// `submit` never blocks: at most `workers` calls run at once and at most `queue`
/// wait; beyond that it answers [`PoolError::Full`] (backpressure, never an abort).
/// Dropping the pool lets queued and running calls finish (each is bounded by its
/// timeout) and joins the workers.
pub struct AgentPool {
    jobs: Option<Sender<(u64, AgentRequest)>>,
    workers: Vec<JoinHandle<()>>,
}

impl AgentPool {
    /// Starts `workers` (at least 1) threads running `agent`; completions go to
    /// `done` (a dropped receiver just discards them).
    pub fn new(
        agent: Arc<dyn FenceAgent>,
        workers: usize,
        queue: usize,
        done: Sender<AgentCompletion>,
    ) -> std::io::Result<AgentPool> {
        Self::with_notify(agent, workers, queue, done, Arc::new(|| {}))
    }

    /// As [`AgentPool::new`], and calls `notify` after each completion is sent: a
    /// poll-based driver passes its waker so a finished call wakes it.
    pub fn with_notify(
        agent: Arc<dyn FenceAgent>,
        workers: usize,
        queue: usize,
        done: Sender<AgentCompletion>,
        notify: Arc<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<AgentPool> {
        let (tx, rx) = crossbeam_channel::bounded::<(u64, AgentRequest)>(queue);
        let mut handles = Vec::new();
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            let agent = Arc::clone(&agent);
            let done = done.clone();
            let notify = Arc::clone(&notify);
            let handle = std::thread::Builder::new()
                .name(format!("fence-agent-{i}"))
                .spawn(move || {
                    for (id, request) in rx {
                        let reply = catch_unwind(AssertUnwindSafe(|| agent.run(&request)))
                            .unwrap_or_else(|_| {
                                AgentReply::without_transcript(AgentOutcome::failed(
                                    FailureKind::Agent,
                                    "the agent implementation panicked",
                                ))
                            });
                        let _ = done.send(AgentCompletion { id, request, reply });
                        notify();
                    }
                })?;
            handles.push(handle);
        }
        Ok(AgentPool {
            jobs: Some(tx),
            workers: handles,
        })
    }

    /// Queues a call; its completion carries `id`.
    pub fn submit(&self, id: u64, request: AgentRequest) -> Result<(), PoolError> {
        let Some(jobs) = &self.jobs else {
            return Err(PoolError::Full(Box::new(request)));
        };
        jobs.try_send((id, request)).map_err(|e| match e {
            TrySendError::Full((_, r)) | TrySendError::Disconnected((_, r)) => {
                PoolError::Full(Box::new(r))
            }
        })
    }
}

impl Drop for AgentPool {
    fn drop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
