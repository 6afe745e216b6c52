//! Reading tensors out of a safetensors file, with errors that name the file and the tensor.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use safetensors::tensor::{Dtype, Metadata, SafeTensors};

/// A safetensors file read whole into memory (the model files this is for are small next to
/// the model they fill).
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
    header_len: usize,
    header: Metadata,
}

impl TensorFile {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TensorFileError> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|error| TensorFileError::Read {
            path: path.clone(),
            error,
        })?;
        let (header_len, header) =
            SafeTensors::read_metadata(&bytes).map_err(|e| TensorFileError::NotSafetensors {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            path,
            bytes,
            header_len,
            header,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The free-form string metadata of the header (`__metadata__`).
    pub fn metadata(&self) -> HashMap<String, String> {
        self.header.metadata().clone().unwrap_or_default()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.header.info(name).is_some()
    }

    /// The names of all tensors, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.header.tensors().into_keys().collect();
        names.sort();
        names
    }

    pub fn shape(&self, name: &str) -> Result<Vec<usize>, TensorFileError> {
        Ok(self.info(name)?.shape.clone())
    }

    /// The `f32` tensor `name`, which must have exactly the shape `expected`.
    pub fn float<const D: usize>(
        &self,
        name: &str,
        expected: [usize; D],
        device: &Device,
    ) -> Result<Tensor<D>, TensorFileError> {
        let bytes = self.raw(name, Dtype::F32, &expected)?;
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Tensor::from_data(TensorData::new(values, expected), device))
    }

    /// The `f32` tensor `name`, of any shape with `D` dimensions.
    pub fn float_any<const D: usize>(
        &self,
        name: &str,
        device: &Device,
    ) -> Result<Tensor<D>, TensorFileError> {
        self.float(name, self.dims(name)?, device)
    }

    /// The `i64` tensor `name`, of any shape with `D` dimensions.
    pub fn int<const D: usize>(
        &self,
        name: &str,
        device: &Device,
    ) -> Result<Tensor<D, Int>, TensorFileError> {
        let dims: [usize; D] = self.dims(name)?;
        let bytes = self.raw(name, Dtype::I64, &dims)?;
        let values: Vec<i64> = bytes
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("chunks of 8")))
            .collect();
        Ok(Tensor::from_data(TensorData::new(values, dims), device))
    }

    fn dims<const D: usize>(&self, name: &str) -> Result<[usize; D], TensorFileError> {
        let shape = self.shape(name)?;
        shape
            .clone()
            .try_into()
            .map_err(|_| TensorFileError::Shape {
                path: self.path.clone(),
                name: name.to_string(),
                found: shape,
                expected: format!("{D} dimensions"),
            })
    }

    fn info(&self, name: &str) -> Result<&safetensors::tensor::TensorInfo, TensorFileError> {
        self.header
            .info(name)
            .ok_or_else(|| TensorFileError::Missing {
                path: self.path.clone(),
                name: name.to_string(),
            })
    }

    fn raw(&self, name: &str, dtype: Dtype, expected: &[usize]) -> Result<&[u8], TensorFileError> {
        let info = self.info(name)?;
        if info.dtype != dtype {
            return Err(TensorFileError::Dtype {
                path: self.path.clone(),
                name: name.to_string(),
                found: format!("{:?}", info.dtype),
                expected: format!("{dtype:?}"),
            });
        }
        if info.shape != expected {
            return Err(TensorFileError::Shape {
                path: self.path.clone(),
                name: name.to_string(),
                found: info.shape.clone(),
                expected: format!("{expected:?}"),
            });
        }
        let start = 8 + self.header_len;
        let (a, b) = info.data_offsets;
        Ok(&self.bytes[start + a..start + b])
    }
}

/// A safetensors file that cannot give what is asked of it; each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TensorFileError {
    #[error("{}: cannot read the file: {error}", .path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: not a safetensors file ({reason})", .path.display())]
    NotSafetensors { path: PathBuf, reason: String },
    #[error("{}: tensor `{name}` is missing from the file", .path.display())]
    Missing { path: PathBuf, name: String },
    #[error("{}: tensor `{name}` has shape {found:?}, expected {expected}", .path.display())]
    Shape {
        path: PathBuf,
        name: String,
        found: Vec<usize>,
        expected: String,
    },
    #[error("{}: tensor `{name}` has dtype {found}, expected {expected}", .path.display())]
    Dtype {
        path: PathBuf,
        name: String,
        found: String,
        expected: String,
    },
}
