//! The crate's fused operations against Burn's tensor forms and finite differences (GELU,
//! LayerNorm, the projection, the softmaxes), the L2 normalisation in half precision, and,
//! with the `wgpu` feature, its CubeCL kernels on WGPU against the CPU backend, in f32 and
//! (computing in f32) in f16. One test binary: each of these instantiates the generic
//! operations with Burn's whole dispatch, about 20 s of compiling apiece as separate binaries.

#[path = "../common/mod.rs"]
mod common;

mod gelu;
#[cfg(feature = "wgpu")]
mod gpu_kernels;
#[cfg(feature = "wgpu")]
mod half;
mod l2_normalize;
mod layer_norm;
mod linear;
mod softmax;
