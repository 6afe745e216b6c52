//! An experiment file, `experiments/<name>.toml`: what `cargo xtask experiment <name>` runs.
//!
//! ```toml
//! about = "one line for --list"
//! cpu_time = "measured on the project's 2-core machines"
//! kind = "runs"          # or "recall" (a probe of another experiment's models, see
//!                        # [`RecallSpec`]), "three-moons", "regbench" (defined in code)
//!
//! [data]                 # prepared once (`mosaic prepare`), skipped when already there
//! dir = "data/tinystories-bpe4096"
//! tokenizer = "bpe"
//! input = "datasets/text/tinystories-train.txt"
//! valid = "datasets/text/tinystories-valid.txt"
//! vocab_size = 4096
//! holdout = 10           # optional, in place of `valid`: 2 of every 10 training stories set
//!                        # aside, one for choosing learning rates (selection), one for the
//!                        # reported numbers (test)
//!
//! [eval]                 # measured on each finished run
//! ood = "datasets/text/wikitext2-test.raw.txt"
//! prompt = "Once upon a time"
//! extrapolate = [2, 4]   # also evaluate windows of 2 and 4 training blocks (where the
//!                        # model can read them: GPT's learned positions stop at one)
//!
//! seeds = [1337, 1, 2]   # optional: every run at each seed (`train.seed`); the report gives
//!                        # mean, standard deviation and each seed's value, and tests claims
//!                        # on the paired differences across seeds
//! chosen_seeds = [1, 2]  # optional: once every run has trained, the best run of each model
//!                        # in each group (by the selection loss), and the run a claim with
//!                        # `against_choice = "ood"` compares with, also train at these seeds
//!
//! [[runs]]               # each a `mosaic train` config with overrides
//! name = "mosaic-depth1-lr1e-3"
//! group = "depth 1"      # the report compares the models within a group
//! label = "v1"           # optional: compare runs of one model kind as variants by label
//! config = "experiments/configs/stories-mosaic.toml"
//! set = ["model.n_layer=1", "train.learning_rate=1e-3"]
//! seeds = [1337]         # optional: this run's seeds, in place of the experiment's
//!
//! [[claims]]             # the paper's claims, checked on the best run of each model
//! text = "at depth 1 the Memory Mosaic is ahead"
//! group = "depth 1"
//! metric = "val"         # val, ood, val_late, ood_late (positions 64 on), growth and
//!                        # ood_growth (the loss from position 64 on minus before position 16:
//!                        # as a gap, how much the lead grows along the window), beyond_2x and
//!                        # beyond_4x (past the training block in the longer windows, read
//!                        # whole), beyond_2x_sliding and beyond_4x_sliding (the same tokens
//!                        # through a one-block sliding window), rise_4x (beyond_4x minus
//!                        # beyond_4x_sliding: what the whole window adds, same tokens)
//! ahead = 0.02           # holds when GPT's loss minus the Memory Mosaic's is at least this
//!                        # (and more than twice its standard error across seeds)
//! model = "memory_mosaic"  # optional: the run (model kind or label) expected ahead...
//! against = "gpt"        # ...and the one it is compared with
//! against_metric = "beyond_4x_sliding"  # optional: the metric read for `against`
//! against_choice = "ood" # optional: `against` at its best out-of-distribution rate, in
//!                        # place of its best selection (validation) rate
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mosaic_data::{Meta, TokenizerKind};
use mosaic_train::RunConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub about: String,
    pub cpu_time: String,
    pub kind: Kind,
    pub data: Option<DataSpec>,
    #[serde(default)]
    pub eval: EvalSpec,
    /// Every run at each of these seeds; absent: once, at its config's seed.
    #[serde(default)]
    pub seeds: Option<Vec<u64>>,
    /// The best run of each model in each group, and each run a claim compares with as the
    /// best out-of-distribution one, also at these seeds, after the others.
    #[serde(default)]
    pub chosen_seeds: Option<Vec<u64>>,
    #[serde(default)]
    pub runs: Vec<RunSpec>,
    #[serde(default)]
    pub claims: Vec<Claim>,
    pub recall: Option<RecallSpec>,
}

/// A `recall` experiment: the in-context recall probe ([`mosaic_train::recall`]) on the best
/// run of each model of each group of another `runs` experiment, from its checkpoints, on its
/// test part (or validation split).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecallSpec {
    /// The `runs` experiment whose models are probed.
    pub source: String,
    /// Window lengths, in training blocks.
    pub factors: Vec<usize>,
    /// Tokens in the repeated span.
    pub span: usize,
    /// Windows probed at most per length.
    pub windows: usize,
    #[serde(default)]
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Runs,
    Recall,
    ThreeMoons,
    Regbench,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    pub dir: PathBuf,
    pub tokenizer: TokenizerKind,
    pub input: PathBuf,
    pub valid: Option<PathBuf>,
    pub vocab_size: Option<usize>,
    /// Stories held out of `input`: selection and test parts ([`mosaic_data::Corpus::hold_out`]).
    pub holdout: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// An out-of-distribution text, measured per position as the validation split.
    pub ood: Option<PathBuf>,
    pub prompt: String,
    #[serde(default = "defaults::new_tokens")]
    pub max_new_tokens: usize,
    #[serde(default = "defaults::batch_size")]
    pub batch_size: usize,
    /// Window lengths, in training blocks, at which to evaluate length extrapolation.
    #[serde(default)]
    pub extrapolate: Vec<usize>,
}

impl Default for EvalSpec {
    fn default() -> Self {
        Self {
            ood: None,
            prompt: "Once upon a time".into(),
            max_new_tokens: defaults::new_tokens(),
            batch_size: defaults::batch_size(),
            extrapolate: Vec::new(),
        }
    }
}

mod defaults {
    pub fn new_tokens() -> usize {
        120
    }
    pub fn batch_size() -> usize {
        16
    }
    pub fn model() -> String {
        mosaic_models::ModelKind::MemoryMosaic.to_string()
    }
    pub fn against() -> String {
        mosaic_models::ModelKind::Gpt.to_string()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    pub name: String,
    #[serde(default)]
    pub group: String,
    /// The run's name in the report's comparisons, in place of its model kind: variants of
    /// one model side by side.
    #[serde(default)]
    pub label: Option<String>,
    pub config: PathBuf,
    #[serde(default)]
    pub set: Vec<String>,
    /// This run's seeds, in place of the experiment's.
    #[serde(default)]
    pub seeds: Option<Vec<u64>>,
}

/// One training of a run: the run at one seed (`None`: its config's own seed).
#[derive(Debug, Clone, Copy)]
pub struct Instance<'a> {
    pub run: &'a RunSpec,
    pub seed: Option<u64>,
}

impl Instance<'_> {
    /// Its name in file names and progress lines: `<run>` at the config's own seed
    /// (`config_seed`), so that a run trained once keeps its result when seeds are added;
    /// `<run>.seed<seed>` at another.
    pub fn id(&self, config_seed: u64) -> String {
        match self.seed {
            Some(seed) if seed != config_seed => format!("{}.seed{seed}", self.run.name),
            _ => self.run.name.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Val,
    Ood,
    ValLate,
    OodLate,
    #[serde(rename = "beyond_2x")]
    Beyond2x,
    #[serde(rename = "beyond_4x")]
    Beyond4x,
    /// How much the loss past the training block (windows of 4 blocks) is above the loss from
    /// position 64 on in windows of one block: how much a model loses reading past the length
    /// it trained on, compared with positions that also have plenty of context.
    #[serde(rename = "beyond_2x_sliding")]
    Beyond2xSliding,
    #[serde(rename = "beyond_4x_sliding")]
    Beyond4xSliding,
    /// The loss past the training block in windows of 4 blocks read whole, minus the same
    /// tokens read through a one-block sliding window: what reading the whole window adds
    /// (negative: it helps).
    #[serde(rename = "rise_4x")]
    Rise4x,
    /// The validation loss from position 64 on minus before position 16: as a gap between two
    /// models, how much a lead grows along the window.
    Growth,
    /// [`Metric::Growth`] on the out-of-distribution text.
    OodGrowth,
}

/// Which of `against`'s runs a claim compares with.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    /// Its best run by the selection (validation) loss, as everywhere in the report.
    #[default]
    Selection,
    /// Its best run by the out-of-distribution loss: the baseline at its strongest there.
    Ood,
}

impl Metric {
    /// The measure in words, `text` naming the evaluated text (`test` or `validation`).
    pub fn describe(self, text: &str) -> String {
        let sliding = "each token read through a one-block sliding window";
        let growth = "from position 64 on minus before position 16 (as a gap: how much the lead \
                      grows along the window)";
        match self {
            Self::Val => format!("{text} loss"),
            Self::Ood => "out-of-distribution loss".into(),
            Self::ValLate => format!("{text} loss from position 64 on"),
            Self::OodLate => "out-of-distribution loss from position 64 on".into(),
            Self::Beyond2x => {
                format!("{text} loss past the training block, in windows of 2 blocks")
            }
            Self::Beyond4x => {
                format!("{text} loss past the training block, in windows of 4 blocks")
            }
            Self::Beyond2xSliding => {
                format!("{text} loss past the training block in windows of 2 blocks, {sliding}")
            }
            Self::Beyond4xSliding => {
                format!("{text} loss past the training block in windows of 4 blocks, {sliding}")
            }
            Self::Rise4x => format!(
                "{text} loss past the training block in windows of 4 blocks read whole, minus \
                 the same tokens read through a one-block sliding window"
            ),
            Self::Growth => format!("{text} loss {growth}"),
            Self::OodGrowth => format!("out-of-distribution loss {growth}"),
        }
    }
}

/// One of the paper's claims, checked on the best run of each model of a group.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "ClaimFile")]
pub struct Claim {
    pub text: String,
    pub group: String,
    pub metric: Metric,
    pub test: Test,
    /// The run (model kind or label) expected ahead; the Memory Mosaic by default.
    pub model: String,
    /// The run it is compared with; GPT by default.
    pub against: String,
    /// The metric read for `against`; `metric` by default.
    pub against_metric: Metric,
    pub against_choice: Choice,
}

/// What makes a claim hold, of the gap: `against`'s value of the metric minus `model`'s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Test {
    /// The gap is at least this (`model` ahead by so much).
    Ahead(f64),
    /// The two differ by at most this, either way.
    Within(f64),
}

impl Test {
    pub fn holds(self, gap: f64) -> bool {
        match self {
            Self::Ahead(margin) => gap >= margin,
            Self::Within(margin) => gap.abs() <= margin,
        }
    }
}

/// A claim as the file writes it: one of `ahead` and `within`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimFile {
    text: String,
    group: String,
    metric: Metric,
    ahead: Option<f64>,
    within: Option<f64>,
    #[serde(default = "defaults::model")]
    model: String,
    #[serde(default = "defaults::against")]
    against: String,
    against_metric: Option<Metric>,
    #[serde(default)]
    against_choice: Choice,
}

impl TryFrom<ClaimFile> for Claim {
    type Error = String;

    fn try_from(c: ClaimFile) -> Result<Self, String> {
        let test = match (c.ahead, c.within) {
            (Some(a), None) => Test::Ahead(a),
            (None, Some(w)) => Test::Within(w),
            _ => {
                return Err(format!(
                    "claim `{}`: give one of `ahead` and `within`",
                    c.text
                ));
            }
        };
        Ok(Self {
            text: c.text,
            group: c.group,
            metric: c.metric,
            test,
            model: c.model,
            against: c.against,
            against_metric: c.against_metric.unwrap_or(c.metric),
            against_choice: c.against_choice,
        })
    }
}

impl Spec {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let spec: Spec = toml::from_str(&text)
            .with_context(|| format!("{}: not an experiment", path.display()))?;
        if spec.kind == Kind::Recall && spec.recall.is_none() {
            bail!("{}: a `recall` experiment needs [recall]", path.display());
        }
        if spec.kind == Kind::Runs && (spec.data.is_none() || spec.runs.is_empty()) {
            bail!(
                "{}: a `runs` experiment needs [data] and [[runs]]",
                path.display()
            );
        }
        let mut names: Vec<&str> = spec.runs.iter().map(|r| r.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            bail!("{}: two runs are named `{}`", path.display(), w[0]);
        }
        spec.check_claims()
            .with_context(|| path.display().to_string())?;
        let lists = [&spec.seeds, &spec.chosen_seeds]
            .into_iter()
            .chain(spec.runs.iter().map(|r| &r.seeds));
        for seeds in lists.flatten() {
            let mut sorted = seeds.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if seeds.is_empty() || sorted.len() < seeds.len() {
                bail!(
                    "{}: `seeds = {seeds:?}`: give one or more different seeds, or leave it out \
                     to train once at the config's seed",
                    path.display()
                );
            }
        }
        Ok(spec)
    }

    /// Each claim names a group that has runs, and runs in it by a label they carry or a
    /// model kind: a typo is found before hours of training, not in the report.
    fn check_claims(&self) -> Result<()> {
        let kinds = [
            mosaic_models::ModelKind::MemoryMosaic.as_str(),
            mosaic_models::ModelKind::Gpt.as_str(),
        ];
        for c in &self.claims {
            let runs: Vec<&RunSpec> = self.runs.iter().filter(|r| r.group == c.group).collect();
            if runs.is_empty() {
                bail!("claim `{}`: no run is in group `{}`", c.text, c.group);
            }
            for who in [&c.model, &c.against] {
                let known = kinds.contains(&who.as_str())
                    || runs
                        .iter()
                        .any(|r| r.label.as_deref() == Some(who.as_str()));
                if !known {
                    bail!(
                        "claim `{}`: no run of group `{}` is labelled `{who}` (and it is no \
                         model kind: {})",
                        c.text,
                        c.group,
                        kinds.join(", ")
                    );
                }
            }
        }
        Ok(())
    }

    /// Every training the experiment asks for: each run at each of its seeds, in file order.
    pub fn instances(&self) -> Vec<Instance<'_>> {
        let mut out = Vec::new();
        for run in &self.runs {
            match run.seeds.as_ref().or(self.seeds.as_ref()) {
                Some(seeds) => out.extend(seeds.iter().map(|&s| Instance { run, seed: Some(s) })),
                None => out.push(Instance { run, seed: None }),
            }
        }
        out
    }

    /// Every file the experiment names is there to read: found now, not after hours of runs.
    pub fn check_files(&self) -> Result<()> {
        let mut named: Vec<(&Path, &str)> = Vec::new();
        if let Some(data) = &self.data {
            named.push((&data.input, "[data] input"));
            named.extend(data.valid.as_deref().map(|v| (v, "[data] valid")));
        }
        named.extend(self.eval.ood.as_deref().map(|o| (o, "[eval] ood")));
        for run in &self.runs {
            named.push((&run.config, "a run's config"));
        }
        for (path, what) in named {
            std::fs::File::open(path)
                .with_context(|| format!("{}: cannot read ({what})", path.display()))?;
        }
        Ok(())
    }

    /// Run `run`'s configuration: its file with its overrides, then the experiment's data
    /// directory and `out_dir`; the vocabulary is the prepared data's.
    pub fn run_config(&self, run: &RunSpec, out_dir: &Path) -> Result<RunConfig> {
        self.run_config_with(run, out_dir, |dir| Meta::read(dir).map(|m| m.vocab_size))
    }

    /// An instance's name ([`Instance::id`]) and configuration (its run's, at its seed, with
    /// the `out_dir` of `checkpoints/<name>`).
    pub fn instance_config(
        &self,
        instance: Instance,
        checkpoints: &Path,
    ) -> Result<(String, RunConfig)> {
        let mut config = self.run_config(instance.run, checkpoints)?;
        let id = instance.id(config.train.seed);
        config.train.out_dir = checkpoints.join(&id);
        if let Some(seed) = instance.seed {
            config.train.seed = seed;
        }
        Ok((id, config))
    }

    /// [`Spec::run_config`] with the vocabulary from `vocab` (given the data directory).
    pub fn run_config_with<E: std::fmt::Display>(
        &self,
        run: &RunSpec,
        out_dir: &Path,
        vocab: impl Fn(&Path) -> Result<usize, E>,
    ) -> Result<RunConfig> {
        let data = self.data.as_ref().context("no [data] table")?;
        let mut sets = run.set.clone();
        sets.push(format!("data.dir={:?}", data.dir.display().to_string()));
        sets.push(format!("train.out_dir={:?}", out_dir.display().to_string()));
        RunConfig::load(&run.config, &sets, vocab).with_context(|| format!("run `{}`", run.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use mosaic_models::ModelConfig;

    /// Experiment files name their configs from the workspace root, as `cargo xtask` runs.
    fn at_workspace_root() {
        std::env::set_current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap();
    }

    /// Every experiment file parses, and each run's configuration loads, validates and (when
    /// small enough for a test) builds.
    #[test]
    fn experiment_files_parse_and_build_their_models() {
        at_workspace_root();
        let mut seen = 0;
        for entry in std::fs::read_dir("experiments").unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let spec = Spec::read(&path).unwrap();
            seen += 1;
            for run in &spec.runs {
                let vocab = match spec.data.as_ref().unwrap().tokenizer {
                    TokenizerKind::Char => 65,
                    TokenizerKind::Gpt2 => 50257,
                    TokenizerKind::Bpe => spec.data.as_ref().unwrap().vocab_size.unwrap(),
                };
                let config = spec
                    .run_config_with(run, Path::new("runs/test"), |_| Ok::<_, String>(vocab))
                    .unwrap();
                config.validate().unwrap();
                if config.model.num_params() < 5_000_000 {
                    let model = config.model.init(&burn::tensor::Device::flex());
                    assert_eq!(
                        model.num_params(),
                        config.model.num_params(),
                        "{}",
                        run.name
                    );
                }
            }
        }
        assert!(seen >= 6, "{seen} experiment files");
    }

    /// Within each group of stories-depth, the two models' sizes differ by less than 5 %.
    #[test]
    fn stories_depth_compares_models_of_equal_size() {
        at_workspace_root();
        let spec = Spec::read(Path::new("experiments/stories-depth.toml")).unwrap();
        for depth in ["depth 1", "depth 4", "depth 8"] {
            let sizes: Vec<(bool, usize)> = spec
                .runs
                .iter()
                .filter(|r| r.group == depth)
                .map(|r| {
                    let c = spec.run_config_with(r, Path::new("runs/t"), |_| Ok::<_, String>(4096));
                    let c = c.unwrap().model;
                    (matches!(c, ModelConfig::Gpt(_)), c.num_params())
                })
                .collect();
            let mm = sizes.iter().find(|s| !s.0).unwrap().1 as f64;
            let gpt = sizes.iter().find(|s| s.0).unwrap().1 as f64;
            assert!((gpt / mm - 1.0).abs() < 0.05, "{depth}: {gpt} vs {mm}");
        }
    }

    /// babistories is the paper's configuration: d 768, 12 heads, context 512, 12 d^2 weights
    /// per block (P-mem of 3.5 d), the GPT-2 vocabulary, batch 512 by accumulation.
    #[test]
    fn babistories_has_the_papers_models() {
        at_workspace_root();
        let spec = Spec::read(Path::new("experiments/babistories.toml")).unwrap();
        let mut depths = Vec::new();
        for run in &spec.runs {
            let c = spec
                .run_config_with(run, Path::new("runs/t"), |_| Ok::<_, String>(50257))
                .unwrap();
            let t = &c.train;
            assert_eq!(t.batch_size * t.gradient_accumulation_steps, 512);
            assert_eq!(
                (t.learning_rate, t.warmup_iters, t.max_iters),
                (5e-3, 2000, 80_000)
            );
            let (d, l) = (768, c.model.n_layer());
            let expected = match &c.model {
                ModelConfig::MemoryMosaic(m) => {
                    assert_eq!((m.n_head, m.block_size, m.pmem_size), (12, 512, 2688));
                    l * (12 * d * d + 2 * d + 7 * 12) + 50257 * d + d
                }
                ModelConfig::Gpt(g) => {
                    assert_eq!((g.n_head, g.block_size), (12, 512));
                    l * (12 * d * d + 2 * d) + (50257 + 512) * d + d
                }
            };
            assert_eq!(c.model.num_params(), expected, "{}", run.name);
            depths.push(l);
        }
        depths.dedup();
        assert_eq!(depths, [1, 8, 12, 18]);
    }
}
