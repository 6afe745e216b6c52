//! What can go wrong training, evaluating or sampling; each message names the file or the
//! setting at fault and what to do.

use std::path::PathBuf;

use mosaic_data::DataError;
use mosaic_models::InputError;

use crate::config::RunConfigError;
use crate::precision::UnsupportedPrecision;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Config(#[from] RunConfigError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Precision(#[from] UnsupportedPrecision),
    #[error("{}: cannot {action}: {error}", .path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        error: std::io::Error,
    },
    /// A model or optimiser file Burn cannot write or read back.
    #[error("{}: {error}", .path.display())]
    Record {
        path: PathBuf,
        error: burn::store::RecordError,
    },
    #[error("{}: {reason}", .path.display())]
    Checkpoint { path: PathBuf, reason: String },
    /// A fresh run asked for where a checkpoint is: it is kept, never overwritten.
    #[error(
        "{}: holds a checkpoint already; resume it, or train into another train.out_dir",
        .path.display()
    )]
    CheckpointExists { path: PathBuf },
    #[error(
        "the training loss became {loss} at step {step}; stopping (the last checkpoint is kept). \
         Try a lower learning rate or stronger gradient clipping"
    )]
    NonFiniteLoss { step: usize, loss: f64 },
    #[error("reading a tensor back from the device: {0}")]
    Tensor(#[from] burn::tensor::DataError),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// A request that cannot be carried out as given (an empty prompt, a bad temperature).
    #[error("{0}")]
    Invalid(String),
}

impl TrainError {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| Self::Io {
            path,
            action,
            error,
        }
    }
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;
