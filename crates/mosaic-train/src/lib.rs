//! Training and evaluation of the models of `mosaic-models`: optimiser groups, schedules,
//! checkpoints, metrics, and the `mosaic` command.
//!
//! Empty for now: training is built on top of the data pipeline (see `docs/architecture.md`).
