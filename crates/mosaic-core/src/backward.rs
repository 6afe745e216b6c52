//! What the fused operations' backward passes share: handing each input its gradient.

/// `register!(B, ops.parents, [grads...], gradients)`: registers each gradient for the parent
/// in the same place, for the parents that are tracked (`Gradients::register` adds, so a tensor
/// that was two inputs at once gets the sum). A macro because the parents' node type is not
/// nameable outside Burn's autodiff crate.
macro_rules! register {
    ($b:ty, $parents:expr, [$($grad:expr),+ $(,)?], $grads:expr) => {
        for (parent, grad) in $parents.into_iter().zip([$($grad),+]) {
            if let Some(node) = parent {
                $grads.register::<$b>(node.id, grad);
            }
        }
    };
}

pub(crate) use register;
