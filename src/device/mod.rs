//! Where the generator runs and in which precision.

pub mod cuda;

use std::str::FromStr;

use tch::{Device, Kind};

/// The `--device` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceChoice {
    /// The first CUDA GPU when there is one, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA GPU number N.
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => text
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("device '{text}' is not one of auto, cpu, cuda, cuda:N")),
        }
    }
}

impl TryFrom<String> for DeviceChoice {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<DeviceChoice> for String {
    fn from(d: DeviceChoice) -> String {
        match d {
            DeviceChoice::Auto => "auto".into(),
            DeviceChoice::Cpu => "cpu".into(),
            DeviceChoice::Cuda(n) => format!("cuda:{n}"),
        }
    }
}

/// The `--precision` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionChoice {
    /// bf16 on a GPU and on a CPU with bf16 instructions ([`cpu_has_bf16`]), else f32.
    Auto,
    /// 32-bit float.
    F32,
    /// IEEE half (GPU only).
    F16,
    /// bfloat16 (on the CPU only worth it where the CPU has bf16 instructions).
    Bf16,
}

/// Errors choosing a device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// CUDA was asked for and is not there.
    #[error("--device {asked} was asked for, but {found}")]
    NoCuda {
        /// What was asked for.
        asked: String,
        /// What was found instead.
        found: String,
    },
    /// Half precision on the CPU.
    #[error("--precision {0} runs on a CUDA device only; use f32, bf16 or auto on the CPU")]
    HalfOnCpu(&'static str),
}

/// Makes libtorch's CUDA backend available. A binary linked with `--as-needed` drops
/// `libtorch_cuda.so`, so CUDA never registers; opening it by hand registers it. On machines
/// without CUDA libraries the open fails and japanim runs on the CPU. Returns whether it loaded.
pub fn register_cuda() -> bool {
    static LOADED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *LOADED.get_or_init(|| {
        // SAFETY: loading libtorch's own CUDA library only runs its static initialisers,
        // which register the CUDA backend with the already-loaded libtorch.
        match unsafe { libloading::Library::new("libtorch_cuda.so") } {
            Ok(lib) => {
                std::mem::forget(lib); // keep it loaded for the whole process
                true
            }
            Err(_) => false,
        }
    })
}

/// Turns the choices into a device and a tensor kind.
pub fn resolve(device: DeviceChoice, precision: PrecisionChoice) -> Result<(Device, Kind), DeviceError> {
    let cuda_count = if register_cuda() { tch::Cuda::device_count() as usize } else { 0 };
    let device = match device {
        DeviceChoice::Auto if cuda_count > 0 => Device::Cuda(0),
        DeviceChoice::Auto | DeviceChoice::Cpu => Device::Cpu,
        DeviceChoice::Cuda(n) if n < cuda_count => Device::Cuda(n),
        DeviceChoice::Cuda(n) => {
            let found = if cuda_count == 0 {
                "this libtorch sees no CUDA GPU".to_string()
            } else {
                format!("only {cuda_count} CUDA GPU(s) are present")
            };
            return Err(DeviceError::NoCuda { asked: format!("cuda:{n}"), found });
        }
    };
    let kind = match (precision, device) {
        (PrecisionChoice::Auto, Device::Cpu) if !cpu_has_bf16() => Kind::Float,
        (PrecisionChoice::F32, _) => Kind::Float,
        (PrecisionChoice::Auto | PrecisionChoice::Bf16, _) => Kind::BFloat16,
        (PrecisionChoice::F16, Device::Cuda(_)) => Kind::Half,
        (PrecisionChoice::F16, _) => return Err(DeviceError::HalfOnCpu("f16")),
    };
    if let Device::Cuda(_) = device {
        tch::Cuda::cudnn_set_benchmark(true); // shapes are fixed per stream
    }
    if device == Device::Cpu && kind == Kind::BFloat16 && !cpu_has_bf16() {
        // Measured on a 2-core AVX2 EPYC: a training step of the narrow generator took 85 s
        // in bf16 against 2.5 s in f32.
        tracing::warn!(
            "bf16 on a CPU without bf16 instructions: libtorch emulates it, many times slower than f32 \
             (`japanim doctor` tells); use f32 or auto"
        );
    }
    Ok((device, kind))
}

/// Whether the CPU has bfloat16 arithmetic instructions, which make `--precision bf16` on
/// the CPU faster than f32 (1.66× for the default model on an AVX512-BF16 EPYC, at 53 dB
/// PSNR from the f32 output); without them libtorch emulates bf16 and it is slower (a
/// training step 85 s against 2.5 s in f32 on an AVX2 EPYC). Decided when japanim runs, never
/// when it is built. `JAPANIM_CPU_BF16=0` or `1` overrides the detection (to test both paths
/// on one machine, or where a hypervisor hides the flag).
pub fn cpu_has_bf16() -> bool {
    match std::env::var("JAPANIM_CPU_BF16").as_deref() {
        Ok("0") => return false,
        Ok("1") => return true,
        _ => {}
    }
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("bf16")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// A short human description of what libtorch can use, for `japanim doctor`.
pub fn describe() -> String {
    let cuda = register_cuda();
    let count = if cuda { tch::Cuda::device_count() } else { 0 };
    let devices: Vec<String> = (0..count.max(0) as usize)
        .map(|i| {
            let name = cuda::device_name(i).unwrap_or_else(|| "unnamed".into());
            match cuda::memory(i) {
                Some((_, total)) => format!("cuda:{i} {name}, {:.0} MiB", total as f64 / 1048576.0),
                None => format!("cuda:{i} {name}"),
            }
        })
        .collect();
    format!(
        "libtorch CUDA backend: {}; CUDA devices: {count}{}; cuDNN: {}; CPU threads: {}; CPU bf16 instructions: {}",
        if cuda { "loaded" } else { "not available (CPU only)" },
        if devices.is_empty() { String::new() } else { format!(" ({})", devices.join("; ")) },
        if count > 0 && tch::Cuda::cudnn_is_available() { "yes" } else { "no" },
        tch::get_num_threads(),
        if cpu_has_bf16() { "yes (--precision bf16 is faster than f32 on this CPU)" } else { "no" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert_eq!("cuda".parse(), Ok(DeviceChoice::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceChoice::Cuda(3)));
        assert!("gpu".parse::<DeviceChoice>().unwrap_err().contains("auto, cpu"));
    }

    #[test]
    fn half_precision_needs_a_gpu() {
        let err = resolve(DeviceChoice::Cpu, PrecisionChoice::F16).unwrap_err();
        assert!(err.to_string().contains("CUDA device only"));
        // Auto on the CPU follows the CPU's bf16 instructions.
        let auto = if cpu_has_bf16() { Kind::BFloat16 } else { Kind::Float };
        assert_eq!(resolve(DeviceChoice::Cpu, PrecisionChoice::Auto).unwrap(), (Device::Cpu, auto));
        assert_eq!(resolve(DeviceChoice::Cpu, PrecisionChoice::F32).unwrap(), (Device::Cpu, Kind::Float));
    }
}
