//! AdamW as the paper and nanoGPT use it: weight decay on tensors of two or more dimensions
//! (weights, embeddings, the persistent banks), none on per-head scalars and LayerNorm gains;
//! and clipping by the global gradient norm (Burn clips tensor by tensor, PyTorch's
//! `clip_grad_norm_` over all of them at once).

use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;

use crate::config::TrainConfig;

/// The parameters of `module`, split by whether they decay, with their paths.
#[derive(Debug, Default, Clone)]
pub struct DecayGroups {
    pub decay: Vec<(String, ParamId)>,
    pub no_decay: Vec<(String, ParamId)>,
}

impl DecayGroups {
    pub fn of<M: Module>(module: &M) -> Self {
        let mut visitor = GroupVisitor::default();
        module.visit(&mut visitor);
        visitor.groups
    }
}

#[derive(Default)]
struct GroupVisitor {
    path: Vec<String>,
    groups: DecayGroups,
}

impl ModuleVisitor for GroupVisitor {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let entry = (self.path.join("."), param.id);
        match D >= 2 {
            true => self.groups.decay.push(entry),
            false => self.groups.no_decay.push(entry),
        }
    }
}

/// AdamW with the run's `weight_decay` on the decay group and none on the other.
pub fn adamw<M: Module>(module: &M, config: &TrainConfig) -> ModuleOptimizer {
    adamw_with(
        module,
        config.beta1,
        config.beta2,
        config.eps,
        config.weight_decay,
    )
}

/// AdamW with `weight_decay` on the decay group and none on the other.
pub fn adamw_with<M: Module>(
    module: &M,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
) -> ModuleOptimizer {
    let base = AdamWConfig::new()
        .with_beta_1(beta1 as f32)
        .with_beta_2(beta2 as f32)
        .with_epsilon(eps as f32);
    let no_decay = DecayGroups::of(module)
        .no_decay
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    base.clone()
        .with_weight_decay(weight_decay as f32)
        .init()
        .with_group(
            ParamGroup::from_ids(no_decay),
            base.with_weight_decay(0.0).build(),
            None,
        )
}

/// The global L2 norm of all gradients of `module`.
pub fn global_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    struct Norm<'a> {
        grads: &'a GradientsParams,
        sum: Option<Tensor<1>>,
    }
    impl ModuleVisitor for Norm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let s = g.square().sum();
                self.sum = Some(match self.sum.take() {
                    Some(acc) => acc + s,
                    None => s,
                });
            }
        }
    }
    let mut norm = Norm { grads, sum: None };
    module.visit(&mut norm);
    norm.sum.map_or(0.0, |s| s.into_scalar::<f64>().sqrt())
}

/// Scales all gradients down so that their global norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_`; returns the norm before clipping.
pub fn clip_global_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let norm = global_norm(module, grads);
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        struct Scale<'a> {
            grads: &'a mut GradientsParams,
            scale: f64,
        }
        impl ModuleVisitor for Scale<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if let Some(g) = self.grads.remove::<D>(param.id) {
                    self.grads.register(param.id, g * self.scale);
                }
            }
        }
        module.visit(&mut Scale { grads, scale });
    }
    norm
}
