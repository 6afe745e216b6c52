//! Data for Memory Mosaics experiments: text corpora, tokenizers, token files and samplers,
//! and the synthetic tasks of the paper (three moons, RegBench).
//!
//! Empty for now: the data pipeline is the next piece of work (see `docs/architecture.md`).
