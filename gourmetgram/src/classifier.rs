//! The Food-11 network: torchvision's MobileNetV2 with an 11-way classifier,
//! in eval mode, and the worker thread that owns it.
//!
//! The model is loaded once and lives on one thread; requests reach it
//! through a bounded queue (full → the caller is told to retry), and the
//! worker takes whatever is waiting, up to `max_batch`, as one batch.
//! Inference never runs on the async runtime's threads.

use crate::checkpoint::{self, WeightsInfo};
use crate::network::MobileNetV2;
use crate::preprocess::{Input, CROP};
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

pub const CLASSES: [&str; 11] =
    ["Bread", "Dairy product", "Dessert", "Egg", "Fried food", "Meat", "Noodles/Pasta", "Rice", "Seafood", "Soup", "Vegetable/Fruit"];

/// The network and its weights, on the CPU.
#[derive(Debug)]
pub struct Model {
    net: MobileNetV2,
}

impl Model {
    /// Reads the checkpoint, checks it strictly against torchvision's
    /// MobileNetV2 (tch's `vision::mobilenet::v2` has the same names and
    /// shapes) and folds it into the inference network.
    pub fn load(path: &Path) -> Result<(Self, WeightsInfo)> {
        let state = checkpoint::read_state_dict(path)?;
        {
            let mut vs = tch::nn::VarStore::new(tch::Device::Cpu);
            let _layout = tch::vision::mobilenet::v2(&vs.root(), CLASSES.len() as i64);
            checkpoint::load_into(&mut vs, &state).with_context(|| format!("loading {}", path.display()))?;
        }
        let net = MobileNetV2::from_state(&state).with_context(|| format!("loading {}", path.display()))?;
        let info = checkpoint::describe(path, &state)?;
        Ok((Model { net }, info))
    }

    /// A second network over the same weights (nothing is copied), for
    /// another inference thread.
    pub fn replica(&self) -> Self {
        Model { net: self.net.replica() }
    }

    /// Whether two models use the same weight storage (a replica's do).
    pub fn shares_weights_with(&self, other: &Model) -> bool {
        self.net.weights_ptr() == other.net.weights_ptr()
    }

    /// Logits for a batch of preprocessed images.
    pub fn logits(&self, inputs: &[&Input]) -> Vec<[f32; 11]> {
        let c = i64::from(CROP);
        let flat: Vec<f32> = inputs.iter().flat_map(|i| i.0.iter().copied()).collect();
        let x = tch::Tensor::from_slice(&flat).reshape([inputs.len() as i64, 3, c, c]);
        let y = self.net.forward(&x);
        let v: Vec<f32> = Vec::<f32>::try_from(y.flatten(0, -1)).unwrap_or_default();
        v.chunks(CLASSES.len())
            .map(|row| {
                let mut out = [0f32; 11];
                out.copy_from_slice(row);
                out
            })
            .collect()
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Scored {
    pub class: &'static str,
    pub probability: f32,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Prediction {
    pub class: &'static str,
    pub top3: Vec<Scored>,
    pub logits: Vec<f32>,
    /// Milliseconds waiting for a worker, and in the network.
    #[serde(skip)]
    pub queue_ms: f64,
    #[serde(skip)]
    pub inference_ms: f64,
}

impl Prediction {
    pub fn from_logits(logits: &[f32; 11]) -> Self {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f32 = exp.iter().sum();
        let mut order: Vec<usize> = (0..CLASSES.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        Prediction {
            class: CLASSES[order[0]],
            top3: order[..3].iter().map(|&i| Scored { class: CLASSES[i], probability: exp[i] / sum }).collect(),
            logits: logits.to_vec(),
            queue_ms: 0.0,
            inference_ms: 0.0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error("the classifier is busy ({0} requests waiting); try again shortly")]
    Busy(usize),
    #[error("the classifier stopped")]
    Stopped,
    #[error("inference failed: {0}")]
    Failed(String),
}

struct Job {
    input: Input,
    queued: std::time::Instant,
    reply: tokio::sync::oneshot::Sender<Result<Prediction, ClassifyError>>,
}

/// Handle to the worker thread; cheap to clone.
#[derive(Clone, Debug)]
pub struct Classifier {
    tx: mpsc::SyncSender<Job>,
    waiting: Arc<AtomicUsize>,
    pub info: Arc<WeightsInfo>,
    pub threads: usize,
    pub workers: usize,
}

/// One inference thread: takes a request (and whatever else waits, up to
/// `max_batch`) from the shared queue, runs the network, answers.
fn worker(model: &Model, rx: &Mutex<mpsc::Receiver<Job>>, waiting: &AtomicUsize, max_batch: usize) {
    loop {
        let jobs = {
            let Ok(rx) = rx.lock() else { return };
            let Ok(first) = rx.recv() else { return };
            let mut jobs = vec![first];
            while jobs.len() < max_batch {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            jobs
        };
        waiting.fetch_sub(jobs.len(), Ordering::SeqCst);
        let started = std::time::Instant::now();
        let inputs: Vec<&Input> = jobs.iter().map(|j| &j.input).collect();
        // libtorch errors surface as panics in tch: one bad batch answers
        // its requests with an error and the worker goes on.
        let logits = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.logits(&inputs)));
        drop(inputs);
        match logits {
            Ok(logits) if logits.len() == jobs.len() => {
                let inference_ms = started.elapsed().as_secs_f64() * 1e3;
                for (job, l) in jobs.into_iter().zip(logits.iter()) {
                    let mut p = Prediction::from_logits(l);
                    p.queue_ms = started.duration_since(job.queued).as_secs_f64() * 1e3;
                    p.inference_ms = inference_ms;
                    let _ = job.reply.send(Ok(p));
                }
            }
            other => {
                let why = match other {
                    Err(p) => p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())),
                    Ok(_) => Some("the network returned a wrong number of results".into()),
                };
                let why = why.unwrap_or_else(|| "libtorch error".into());
                tracing::error!(%why, "inference failed");
                for job in jobs {
                    let _ = job.reply.send(Err(ClassifyError::Failed(why.clone())));
                }
            }
        }
    }
}

impl Classifier {
    /// Loads the weights once and starts `workers` inference threads over
    /// them (the tensors are shared, not copied), each running libtorch with
    /// `threads` intra-op threads, all taking requests from one bounded queue.
    pub fn start(path: &Path, workers: usize, threads: usize, max_batch: usize, queue: usize) -> Result<Self> {
        tch::set_num_threads(threads.max(1) as i32);
        let (model, info) = Model::load(path)?;
        let mut models = vec![model];
        while models.len() < workers.max(1) {
            let replica = models[0].replica();
            models.push(replica);
        }
        let (tx, rx) = mpsc::sync_channel::<Job>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let waiting = Arc::new(AtomicUsize::new(0));
        for (n, model) in models.into_iter().enumerate() {
            let (rx, waiting) = (rx.clone(), waiting.clone());
            std::thread::Builder::new().name(format!("inference-{n}")).spawn(move || worker(&model, &rx, &waiting, max_batch.max(1)))?;
        }
        Ok(Classifier { tx, waiting, info: Arc::new(info), threads, workers: workers.max(1) })
    }

    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    pub async fn classify(&self, input: Input) -> Result<Prediction, ClassifyError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = self.tx.try_send(Job { input, reply, queued: std::time::Instant::now() }) {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(match e {
                mpsc::TrySendError::Full(_) => ClassifyError::Busy(self.waiting()),
                mpsc::TrySendError::Disconnected(_) => ClassifyError::Stopped,
            });
        }
        rx.await.map_err(|_| ClassifyError::Stopped)?
    }
}
