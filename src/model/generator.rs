//! The CartoonGAN generator (Chen et al. 2018) as used by JapanimationGAN, with its width and
//! depth as configuration.
//!
//! Layout and tensor names (all `weight`/`bias` pairs, conv weights OIHW):
//!
//! | name                     | layer                                         |
//! |--------------------------|-----------------------------------------------|
//! | `conv_in`, `norm_in`     | reflect-pad 3, conv 7×7 3→C, IN, LeakyReLU    |
//! | `down.{0,1}.conv_s2`     | conv 3×3 stride 2, C→2C then 2C→4C            |
//! | `down.{0,1}.conv`, `.norm` | conv 3×3, IN, LeakyReLU                     |
//! | `res.{i}.conv1`, `.norm1`, `.conv2`, `.norm2` | conv 3×3, IN, LeakyReLU, conv 3×3, IN, + skip |
//! | `up.{0,1}.deconv`        | `transposed`: transposed conv 3×3 stride 2, 4C→2C then 2C→C |
//! | `up.{0,1}.resize_conv`   | `resize`: nearest-neighbour ×2, then conv 3×3, 4C→2C then 2C→C |
//! | `up.{0,1}.conv`, `.norm` | conv 3×3, IN, LeakyReLU                       |
//! | `conv_out`               | reflect-pad 3, conv 7×7 C→3, tanh             |
//! | `input_skip`             | only with `input_skip`: reflect-pad 3, conv 7×7 3→3 on the input's surface (edge-preserving smoothing), added to `conv_out`, clipped to [-1, 1] instead of the tanh |
//! | `detail.{0,1,2}`         | only with `detail_channels` D > 0: reflect-pad 1, conv 3×3 9→D, LeakyReLU, conv 3×3 D→D, LeakyReLU, conv 3×3 D→3, on the input, its surface and `conv_out`'s result, added to `conv_out`'s result |
//!
//! With `outlines` (no tensors of its own), the output is then darkened along the edges of
//! the input's surface: multiplied, in [0, 1], by `1 - ink` ([`super::surface::ink`]).
//!
//! C is `base_channels` (64 in the original), LeakyReLU slope 0.2, InstanceNorm affine with
//! eps 1e-5. Input and output are RGB in [-1, 1], NCHW, sides multiples of 4.
//!
//! The upsampling is a choice ([`Upsampling`]): the original transposed convolutions, or a
//! nearest-neighbour resize followed by a convolution (Odena et al. 2016, "Deconvolution and
//! Checkerboard Artifacts"), which cannot leave the 2-/4-px grid that a stride-2 transposed
//! convolution's uneven kernel overlap paints into every output.
//!
//! Anti-aliasing is a choice too (`antialias`, no weights of its own). A stride-2
//! convolution samples its input on a grid that a moving picture crosses: a feature finer
//! than that grid's Nyquist limit aliases, so what the bottleneck sees, and the texture the
//! network paints from it, changes with the picture's position modulo 4 px. (Measured: a
//! small effect; the flicker of fine-tuned models on a slow pan came from their edges, which
//! the margin below removes.) With `antialias`, each stride-2 convolution's input is first blurred by
//! [1 2 1]⊗[1 2 1]/16 (Zhang 2019, "Making Convolutional Networks Shift-Invariant Again";
//! blur then stride equals convolve, blur, subsample, the cheap way round), and `resize`
//! doubles bilinearly ([1 3]/4 taps, the same blur after a nearest-neighbour doubling)
//! instead of by repeating pixels. The kernels are fixed, so a generator trained without
//! them can be fine-tuned with them.
//!
//! A margin is a choice too (`margin`, no weights of its own). The 3×3 convolutions pad with
//! zeros, so a network can tell where the frame ends, and one trained toward a style's
//! texture statistics on small crops learns to paint at the frame's edges and corners, where
//! nothing in the picture asks for it (a colourful blot in a corner). On video such marks stay
//! with the frame while the picture moves under them: the warping error of a slow pan was
//! 67 times the source's, 2.6 times once a margin hid the edges. With a margin, the frame is extended on every side by its
//! mirror image before the network, and the margin is cut off after
//! ([`Generator::stylize`]; the engine does the same for whole and tiled frames): the
//! network's edge is outside the picture, where training never looks either.
//! `reflect_padding` goes further: every 3×3 convolution but a transposed one pads by
//! reflection, so no layer sees a zero border that tells it where the frame ends (a network
//! pushed hard toward the style's statistics paints blots through a 32-px margin otherwise).
//!
//! The input skip is a choice too. InstanceNorm right after `conv_in` removes each feature's
//! mean and scale, so the original network is blind to its input's absolute colour: any
//! constant colour offset or contrast scale of the whole input gives exactly the same output,
//! and the colours of the output are guessed from content (greens can turn brown). With
//! `input_skip`, the output is the network's correction added to a 7×7 filter of the input's
//! *surface* ([`super::surface::smooth`]: three passes of a self-guided filter, r 3, ε 0.006,
//! which flattens texture and keeps strong edges), clipped to [-1, 1] (no tanh). The colours
//! and the flat areas come from the photo's surface; the network adds the rest of the
//! cartoon (outlines, flattened shading, the style's colours). The filter starts as the
//! identity and `conv_out` at a tenth of its random initialisation, so a new generator
//! starts near the surface of its input. The filter reaches 18 px, so it runs on whole
//! frames after the tiled segments ([`Generator::finish`]).
//!
//! A detail path is a choice too (`detail_channels`). Everything the rest of the network
//! paints comes out of a quarter-resolution bottleneck, doubled twice: it cannot place a
//! detail finer than a few pixels where the photo has one, and a pixel optimiser reaches
//! figures no trained network of this layout came near (models/README.md). The detail path
//! is three 3×3 convolutions at full resolution that see the input, its surface and the
//! network's result there, and add a correction. Its last layer starts at zero, so a
//! generator given one starts as the generator without it (fine-tuning from a file that has
//! none). It reaches 3 px and has no InstanceNorm, so it runs on whole frames with the rest
//! of [`Generator::finish`].
//!
//! The outlines are a fixed drawing step, not learned: an illustration's dark contour lines
//! are one-pixel features a small network trained for minutes on two CPU cores does not
//! learn to draw (its outputs stayed line-free in every measured run), while the difference
//! of Gaussians of the surface draws them in place, on whole frames, stable from frame to
//! frame as the surface is. The network learns around them (colours, flattening).

use tch::{nn, TchError, Tensor};

/// How the generator's two up blocks double the resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Upsampling {
    /// Transposed convolution 3×3 stride 2: the original CartoonGAN / JapanimationGAN layout
    /// (and the one files without an upsampling key were written with).
    #[default]
    Transposed,
    /// Nearest-neighbour ×2, then a 3×3 convolution: no checkerboard grid.
    Resize,
}

impl Upsampling {
    /// Its name in configuration files and weights metadata.
    pub fn name(self) -> &'static str {
        match self {
            Upsampling::Transposed => "transposed",
            Upsampling::Resize => "resize",
        }
    }
}

impl std::fmt::Display for Upsampling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Upsampling {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "transposed" => Ok(Upsampling::Transposed),
            "resize" => Ok(Upsampling::Resize),
            _ => Err(format!("upsampling '{text}' is not one of transposed, resize")),
        }
    }
}

/// Width, depth and upsampling of a generator; stored in a weights file's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GeneratorConfig {
    /// Channels of the first layer; the down blocks double it twice (64 → 128 → 256).
    pub base_channels: i64,
    /// Number of residual blocks at the bottleneck (8 in the original).
    pub residual_blocks: i64,
    /// How the up blocks double the resolution.
    pub upsampling: Upsampling,
    /// Whether the output is a 7×7 filter of the input plus the network's correction (see the
    /// module documentation); off in the original layout.
    #[serde(default)]
    pub input_skip: bool,
    /// Whether dark outlines are drawn along the edges of the input's surface (see the module
    /// documentation); off in the original layout.
    #[serde(default)]
    pub outlines: bool,
    /// With outlines: the most ink a line takes, in percent (at 70 an outline keeps 30 % of
    /// the colour under it; files made before this setting are 70).
    #[serde(default = "default_outline_ink")]
    pub outline_ink: u8,
    /// Whether the resolution changes are anti-aliased (see the module documentation): a
    /// [1 2 1] blur before each stride-2 convolution and, with `resize` upsampling, bilinear
    /// instead of nearest-neighbour doubling. No weights of its own; off in the original layout.
    #[serde(default)]
    pub antialias: bool,
    /// Pixels of mirrored picture added on every side before the network and cut off after
    /// (a multiple of 4; see [`Generator::stylize`]); 0 in the original layout.
    #[serde(default)]
    pub margin: u32,
    /// Whether the 3×3 convolutions pad by reflection instead of with zeros (see the module
    /// documentation); off in the original layout. No weights of its own.
    #[serde(default)]
    pub reflect_padding: bool,
    /// Channels of the full-resolution detail path (see the module documentation); 0, the
    /// original layout, has none.
    #[serde(default)]
    pub detail_channels: u32,
}

/// The widest detail path a generator may have.
pub const MAX_DETAIL_CHANNELS: u32 = 256;

fn default_outline_ink() -> u8 {
    DEFAULT_OUTLINE_INK
}

/// The outline ink of generators that do not say, in percent: an outline keeps at least 30 %
/// of the colour under it.
pub const DEFAULT_OUTLINE_INK: u8 = 70;

/// The smallest work size (`japanim.work_size`: the longer side `stylize` draws larger
/// frames at) other than 0 (frames at their own size).
pub const MIN_WORK_SIZE: u32 = 64;

/// Whether `work_size` is 0 or at least [`MIN_WORK_SIZE`].
pub fn valid_work_size(work_size: u32) -> bool {
    work_size == 0 || work_size >= MIN_WORK_SIZE
}

/// What is wrong with a work size, if anything, for an error message after the name the
/// caller knows it by (`work size`, `work_size`, `--work-size`).
pub fn work_size_problem(work_size: u32) -> Option<String> {
    (!valid_work_size(work_size))
        .then(|| format!("{work_size} must be 0 (frames at their own size) or at least {MIN_WORK_SIZE}"))
}

/// The largest margin a generator may ask for, in pixels.
pub const MAX_MARGIN: u32 = 256;

/// Whether `margin` is one a generator may have: a multiple of 4 (frames stay on the
/// network's 4-px grid) up to [`MAX_MARGIN`].
pub fn valid_margin(margin: u32) -> bool {
    margin.is_multiple_of(4) && margin <= MAX_MARGIN
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            base_channels: 64,
            residual_blocks: 8,
            upsampling: Upsampling::Transposed,
            input_skip: false,
            outlines: false,
            outline_ink: DEFAULT_OUTLINE_INK,
            antialias: false,
            margin: 0,
            reflect_padding: false,
            detail_channels: 0,
        }
    }
}

/// "32 base channels, 4 residual blocks, resize upsampling, input skip, outlines" (or "no
/// input skip"; outlines, anti-aliasing, a margin, reflect padding and a detail path are named
/// only when on).
impl std::fmt::Display for GeneratorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} base channels, {} residual blocks, {} upsampling",
            self.base_channels, self.residual_blocks, self.upsampling
        )?;
        write!(f, ", {}", if self.input_skip { "input skip" } else { "no input skip" })?;
        if self.antialias {
            write!(f, ", anti-aliased")?;
        }
        if self.margin > 0 {
            write!(f, ", margin {} px", self.margin)?;
        }
        if self.reflect_padding {
            write!(f, ", reflect padding")?;
        }
        if self.detail_channels > 0 {
            write!(f, ", detail path of {} channels", self.detail_channels)?;
        }
        if self.outlines {
            write!(f, ", outlines")?;
            if self.outline_ink != DEFAULT_OUTLINE_INK {
                write!(f, " (ink {} %)", self.outline_ink)?;
            }
        }
        Ok(())
    }
}

impl GeneratorConfig {
    /// Multiply-adds per output pixel, for throughput figures.
    pub fn macs_per_pixel(&self) -> f64 {
        let c = self.base_channels as f64;
        let conv = |k: f64, cin: f64, cout: f64, scale: f64| k * k * cin * cout * scale;
        conv(7.0, 3.0, c, 1.0) * 2.0 // in and out 7×7 (3 channels either way)
            + conv(3.0, c, 2.0 * c, 0.25) + conv(3.0, 2.0 * c, 2.0 * c, 0.25)
            + conv(3.0, 2.0 * c, 4.0 * c, 1.0 / 16.0) + conv(3.0, 4.0 * c, 4.0 * c, 1.0 / 16.0)
            + self.residual_blocks as f64 * 2.0 * conv(3.0, 4.0 * c, 4.0 * c, 1.0 / 16.0)
            + conv(3.0, 4.0 * c, 2.0 * c, 0.25) + conv(3.0, 2.0 * c, 2.0 * c, 0.25)
            + conv(3.0, 2.0 * c, c, 1.0) + conv(3.0, c, c, 1.0)
            + if self.input_skip { conv(7.0, 3.0, 3.0, 1.0) } else { 0.0 }
            + if self.detail_channels > 0 {
                let d = f64::from(self.detail_channels);
                conv(3.0, 9.0, d, 1.0) + conv(3.0, d, d, 1.0) + conv(3.0, d, 3.0, 1.0)
            } else {
                0.0
            }
    }
}

#[inline]
pub(crate) fn leaky_relu(x: &Tensor) -> Result<Tensor, TchError> {
    // tch's leaky_relu has slope 0.01; max(x, 0.2x) is LeakyReLU(0.2) in one fused op.
    x.f_maximum(&x.f_mul_scalar(0.2)?)
}

/// `parameter` in the number format of `x`: a no-op when they agree (inference casts the
/// weights once), a differentiable cast when training in mixed precision (f32 master
/// weights, bf16 arithmetic), so gradients reach the f32 weights.
pub(crate) fn like(parameter: &Tensor, x: &Tensor) -> Result<Tensor, TchError> {
    if parameter.kind() == x.kind() {
        Ok(parameter.shallow_clone())
    } else {
        parameter.f_to_kind(x.kind())
    }
}

/// A convolution with its own stride and padding, applied with fallible ops.
#[derive(Debug)]
pub(crate) struct Conv {
    weight: Tensor,
    bias: Tensor,
    stride: i64,
    padding: i64,
    reflect: bool,
}

impl Conv {
    pub(crate) fn new(p: nn::Path, cin: i64, cout: i64, kernel: i64, stride: i64, reflect: bool) -> Self {
        let conv = nn::conv2d(p, cin, cout, kernel, nn::ConvConfig { stride, ..Default::default() });
        let bias = conv.bs.expect("conv2d is created with a bias");
        Self { weight: conv.ws, bias, stride, padding: kernel / 2, reflect }
    }

    /// Makes a same-size convolution with as many outputs as inputs pass its input through:
    /// the centre tap 1 from each channel to itself, everything else 0.
    fn set_identity(&self) {
        let (cout, _, kh, kw) = self.weight.size4().expect("a conv weight is 4-d");
        tch::no_grad(|| {
            let mut weight = self.weight.shallow_clone();
            let _ = weight.zero_();
            for c in 0..cout {
                let _ = weight.get(c).get(c).get(kh / 2).get(kw / 2).fill_(1.0);
            }
            let _ = self.bias.shallow_clone().zero_();
        });
    }

    /// Multiplies weights and bias by `factor`.
    fn scale(&self, factor: f64) {
        tch::no_grad(|| {
            let _ = self.weight.shallow_clone().f_mul_scalar_(factor);
            let _ = self.bias.shallow_clone().f_mul_scalar_(factor);
        });
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let (weight, bias) = (like(&self.weight, x)?, like(&self.bias, x)?);
        if self.reflect {
            let p = self.padding;
            let x = x.f_reflection_pad2d([p, p, p, p])?;
            x.f_conv2d(&weight, Some(&bias), [self.stride], [0], [1], 1)
        } else {
            x.f_conv2d(&weight, Some(&bias), [self.stride], [self.padding], [1], 1)
        }
    }
}

/// The layer that exactly doubles the size in an up block.
#[derive(Debug)]
enum Upsample {
    /// Transposed convolution 3×3 stride 2 (weight IOHW).
    Transposed { weight: Tensor, bias: Tensor },
    /// Nearest-neighbour (or with `bilinear`, bilinear) ×2, then a 3×3 convolution.
    Resize { conv: Conv, bilinear: bool },
}

impl Upsample {
    fn new(p: &nn::Path, cin: i64, cout: i64, upsampling: Upsampling, (antialias, reflect): (bool, bool)) -> Self {
        match upsampling {
            Upsampling::Transposed => {
                let config = nn::ConvTransposeConfig { stride: 2, padding: 1, output_padding: 1, ..Default::default() };
                let deconv = nn::conv_transpose2d(p / "deconv", cin, cout, 3, config);
                let bias = deconv.bs.expect("conv_transpose2d is created with a bias");
                Upsample::Transposed { weight: deconv.ws, bias }
            }
            Upsampling::Resize => {
                Upsample::Resize { conv: Conv::new(p / "resize_conv", cin, cout, 3, 1, reflect), bilinear: antialias }
            }
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        match self {
            Upsample::Transposed { weight, bias } => {
                x.f_conv_transpose2d(&like(weight, x)?, Some(&like(bias, x)?), [2], [1], [1], 1, [1])
            }
            Upsample::Resize { conv, bilinear } => {
                let (_, _, h, w) = x.size4()?;
                let doubled = if *bilinear {
                    x.f_upsample_bilinear2d([2 * h, 2 * w], false, Some(2.0), Some(2.0))?
                } else {
                    x.f_upsample_nearest2d([2 * h, 2 * w], Some(2.0), Some(2.0))?
                };
                conv.forward(&doubled)
            }
        }
    }
}

/// Affine instance normalisation over each channel of each image.
#[derive(Debug)]
pub(crate) struct InstanceNorm {
    weight: Tensor,
    bias: Tensor,
}

impl InstanceNorm {
    pub(crate) fn new(p: nn::Path, channels: i64) -> Self {
        Self { weight: p.ones("weight", &[channels]), bias: p.zeros("bias", &[channels]) }
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        own_instance_norm(x, &like(&self.weight, x)?, &like(&self.bias, x)?)
    }
}

/// Standard instance normalisation: each image with its own statistics.
pub fn own_instance_norm(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor, TchError> {
    x.f_instance_norm(Some(weight), Some(bias), None::<&Tensor>, None::<&Tensor>, true, 0.0, NORM_EPS, true)
}

/// InstanceNorm's epsilon.
pub const NORM_EPS: f64 = 1e-5;

#[derive(Debug)]
struct DownBlock {
    conv_s2: Conv,
    conv: Conv,
    norm: InstanceNorm,
    /// Blur the input of `conv_s2` first (anti-aliasing).
    blur: bool,
}

impl DownBlock {
    /// Halves the resolution: the stride-2 convolution (after the blur when anti-aliased),
    /// then the 3×3 convolution, up to the block's InstanceNorm.
    fn forward(&self, h: &Tensor) -> Result<Tensor, TchError> {
        let strided = if self.blur { self.conv_s2.forward(&blur121(h)?)? } else { self.conv_s2.forward(h)? };
        self.conv.forward(&strided)
    }
}

/// `x` extended by `margin` pixels on every side by reflection; a side shorter than the
/// margin is reflected again from the new edge (reflection reaches at most side − 1 px at a
/// time), and a one-pixel side is repeated.
pub fn mirror_pad(x: &Tensor, margin: i64) -> Result<Tensor, TchError> {
    let mut x = x.shallow_clone();
    let mut left = margin;
    while left > 0 {
        let (_, _, h, w) = x.size4()?;
        let step = left.min(h - 1).min(w - 1);
        if step < 1 {
            return x.f_replication_pad2d([left, left, left, left]);
        }
        x = x.f_reflection_pad2d([step, step, step, step])?;
        left -= step;
    }
    Ok(x)
}

/// Each channel blurred by [1 2 1]⊗[1 2 1]/16 with reflected borders (a low-pass filter
/// whose taps are exact in bf16).
pub(crate) fn blur121(x: &Tensor) -> Result<Tensor, TchError> {
    let channels = x.size4()?.1;
    let taps = Tensor::from_slice(&[1.0f32, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0])
        .f_div_scalar(16.0)?
        .f_to_kind(x.kind())?
        .f_to_device(x.device())?
        .f_view([1, 1, 3, 3])?
        .f_expand([channels, 1, 3, 3], false)?
        .f_contiguous()?;
    x.f_reflection_pad2d([1, 1, 1, 1])?.f_conv2d(&taps, None::<&Tensor>, [1], [0], [1], channels)
}

#[derive(Debug)]
struct ResBlock {
    conv1: Conv,
    norm1: InstanceNorm,
    conv2: Conv,
    norm2: InstanceNorm,
}

#[derive(Debug)]
struct UpBlock {
    upsample: Upsample,
    conv: Conv,
    norm: InstanceNorm,
}

/// Decides how each InstanceNorm layer normalises. The tiled engine uses it to normalise
/// every tile of a frame with the frame's statistics rather than the tile's own.
pub trait NormHook {
    /// Normalises `x`, the input of InstanceNorm layer `layer` (numbered in forward order
    /// from 0), with the layer's affine `weight` and `bias`.
    fn normalize(&mut self, layer: usize, x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor, TchError>;
}

/// Standard InstanceNorm: every image with its own statistics.
pub struct OwnStatistics;

impl NormHook for OwnStatistics {
    fn normalize(&mut self, _layer: usize, x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor, TchError> {
        own_instance_norm(x, weight, bias)
    }
}

/// The generator network; weights live in the `nn::VarStore` of the path it was built on.
#[derive(Debug)]
pub struct Generator {
    config: GeneratorConfig,
    conv_in: Conv,
    norm_in: InstanceNorm,
    down: Vec<DownBlock>,
    res: Vec<ResBlock>,
    up: Vec<UpBlock>,
    conv_out: Conv,
    input_skip: Option<Conv>,
    detail: Vec<Conv>,
}

impl Generator {
    /// Creates the layers under `p`, freshly initialised; load weights into the store after.
    pub fn new(p: &nn::Path, config: GeneratorConfig) -> Self {
        let c = config.base_channels;
        let reflect = config.reflect_padding;
        let down = (0..2)
            .map(|i| {
                let (cin, cout) = (c << i, c << (i + 1));
                let b = p / "down" / i;
                DownBlock {
                    conv_s2: Conv::new(&b / "conv_s2", cin, cout, 3, 2, reflect),
                    conv: Conv::new(&b / "conv", cout, cout, 3, 1, reflect),
                    norm: InstanceNorm::new(&b / "norm", cout),
                    blur: config.antialias,
                }
            })
            .collect();
        let res = (0..config.residual_blocks)
            .map(|i| {
                let b = p / "res" / i;
                ResBlock {
                    conv1: Conv::new(&b / "conv1", 4 * c, 4 * c, 3, 1, reflect),
                    norm1: InstanceNorm::new(&b / "norm1", 4 * c),
                    conv2: Conv::new(&b / "conv2", 4 * c, 4 * c, 3, 1, reflect),
                    norm2: InstanceNorm::new(&b / "norm2", 4 * c),
                }
            })
            .collect();
        let up = (0..2)
            .map(|i| {
                let (cin, cout) = (c << (2 - i), c << (1 - i));
                let b = p / "up" / i;
                UpBlock {
                    upsample: Upsample::new(&b, cin, cout, config.upsampling, (config.antialias, reflect)),
                    conv: Conv::new(&b / "conv", cout, cout, 3, 1, reflect),
                    norm: InstanceNorm::new(&b / "norm", cout),
                }
            })
            .collect();
        let conv_in = Conv::new(p / "conv_in", 3, c, 7, 1, true);
        let norm_in = InstanceNorm::new(p / "norm_in", c);
        let conv_out = Conv::new(p / "conv_out", c, 3, 7, 1, true);
        // Made last, so the other layers draw the same random numbers with or without it.
        let input_skip = config.input_skip.then(|| {
            let conv = Conv::new(p / "input_skip", 3, 3, 7, 1, true);
            conv.set_identity();
            // The network's correction starts small: a new generator nearly passes its input
            // through, and the layers before still get gradients (a zero start starves them).
            conv_out.scale(0.1);
            conv
        });
        // After the input skip, for the same reason.
        let d = i64::from(config.detail_channels);
        let detail: Vec<Conv> = if d > 0 {
            let layers = [(9, d), (d, d), (d, 3)];
            layers
                .iter()
                .enumerate()
                .map(|(i, &(cin, cout))| Conv::new(p / "detail" / i, cin, cout, 3, 1, true))
                .collect()
        } else {
            Vec::new()
        };
        if let Some(last) = detail.last() {
            // Starts at zero: the generator starts as it would be without the path.
            last.scale(0.0);
        }
        Self { config, conv_in, norm_in, down, res, up, conv_out, input_skip, detail }
    }

    /// The names of the detail path's tensors (empty without one): a file made without the
    /// path can start a generator with one, which then leaves them at their initialisation.
    pub fn detail_tensor_names(&self) -> Vec<String> {
        (0..self.detail.len()).flat_map(|i| ["weight", "bias"].map(|t| format!("detail.{i}.{t}"))).collect()
    }

    /// The width and depth this generator was built with.
    pub fn config(&self) -> GeneratorConfig {
        self.config
    }

    /// The whole model on an NCHW RGB batch in [-1, 1] whose sides are multiples of 4: the
    /// layout's margin added, [`Self::forward`], the margin cut off. Training calls this; the
    /// engine adds and removes the margin around its own (whole or tiled) passes.
    pub fn stylize(&self, x: &Tensor) -> Result<Tensor, TchError> {
        self.remove_margin(&self.forward(&self.add_margin(x)?)?)
    }

    /// `x` extended by the layout's margin on every side by reflection.
    pub fn add_margin(&self, x: &Tensor) -> Result<Tensor, TchError> {
        mirror_pad(x, i64::from(self.config.margin))
    }

    /// The picture inside a batch made from [`Self::add_margin`]'s result.
    pub fn remove_margin(&self, y: &Tensor) -> Result<Tensor, TchError> {
        let margin = i64::from(self.config.margin);
        if margin == 0 {
            return Ok(y.shallow_clone());
        }
        let (_, _, h, w) = y.size4()?;
        y.f_narrow(2, margin, h - 2 * margin)?.f_narrow(3, margin, w - 2 * margin)
    }

    /// Runs the network on an NCHW RGB batch in [-1, 1] whose sides are multiples of 4
    /// (at least 8); returns the stylized batch in [-1, 1].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        self.forward_with(x, &mut OwnStatistics)
    }

    /// Number of InstanceNorm layers (the layers a [`NormHook`] sees).
    pub fn norm_layers(&self) -> usize {
        1 + self.down.len() + 2 * self.res.len() + self.up.len()
    }

    /// [`Self::forward`] with every InstanceNorm layer's normalisation chosen by `hook`.
    pub fn forward_with(&self, x: &Tensor, hook: &mut dyn NormHook) -> Result<Tensor, TchError> {
        let mut state = Segment { input: x.shallow_clone(), skip: None };
        for k in 0..self.segments() {
            state = self.segment(k, &state, hook)?;
        }
        self.finish(&state.input, x)
    }

    /// The output image from the last segment's result and the input `image` (the same
    /// region of both): tanh, or with an input skip its filter added and the sum clipped;
    /// then, with outlines, darkened along the surface's edges. Pointwise but for the
    /// surface, the skip's 7×7 filter and the outlines' blur, so it runs on whole frames
    /// after tiled segments.
    pub fn finish(&self, last: &Tensor, image: &Tensor) -> Result<Tensor, TchError> {
        use super::surface;
        // In f32 whatever the network computes in (`smooth` casts): the guided filter's
        // variances are differences of squares, which bf16's 8-bit mantissa would swamp.
        let surface = (self.input_skip.is_some() || self.config.outlines || !self.detail.is_empty())
            .then(|| surface::smooth(image, surface::RADIUS, surface::EPS, surface::PASSES))
            .transpose()?;
        let last = &match &surface {
            Some(surface) if !self.detail.is_empty() => last.f_add(&self.detail(image, surface, last)?)?,
            _ => last.shallow_clone(),
        };
        let out = match (&self.input_skip, &surface) {
            // No tanh on this path: the identity filter then passes the input through
            // exactly, and the network's part is a correction clipped to the value range.
            (Some(skip), Some(surface)) => {
                let filtered = skip.forward(surface)?;
                last.f_add(&filtered.f_to_kind(last.kind())?)?.f_clamp(-1.0, 1.0)?
            }
            _ => last.f_tanh()?,
        };
        match (self.config.outlines, &surface) {
            (true, Some(surface)) => {
                let unit = surface.f_add_scalar(1.0)?.f_mul_scalar(0.5)?;
                let ink = surface::ink(
                    &unit,
                    surface::LINE_SIGMA,
                    surface::LINE_THRESHOLD,
                    surface::LINE_GAIN,
                    f64::from(self.config.outline_ink) / 100.0,
                )?;
                let keep = ink.f_neg()?.f_add_scalar(1.0)?.f_to_kind(out.kind())?;
                // (out + 1) / 2 · keep, back to [-1, 1].
                out.f_add_scalar(1.0)?.f_mul(&keep)?.f_sub_scalar(1.0)
            }
            _ => Ok(out),
        }
    }

    /// The detail path's correction from the input `image`, its `surface` and the last
    /// segment's result, in the result's number format.
    fn detail(&self, image: &Tensor, surface: &Tensor, last: &Tensor) -> Result<Tensor, TchError> {
        let kind = last.kind();
        let mut h = Tensor::f_cat(&[image.f_to_kind(kind)?, surface.f_to_kind(kind)?, last.shallow_clone()], 1)?;
        for (i, conv) in self.detail.iter().enumerate() {
            h = conv.forward(&h)?;
            if i + 1 < self.detail.len() {
                h = leaky_relu(&h)?;
            }
        }
        Ok(h)
    }

    /// Number of segments: the network cut just before each InstanceNorm layer.
    pub fn segments(&self) -> usize {
        self.norm_layers() + 1
    }

    /// Runs segment `k`: segment 0 takes the image to the input of InstanceNorm layer 0;
    /// segment k > 0 normalises its input with layer k − 1 (through `hook`) and runs on to
    /// the input of layer k, or for the last segment to the output before [`Self::finish`]. The residual
    /// skip travels in [`Segment::skip`]. Each segment holds one or two convolutions, so its
    /// receptive-field radius is small (at most 6 input pixels, 8 anti-aliased): the exact tiled engine
    /// runs the network segment by segment over tiles with small halos.
    pub fn segment(&self, k: usize, state: &Segment, hook: &mut dyn NormHook) -> Result<Segment, TchError> {
        let (downs, blocks) = (self.down.len(), self.res.len());
        let x = &state.input;
        if k == 0 {
            return Ok(Segment { input: self.conv_in.forward(x)?, skip: None });
        }
        let layer = k - 1;
        let norm = |n: &InstanceNorm, hook: &mut dyn NormHook| {
            hook.normalize(layer, x, &like(&n.weight, x)?, &like(&n.bias, x)?)
        };
        // The first up block's convolutions, after the residual stack.
        let into_up = |h: &Tensor| -> Result<Segment, TchError> {
            let up = &self.up[0];
            Ok(Segment { input: up.conv.forward(&up.upsample.forward(h)?)?, skip: None })
        };
        if layer == 0 {
            let h = leaky_relu(&norm(&self.norm_in, hook)?)?;
            return Ok(Segment { input: self.down[0].forward(&h)?, skip: None });
        }
        if layer <= downs {
            let h = leaky_relu(&norm(&self.down[layer - 1].norm, hook)?)?;
            return match (self.down.get(layer), self.res.first()) {
                (Some(d), _) => Ok(Segment { input: d.forward(&h)?, skip: None }),
                // The first residual block keeps `h` as its skip.
                (None, Some(block)) => Ok(Segment { input: block.conv1.forward(&h)?, skip: Some(h) }),
                (None, None) => into_up(&h),
            };
        }
        let in_res = layer - downs - 1;
        if in_res < 2 * blocks {
            let (b, second) = (in_res / 2, in_res % 2 == 1);
            let block = &self.res[b];
            let skip = state.skip.as_ref().ok_or_else(|| TchError::Kind("a residual segment needs its skip".into()))?;
            if !second {
                let r = leaky_relu(&norm(&block.norm1, hook)?)?;
                return Ok(Segment { input: block.conv2.forward(&r)?, skip: Some(skip.shallow_clone()) });
            }
            let h = skip.f_add(&norm(&block.norm2, hook)?)?;
            return match self.res.get(b + 1) {
                Some(next) => Ok(Segment { input: next.conv1.forward(&h)?, skip: Some(h) }),
                None => into_up(&h),
            };
        }
        let u = in_res - 2 * blocks;
        let h = leaky_relu(&norm(&self.up[u].norm, hook)?)?;
        match self.up.get(u + 1) {
            Some(up) => Ok(Segment { input: up.conv.forward(&up.upsample.forward(&h)?)?, skip: None }),
            None => Ok(Segment { input: self.conv_out.forward(&h)?, skip: None }),
        }
    }
}

/// The state between two segments of the generator (see [`Generator::segment`]): the
/// input of the next InstanceNorm layer (or the output image after the last segment), and
/// inside the residual stack the block's skip connection, at the same resolution.
pub struct Segment {
    /// Pre-normalisation activation (or image).
    pub input: Tensor,
    /// The residual block's input, added back after its second normalisation.
    pub skip: Option<Tensor>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn full_architecture_parameter_count() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _g = crate::model::with_global_rng(|| Generator::new(&vs.root(), GeneratorConfig::default()));
        let params: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
        // 11,120,195 convolution parameters (the 11.12 M of the original) + 9,472 InstanceNorm
        // scales and shifts.
        assert_eq!(params, 11_129_667);
    }

    #[test]
    fn the_blur_keeps_flat_areas_and_removes_the_finest_pattern() {
        let (h, w) = (6i64, 8i64);
        let flat = Tensor::full([1, 2, h, w], 0.3, (Kind::Float, Device::Cpu));
        let diff = (blur121(&flat).unwrap() - &flat).abs().max().double_value(&[]);
        assert!(diff < 1e-7, "a flat image stays flat: {diff}");
        // A 1-px checkerboard of ±1 is above every stride-2 grid's Nyquist limit: the blur
        // takes it to 0 everywhere (reflected borders keep the pattern's phase).
        let checker = Tensor::from_slice(
            &(0..h * w).map(|i| if (i / w + i % w) % 2 == 0 { 1.0f32 } else { -1.0 }).collect::<Vec<_>>(),
        )
        .view([1, 1, h, w]);
        let left = blur121(&checker).unwrap().abs().max().double_value(&[]);
        assert!(left < 1e-7, "the checkerboard is gone: {left}");
        // A ramp along x (below the limit) is kept inside (the taps sum to 1, symmetric).
        let ramp = Tensor::arange(w, (Kind::Float, Device::Cpu)).view([1, 1, 1, w]).expand([1, 1, h, w], false);
        let inner = |t: &Tensor| t.narrow(3, 1, w - 2);
        let kept = (inner(&blur121(&ramp).unwrap()) - inner(&ramp)).abs().max().double_value(&[]);
        assert!(kept < 1e-6, "a ramp is kept away from the borders: {kept}");
    }

    #[test]
    fn output_shape_and_range() {
        let vs = nn::VarStore::new(Device::Cpu);
        let g = crate::model::with_global_rng(|| {
            Generator::new(&vs.root(), GeneratorConfig { base_channels: 4, residual_blocks: 1, ..Default::default() })
        });
        let x = Tensor::rand([2, 3, 12, 20], (Kind::Float, Device::Cpu)) * 2 - 1;
        let y = tch::no_grad(|| g.forward(&x)).unwrap();
        assert_eq!(y.size(), vec![2, 3, 12, 20]);
        assert!(y.abs().max().double_value(&[]) <= 1.0);
    }
}
