//! MobileNetV2 for inference, built from a torchvision-layout state_dict
//! with every BatchNorm folded into the convolution before it: the same
//! function as torchvision's network in eval mode (the parity test holds the
//! logits to PyTorch's within 1e-4), with one op where there were two, and
//! in-place ReLU6. Measured on one intra-op thread: see the README.

use crate::checkpoint::StateDict;
use anyhow::{Context, Result};
use tch::Tensor;

/// torchvision's BatchNorm2d epsilon.
const BN_EPS: f64 = 1e-5;

/// (expansion, output channels, repeats, first stride), torchvision's table.
const SETTINGS: [(i64, i64, i64, i64); 7] =
    [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];

/// A convolution with its BatchNorm folded in (weight scaled, bias added).
#[derive(Debug)]
struct Conv {
    w: Tensor,
    b: Tensor,
    stride: i64,
    padding: i64,
    groups: i64,
}

fn get<'a>(state: &'a StateDict, key: &str) -> Result<&'a Tensor> {
    state.get(key).with_context(|| format!("the checkpoint lacks {key}"))
}

impl Conv {
    /// `conv` (a bias-free Conv2d) followed by BatchNorm2d `bn`.
    fn fold(state: &StateDict, conv: &str, bn: &str, stride: i64, groups: i64) -> Result<Conv> {
        let w = get(state, &format!("{conv}.weight"))?;
        let gamma = get(state, &format!("{bn}.weight"))?;
        let beta = get(state, &format!("{bn}.bias"))?;
        let mean = get(state, &format!("{bn}.running_mean"))?;
        let var = get(state, &format!("{bn}.running_var"))?;
        let scale = gamma / (var + BN_EPS).sqrt();
        let k = w.size()[2];
        Ok(Conv { w: (w * scale.reshape([-1, 1, 1, 1])).contiguous(), b: beta - mean * &scale, stride, padding: (k - 1) / 2, groups })
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(&self.w, Some(&self.b), [self.stride, self.stride], [self.padding, self.padding], [1, 1], self.groups)
    }

    fn replica(&self) -> Conv {
        Conv { w: self.w.shallow_clone(), b: self.b.shallow_clone(), ..*self }
    }
}

/// An inverted residual block: expand (1×1) → depthwise (3×3) → project (1×1).
#[derive(Debug)]
struct Block {
    expand: Option<Conv>,
    depthwise: Conv,
    project: Conv,
    residual: bool,
}

impl Block {
    fn forward(&self, x: &Tensor) -> Tensor {
        let y = match &self.expand {
            Some(e) => e.forward(x).relu6_(),
            None => x.shallow_clone(),
        };
        let y = self.depthwise.forward(&y).relu6_();
        let y = self.project.forward(&y);
        if self.residual {
            y + x
        } else {
            y
        }
    }
}

#[derive(Debug)]
pub struct MobileNetV2 {
    stem: Conv,
    blocks: Vec<Block>,
    last: Conv,
    fc_w: Tensor,
    fc_b: Tensor,
}

impl MobileNetV2 {
    /// Folds a torchvision MobileNetV2 state_dict (already checked against
    /// the layout by `checkpoint::load_into`).
    pub fn from_state(state: &StateDict) -> Result<Self> {
        tch::no_grad(|| {
            let stem = Conv::fold(state, "features.0.0", "features.0.1", 2, 1)?;
            let mut blocks = Vec::new();
            let (mut c_in, mut idx) = (32, 1);
            for (er, c_out, n, s) in SETTINGS {
                for i in 0..n {
                    let stride = if i == 0 { s } else { 1 };
                    let p = format!("features.{idx}.conv");
                    let hidden = er * c_in;
                    let (expand, j) =
                        if er != 1 { (Some(Conv::fold(state, &format!("{p}.0.0"), &format!("{p}.0.1"), 1, 1)?), 1) } else { (None, 0) };
                    let depthwise = Conv::fold(state, &format!("{p}.{j}.0"), &format!("{p}.{j}.1"), stride, hidden)?;
                    let project = Conv::fold(state, &format!("{p}.{}", j + 1), &format!("{p}.{}", j + 2), 1, 1)?;
                    blocks.push(Block { expand, depthwise, project, residual: stride == 1 && c_in == c_out });
                    c_in = c_out;
                    idx += 1;
                }
            }
            let last = Conv::fold(state, &format!("features.{idx}.0"), &format!("features.{idx}.1"), 1, 1)?;
            Ok(MobileNetV2 {
                stem,
                blocks,
                last,
                fc_w: get(state, "classifier.1.weight")?.shallow_clone(),
                fc_b: get(state, "classifier.1.bias")?.shallow_clone(),
            })
        })
    }

    /// Logits for an N×3×224×224 batch (eval mode: Dropout is the identity).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let mut y = self.stem.forward(x).relu6_();
            for b in &self.blocks {
                y = b.forward(&y);
            }
            let y = self.last.forward(&y).relu6_();
            y.mean_dim(Some([2i64, 3].as_slice()), false, tch::Kind::Float).linear(&self.fc_w, Some(&self.fc_b))
        })
    }

    /// The same network over the same tensors (shared, not copied).
    pub fn replica(&self) -> Self {
        MobileNetV2 {
            stem: self.stem.replica(),
            blocks: self
                .blocks
                .iter()
                .map(|b| Block {
                    expand: b.expand.as_ref().map(Conv::replica),
                    depthwise: b.depthwise.replica(),
                    project: b.project.replica(),
                    residual: b.residual,
                })
                .collect(),
            last: self.last.replica(),
            fc_w: self.fc_w.shallow_clone(),
            fc_b: self.fc_b.shallow_clone(),
        }
    }

    /// Storage of the first weight, to tell replicas from copies.
    pub fn weights_ptr(&self) -> *mut std::ffi::c_void {
        self.stem.w.data_ptr()
    }
}
