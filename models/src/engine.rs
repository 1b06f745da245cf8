//! The engine: one dedicated thread per loaded model, fed by a bounded queue. Requests get
//! their tokens over a channel the async side can await; dropping the handle (the client went
//! away) or calling `cancel` stops generation at the next token and frees the engine at once.
//! A full queue is refused immediately, so the server can answer 429 instead of piling up.

use crate::ModelError;
use crate::model::{Completion, LoadedModel};
use crate::sampling::GenerateParams;
use crate::template::ChatMessage;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

#[derive(Debug)]
pub enum Event {
    /// Text as it is generated.
    Token(String),
    /// The end, with the whole reply and its counts.
    Done(Completion),
    Failed(ModelError),
}

struct Job {
    messages: Vec<ChatMessage>,
    params: GenerateParams,
    events: UnboundedSender<Event>,
    cancel: Arc<AtomicBool>,
}

#[derive(Clone)]
pub struct Engine {
    jobs: SyncSender<Job>,
    pub name: String,
}

/// A request in flight. Dropping it cancels the request.
pub struct Handle {
    pub events: UnboundedReceiver<Event>,
    cancel: Arc<AtomicBool>,
}

impl Handle {
    /// A handle and the two ends its producer holds: where events go, and the cancel flag.
    pub(crate) fn channel() -> (Handle, UnboundedSender<Event>, Arc<AtomicBool>) {
        let (events, rx) = unbounded_channel();
        let cancel = Arc::new(AtomicBool::new(false));
        (Handle { events: rx, cancel: cancel.clone() }, events, cancel)
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl Engine {
    /// Starts the engine thread for `model`; at most `queue` requests wait behind the one
    /// being served.
    pub fn start(name: &str, mut model: LoadedModel, queue: usize) -> Result<Engine, ModelError> {
        let (jobs, rx) = sync_channel::<Job>(queue);
        std::thread::Builder::new()
            .name(format!("engine-{name}"))
            .spawn(move || {
                // Ends when every `Engine` clone is dropped.
                while let Ok(job) = rx.recv() {
                    if job.cancel.load(Ordering::Relaxed) || job.events.is_closed() {
                        continue;
                    }
                    let result = model.prompt_tokens(&job.messages).and_then(|prompt| {
                        let events = job.events.clone();
                        let cancel = job.cancel.clone();
                        model.generate(&prompt, &job.params, &cancel, |text| {
                            // A closed channel means nobody is listening: stop.
                            if events.send(Event::Token(text.to_string())).is_err() {
                                cancel.store(true, Ordering::Relaxed);
                            }
                        })
                    });
                    let _ = job.events.send(match result {
                        Ok(done) => Event::Done(done),
                        Err(e) => Event::Failed(e),
                    });
                }
            })
            .map_err(|e| ModelError::Load(format!("cannot start the engine thread: {e}")))?;
        Ok(Engine { jobs, name: name.to_string() })
    }

    /// Queues a chat; `Busy` when the queue is full.
    pub fn submit(&self, messages: Vec<ChatMessage>, params: GenerateParams) -> Result<Handle, ModelError> {
        params.validate().map_err(ModelError::BadRequest)?;
        let (handle, events, cancel) = Handle::channel();
        let job = Job { messages, params, events, cancel };
        match self.jobs.try_send(job) {
            Ok(()) => Ok(handle),
            Err(TrySendError::Full(_)) => Err(ModelError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(ModelError::Inference("the engine has stopped".into())),
        }
    }
}
