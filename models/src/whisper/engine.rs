//! A Whisper model on a dedicated thread behind a bounded queue, as chat and embedding engines
//! are: one transcription at a time uses every core; the rest wait their turn or are told the
//! model is busy.

use super::{Options, Transcriber, Transcript, WhisperError};
use crate::ModelError;

struct Job {
    samples: Vec<f32>,
    options: Options,
    reply: tokio::sync::oneshot::Sender<Result<Transcript, WhisperError>>,
}

#[derive(Clone)]
pub struct TranscribeEngine {
    jobs: std::sync::mpsc::SyncSender<Job>,
    languages: std::sync::Arc<Vec<String>>,
}

impl TranscribeEngine {
    pub fn start(name: &str, transcriber: Transcriber, queue: usize) -> Result<TranscribeEngine, ModelError> {
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(queue);
        let languages = std::sync::Arc::new(transcriber.languages().map(str::to_string).collect());
        std::thread::Builder::new()
            .name(format!("whisper-{name}"))
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    // Whoever asked has gone (a closed connection): nothing to do.
                    if job.reply.is_closed() {
                        continue;
                    }
                    let _ = job.reply.send(transcriber.transcribe(&job.samples, &job.options));
                }
            })
            .map_err(|e| ModelError::Load(format!("cannot start the transcription thread: {e}")))?;
        Ok(TranscribeEngine { jobs, languages })
    }

    /// The languages the model knows (ISO 639-1).
    pub fn languages(&self) -> &[String] {
        &self.languages
    }

    /// Transcribes mono 16 kHz samples; `Busy` when the queue is full.
    pub async fn transcribe(&self, samples: Vec<f32>, options: Options) -> Result<Transcript, ModelError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs.try_send(Job { samples, options, reply }).map_err(refused)?;
        answer.await.map_err(|_| stopped())?.map_err(model_error)
    }

    /// Transcribes on a thread that may block (document ingestion), waiting its turn in the
    /// queue rather than being told the model is busy.
    pub fn transcribe_blocking(&self, samples: Vec<f32>, options: Options) -> Result<Transcript, ModelError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs.send(Job { samples, options, reply }).map_err(|_| stopped())?;
        answer.blocking_recv().map_err(|_| stopped())?.map_err(model_error)
    }
}

fn stopped() -> ModelError {
    ModelError::Inference("the transcription thread has stopped".into())
}

fn refused(e: std::sync::mpsc::TrySendError<Job>) -> ModelError {
    match e {
        std::sync::mpsc::TrySendError::Full(_) => ModelError::Busy,
        std::sync::mpsc::TrySendError::Disconnected(_) => stopped(),
    }
}

fn model_error(e: WhisperError) -> ModelError {
    match e {
        WhisperError::BadRequest(m) => ModelError::BadRequest(m),
        other => ModelError::Inference(other.to_string()),
    }
}
