//! Reading `food11.pth` as the original app ships it: a `torch.save` zip
//! whose `data.pkl` is a pickled dict of tensors (a state_dict). tch cannot
//! load such a dict ("Expected GenericDict"), so the pickle is read in Rust
//! with candle-core's PyTorch checkpoint reader, and the tensors are copied
//! into tch's VarStore by their torchvision parameter names.

use anyhow::{bail, Context, Result};
use candle_core::{pickle::PthTensors, DType};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// A state_dict's tensors by name, as tch tensors on the CPU.
pub type StateDict = BTreeMap<String, tch::Tensor>;

/// What the service tells about the weights it loaded (page and /healthz).
#[derive(Debug, Clone, serde::Serialize)]
pub struct WeightsInfo {
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    pub tensors: usize,
    pub parameters: i64,
}

/// Reads a torch.save'd state_dict. A checkpoint that wraps it in a dict
/// under `state_dict` or `model` (a common training-script habit) is also read.
pub fn read_state_dict(path: &Path) -> Result<StateDict> {
    let mut last_err = None;
    for key in [None, Some("state_dict"), Some("model")] {
        match PthTensors::new(path, key) {
            Ok(pth) if !pth.tensor_infos().is_empty() => return convert(&pth),
            Ok(_) => {}
            Err(e) => last_err = Some(e),
        }
    }
    match last_err {
        Some(e) => Err(anyhow::Error::new(e)).with_context(|| format!("reading {} as a PyTorch checkpoint", path.display())),
        None => bail!("{} holds no tensors (expected a torch.save'd state_dict)", path.display()),
    }
}

fn convert(pth: &PthTensors) -> Result<StateDict> {
    let mut out = StateDict::new();
    for name in pth.tensor_infos().keys() {
        let t = pth.get(name)?.with_context(|| format!("tensor {name} listed but absent"))?;
        let dims: Vec<i64> = t.dims().iter().map(|&d| d as i64).collect();
        let flat = t.flatten_all()?;
        let tensor = match t.dtype() {
            DType::I64 => tch::Tensor::from_slice(&flat.to_vec1::<i64>()?),
            DType::U8 => tch::Tensor::from_slice(&flat.to_vec1::<u8>()?),
            DType::U32 => tch::Tensor::from_slice(&flat.to_dtype(DType::I64)?.to_vec1::<i64>()?),
            _ => tch::Tensor::from_slice(&flat.to_dtype(DType::F32)?.to_vec1::<f32>()?),
        };
        out.insert(name.clone(), tensor.reshape(&dims));
    }
    Ok(out)
}

/// Copies a state_dict into a VarStore, strictly: every variable must be
/// present with the same shape, and nothing but BatchNorm's
/// `num_batches_tracked` counters may be left over.
pub fn load_into(vs: &mut tch::nn::VarStore, state: &StateDict) -> Result<()> {
    let vars = vs.variables();
    let mut missing = Vec::new();
    for (name, var) in &vars {
        let Some(src) = state.get(name) else {
            missing.push(name.clone());
            continue;
        };
        if src.size() != var.size() {
            bail!(
                "{name}: the checkpoint has shape {:?}, the model expects {:?} (is this a Food-11 MobileNetV2 with 11 classes?)",
                src.size(),
                var.size()
            );
        }
        let mut var = var.shallow_clone();
        tch::no_grad(|| var.copy_(&src.to_kind(var.kind())));
    }
    if !missing.is_empty() {
        missing.sort();
        bail!("the checkpoint lacks {} tensors the model needs, e.g. {}", missing.len(), missing[0]);
    }
    let unexpected: Vec<&String> = state.keys().filter(|k| !vars.contains_key(*k) && !k.ends_with("num_batches_tracked")).collect();
    if let Some(first) = unexpected.first() {
        bail!("the checkpoint has {} tensors the model does not, e.g. {first}", unexpected.len());
    }
    Ok(())
}

pub fn describe(path: &Path, state: &StateDict) -> Result<WeightsInfo> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(WeightsInfo {
        file: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        sha256: hex::encode(Sha256::digest(&bytes)),
        bytes: bytes.len() as u64,
        tensors: state.len(),
        parameters: state.values().map(|t| t.numel() as i64).sum(),
    })
}
