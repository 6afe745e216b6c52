//! AdamW as the paper and nanoGPT use it: weight decay on tensors of two or more dimensions
//! (weights, embeddings, the persistent banks), none on per-head scalars and LayerNorm gains;
//! and clipping by the global gradient norm (Burn clips tensor by tensor, PyTorch's
//! `clip_grad_norm_` over all of them at once).

use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;

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

/// An AdamW recipe. Weight decay applies to the decay group only ([`DecayGroups`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Whether the moments are corrected for their bias toward zero (PyTorch, Burn). MLX's
    /// AdamW, which the three-moons reference uses, does not correct them; see
    /// [`AdamW::lr_factor`].
    pub bias_correction: bool,
}

impl AdamW {
    /// PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, with bias correction.
    pub fn new(weight_decay: f64) -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            bias_correction: true,
        }
    }

    /// The optimiser for `module`'s parameters.
    pub fn init<M: Module>(&self, module: &M) -> ModuleOptimizer {
        let base = AdamWConfig::new()
            .with_beta_1(self.beta1 as f32)
            .with_beta_2(self.beta2 as f32)
            .with_epsilon(self.eps as f32);
        let no_decay = DecayGroups::of(module)
            .no_decay
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        base.clone()
            .with_weight_decay(self.weight_decay as f32)
            .init()
            .with_group(
                ParamGroup::from_ids(no_decay),
                base.with_weight_decay(0.0).build(),
                None,
            )
    }

    /// What the learning rate of step `t` (1-based) is multiplied by. Burn's AdamW corrects
    /// the moments; without correction the update is larger by `(1 - beta1^t) / sqrt(1 -
    /// beta2^t)` (up to where epsilon enters): 3x to 6x over the first hundred steps with
    /// MLX's betas, still 1.6x at step 500.
    pub fn lr_factor(&self, t: usize) -> f64 {
        if self.bias_correction {
            return 1.0;
        }
        let t = t as i32;
        (1.0 - self.beta1.powi(t)) / (1.0 - self.beta2.powi(t)).sqrt()
    }
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
