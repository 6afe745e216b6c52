//! Training and evaluation of the models of `mosaic-models`, and the `mosaic` command.
//!
//! For now the command has one subcommand, `prepare` (from `mosaic-data`); training arrives
//! next (see `docs/architecture.md`).

pub mod progress;
