//! `mosaic sample`: text from a checkpoint, printed as it is generated.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use mosaic_data::Tokenizer;
use mosaic_models::{DEVICE_ENV, device_from_name};
use mosaic_train::Checkpoint;
use mosaic_train::sample::{SampleOptions, generate_streaming};

use crate::path;

#[derive(clap::Args)]
pub struct SampleArgs {
    /// A run's out_dir, or its checkpoint directory.
    #[arg(long, value_parser = path)]
    checkpoint: PathBuf,
    /// The text to continue (at least one token, at most the model's block_size).
    #[arg(long)]
    prompt: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 200)]
    max_new_tokens: usize,
    /// Divides the logits before sampling: lower is more conservative; 0 is greedy decoding
    /// (always the most likely token).
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    /// Sample among the K most likely tokens only; 0: among all.
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Seed of the sampling generator: the same seed gives the same text.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// As `mosaic train --device`.
    #[arg(long, env = DEVICE_ENV, default_value = "flex")]
    device: String,
    /// Recompute the whole window for every token instead of keeping each layer's memory
    /// (the same tokens, slower; for checking the cache).
    #[arg(long)]
    no_cache: bool,
}

/// `mosaic sample`: the prompt, then each token as it is drawn.
pub fn sample(args: &SampleArgs) -> Result<()> {
    let checkpoint = Checkpoint::open(&args.checkpoint, &device_from_name(&args.device)?)?;
    let (_, tokenizer) = checkpoint.tokenizer()?;
    let ids = tokenizer.encode(&args.prompt).context("the prompt")?;
    let opts = SampleOptions {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_k: Some(args.top_k).filter(|&k| k > 0),
        seed: args.seed,
        cache: !args.no_cache,
    };
    let mut stdout = std::io::stdout();
    let mut text = Streamed::new(tokenizer.as_ref(), &ids);
    write!(stdout, "{}", text.printed)?;
    let mut failed = None;
    generate_streaming(checkpoint.model(), &ids, &opts, &mut |id| {
        if failed.is_none()
            && let Err(e) = text.push(id).and_then(|new| Ok(write!(stdout, "{new}")?))
        {
            failed = Some(e);
        }
        let _ = stdout.flush();
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    writeln!(stdout, "{}", text.rest()?)?;
    Ok(())
}

/// Text decoded as ids arrive: a byte-level token can end inside a character, so what is
/// printed is the decoded text up to its last complete character.
struct Streamed<'a> {
    tokenizer: &'a dyn Tokenizer,
    ids: Vec<u32>,
    printed: String,
}

impl<'a> Streamed<'a> {
    fn new(tokenizer: &'a dyn Tokenizer, prompt: &[u32]) -> Self {
        let printed = tokenizer.decode(prompt).unwrap_or_default();
        Self {
            tokenizer,
            ids: prompt.to_vec(),
            printed: printed.trim_end_matches('\u{FFFD}').to_string(),
        }
    }

    /// The text `id` completes, held back while it ends in an unfinished character.
    fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let text = self.tokenizer.decode(&self.ids)?;
        let stable = text.trim_end_matches('\u{FFFD}');
        Ok(self.advance(stable))
    }

    /// What is left once generation ends, unfinished characters included.
    fn rest(&mut self) -> Result<String> {
        let text = self.tokenizer.decode(&self.ids)?;
        Ok(self.advance(&text))
    }

    fn advance(&mut self, text: &str) -> String {
        match text.strip_prefix(self.printed.as_str()) {
            Some(new) => {
                let new = new.to_string();
                self.printed.push_str(&new);
                new
            }
            // Decoding is not always prefix-stable (a merge across the boundary): print nothing
            // until it is again.
            None => String::new(),
        }
    }
}
