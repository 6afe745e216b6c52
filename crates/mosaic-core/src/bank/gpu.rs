//! The bank retrieval on WGPU and CUDA: the retrieval's CubeCL kernels
//! ([`crate::causal`]'s) reading every slot of the query's head's bank.

use burn_cubecl::CubeBackend;
use burn_cubecl::tensor::CubeTensor;

use super::{BankBackend, BankGradBackend};
use crate::band::Band;
use crate::causal::gpu::{Reads, backward, forward};

/// Scale 1 (the keys carry their own), every slot (the band is not read).
const BANK: Reads = Reads {
    scale: 1.0,
    band: Band::CAUSAL,
    bank: true,
};

impl BankBackend for CubeBackend {
    fn bank_retrieval(query: CubeTensor, keys: CubeTensor, values: CubeTensor) -> CubeTensor {
        forward([query, keys, values], BANK).0
    }
}

impl BankGradBackend for CubeBackend {
    fn bank_forward(
        query: CubeTensor,
        keys: CubeTensor,
        values: CubeTensor,
    ) -> (CubeTensor, CubeTensor) {
        forward([query, keys, values], BANK)
    }

    fn bank_backward(
        query: CubeTensor,
        keys: CubeTensor,
        values: CubeTensor,
        output: CubeTensor,
        lse: CubeTensor,
        grad: CubeTensor,
    ) -> (CubeTensor, CubeTensor, CubeTensor) {
        backward([query, keys, values, output, lse, grad], BANK)
    }
}
