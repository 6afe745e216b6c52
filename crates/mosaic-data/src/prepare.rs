//! `mosaic prepare`: a text corpus -> `train.bin`, `val.bin` (token ids, little-endian u16 when
//! the vocabulary fits, else u32) and `meta.json`, in one directory, as nanoGPT's `prepare.py`;
//! with a holdout, stories of the corpus set aside as a selection part (`val.bin`) and a test
//! part (`test.bin`).
//! Every file is written under a temporary name and renamed when complete, `meta.json` last
//! ([`crate::files`]): a failed run leaves what was there before. An existing prepared
//! directory is replaced only when asked (`force`), and then whole: the new one is written
//! beside it and swapped in by renames.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::atomic::{Staged, replace_dir};
use crate::corpus::{Corpus, HeldOut};
use crate::error::DataError;
use crate::files::{META_FILE, Meta, TEST_FILE, TRAIN_FILE, TokenWidth, VAL_FILE, token_bytes};
use crate::fingerprint::sha256_hex;
use crate::tokenizer::{
    BPE_FILE, BpeTokenizer, CHAR_FILE, CharTokenizer, Gpt2Tokenizer, Tokenizer, TokenizerKind,
};

/// BPE vocabulary size when none is given.
pub const DEFAULT_BPE_VOCAB: usize = 4096;

#[derive(Debug, Clone)]
pub struct PrepareOptions {
    pub tokenizer: TokenizerKind,
    pub input: PathBuf,
    /// A separate validation corpus; without it, the last 10 % of `input`.
    pub valid: Option<PathBuf>,
    /// BPE vocabulary size (BPE only).
    pub vocab_size: Option<usize>,
    pub out: PathBuf,
    /// Replace `out` when it holds prepared data already; without it that is an error.
    pub force: bool,
    /// Set aside 2 of every `holdout` stories of `input` before training
    /// ([`Corpus::hold_out`]): a selection part (the validation split) and a test part.
    pub holdout: Option<usize>,
}

/// The files a prepared directory may hold; replacing one with other files in it is refused.
const PREPARED_FILES: [&str; 6] = [
    TRAIN_FILE, VAL_FILE, TEST_FILE, META_FILE, BPE_FILE, CHAR_FILE,
];

/// Whether `opts.out` is to be replaced, or refused: it holds prepared data and `force` is not
/// set, or it holds files that are not prepared data (replacing it would delete them).
fn replaces_existing(opts: &PrepareOptions) -> Result<bool, DataError> {
    if !opts.out.join(META_FILE).exists() {
        return Ok(false);
    }
    if !opts.force {
        return Err(DataError::Exists {
            path: opts.out.clone(),
        });
    }
    let entries = std::fs::read_dir(&opts.out).map_err(|error| DataError::Read {
        path: opts.out.clone(),
        error,
    })?;
    let others: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !PREPARED_FILES.contains(&n.as_str()) && !n.starts_with('.'))
        .collect();
    if !others.is_empty() {
        return Err(DataError::Invalid(format!(
            "{}: holds files that are not prepared data ({}); replacing the directory would \
             delete them: move them out first, or prepare into another directory",
            opts.out.display(),
            others.join(", ")
        )));
    }
    Ok(true)
}

/// Prepares the data directory; `progress(done, total)` is called with bytes of text encoded.
pub fn prepare(
    opts: &PrepareOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Meta, DataError> {
    let replace = replaces_existing(opts)?;
    if opts.vocab_size.is_some() && opts.tokenizer != TokenizerKind::Bpe {
        return Err(DataError::Invalid(
            "a vocabulary size applies to the bpe tokenizer only (its vocabulary is trained)"
                .into(),
        ));
    }
    let bytes = std::fs::read(&opts.input).map_err(|error| DataError::Read {
        path: opts.input.clone(),
        error,
    })?;
    let source_sha256 = sha256_hex(&bytes);
    let corpus = Corpus::from_bytes(&bytes, &opts.input)?;
    drop(bytes);
    let (parts, several) = split(corpus, opts)?;
    let tokenizer = train_tokenizer(opts, &parts, several)?;
    let width = TokenWidth::for_vocab(tokenizer.vocab_size())?;
    let separator = several.then(|| tokenizer.end_of_text()).flatten();

    let all = [&parts.train, &parts.selection, &parts.test];
    let total = all.iter().map(|c| c.num_bytes()).sum();
    let done = AtomicUsize::new(0);
    let report = |n: usize| progress(done.fetch_add(n, Ordering::Relaxed) + n, total);
    let mut ids = Vec::new();
    for corpus in all {
        ids.push(encode_corpus(
            tokenizer.as_ref(),
            corpus,
            separator,
            &report,
        )?);
    }
    let file_name = |p: &Path| {
        p.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    };
    let meta = Meta {
        tokenizer: opts.tokenizer,
        vocab_size: tokenizer.vocab_size(),
        dtype: width,
        train_tokens: ids[0].len() as u64,
        val_tokens: ids[1].len() as u64,
        end_of_text: separator,
        source: file_name(&opts.input),
        source_sha256,
        valid_source: opts.valid.as_deref().map(file_name),
        holdout: opts.holdout,
        test_tokens: opts.holdout.map(|_| ids[2].len() as u64),
    };
    let files = Prepared {
        meta: &meta,
        train: &token_bytes(&ids[0], width),
        val: &token_bytes(&ids[1], width),
        test: opts.holdout.map(|_| token_bytes(&ids[2], width)),
        tokenizer: tokenizer.as_ref(),
    };
    match replace {
        false => files.write(&opts.out)?,
        true => replace_dir(&opts.out, |dir| files.write(dir))?,
    }
    Ok(meta)
}

/// The corpus split into training, validation (or selection) and test stories (none without
/// a holdout), and whether stories are to be separated: they end with the end-of-text id when
/// there are several, and one long text has none.
fn split(corpus: Corpus, opts: &PrepareOptions) -> Result<(HeldOut, bool), DataError> {
    let none = || Corpus { stories: vec![] };
    let parts = match (&opts.valid, opts.holdout) {
        (Some(_), Some(_)) => {
            return Err(DataError::Invalid(
                "a holdout takes its selection and test parts from the corpus: give no separate \
                 validation corpus with it"
                    .into(),
            ));
        }
        (None, Some(period)) => corpus.hold_out(period)?,
        (Some(path), None) => HeldOut {
            train: corpus,
            selection: Corpus::read(path)?,
            test: none(),
        },
        (None, None) => {
            let (train, selection) = corpus.split_validation();
            HeldOut {
                train,
                selection,
                test: none(),
            }
        }
    };
    let several = match (&opts.valid, opts.holdout) {
        (None, None) => parts.train.stories.len() + parts.selection.stories.len() > 2,
        (Some(_), _) => parts.train.stories.len() > 1 || parts.selection.stories.len() > 1,
        (None, Some(_)) => true,
    };
    Ok((parts, several))
}

fn train_tokenizer(
    opts: &PrepareOptions,
    parts: &HeldOut,
    several: bool,
) -> Result<Box<dyn Tokenizer>, DataError> {
    Ok(match opts.tokenizer {
        TokenizerKind::Char => {
            // The vocabulary covers every part, as nanoGPT's: held-out text must encode.
            let mut all = parts.train.clone();
            for held in [&parts.selection, &parts.test] {
                all.stories.extend(held.stories.iter().cloned());
            }
            Box::new(CharTokenizer::from_corpus(&all, several))
        }
        TokenizerKind::Bpe => Box::new(BpeTokenizer::train(
            &parts.train,
            opts.vocab_size.unwrap_or(DEFAULT_BPE_VOCAB),
        )?),
        TokenizerKind::Gpt2 => Box::new(Gpt2Tokenizer::new()?),
    })
}

/// What a prepared directory holds.
struct Prepared<'a> {
    meta: &'a Meta,
    train: &'a [u8],
    val: &'a [u8],
    test: Option<Vec<u8>>,
    tokenizer: &'a dyn Tokenizer,
}

impl Prepared<'_> {
    /// Writes the files into `dir` (created if needed), `meta.json` renamed into place last.
    fn write(&self, dir: &Path) -> Result<(), DataError> {
        std::fs::create_dir_all(dir).map_err(|error| DataError::Write {
            path: dir.to_path_buf(),
            error,
        })?;
        let mut staged = Staged::default();
        staged.write(&dir.join(TRAIN_FILE), self.train)?;
        staged.write(&dir.join(VAL_FILE), self.val)?;
        if let Some(test) = &self.test {
            staged.write(&dir.join(TEST_FILE), test)?;
        }
        let json =
            serde_json::to_vec_pretty(self.meta).map_err(|e| DataError::Invalid(e.to_string()))?;
        staged.write(&dir.join(META_FILE), &json)?;
        self.tokenizer.save(dir)?;
        staged.commit()
    }
}

/// The prepared data `opts` describes: prepared now if `opts.out` holds none, or what is
/// there when it was prepared from the same inputs (corpus and validation files by name and
/// hash, tokenizer, vocabulary). Data prepared from other inputs is an error, never used or
/// replaced. The flag says whether it was prepared now.
pub fn prepare_once(
    opts: &PrepareOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(Meta, bool), DataError> {
    if !opts.out.join(META_FILE).is_file() {
        return Ok((prepare(opts, progress)?, true));
    }
    let meta = Meta::read(&opts.out)?;
    match differences(opts, &meta)? {
        None => Ok((meta, false)),
        Some(differs) => Err(DataError::Invalid(format!(
            "{}: prepared from other inputs than asked for ({differs}); remove it (checkpoints \
             keep their own tokenizer) or prepare into another directory",
            opts.out.display()
        ))),
    }
}

/// What differs between the inputs `opts` names and those `meta` was prepared from, if
/// anything.
fn differences(opts: &PrepareOptions, meta: &Meta) -> Result<Option<String>, DataError> {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let bytes = std::fs::read(&opts.input).map_err(|error| DataError::Read {
        path: opts.input.clone(),
        error,
    })?;
    let vocab = match opts.tokenizer {
        TokenizerKind::Bpe => Some(opts.vocab_size.unwrap_or(DEFAULT_BPE_VOCAB)),
        _ => None,
    };
    let mut differs = Vec::new();
    if meta.tokenizer != opts.tokenizer {
        differs.push(format!(
            "tokenizer {} there, {} asked for",
            meta.tokenizer, opts.tokenizer
        ));
    }
    if vocab.is_some_and(|v| v != meta.vocab_size) {
        differs.push(format!("vocabulary {} there", meta.vocab_size));
    }
    if Some(&meta.source) != name(&opts.input).as_ref() || meta.source_sha256 != sha256_hex(&bytes)
    {
        differs.push(format!("corpus {} there", meta.source));
    }
    if meta.valid_source != opts.valid.as_deref().and_then(name) {
        differs.push("another validation corpus".into());
    }
    if meta.holdout != opts.holdout {
        differs.push(match meta.holdout {
            Some(p) => format!("2 of every {p} stories held out there"),
            None => "no stories held out there".into(),
        });
    }
    Ok((!differs.is_empty()).then(|| differs.join(", ")))
}

/// Encodes every story (in parallel, over the machine's cores), each followed by `separator`.
pub fn encode_corpus(
    tokenizer: &dyn Tokenizer,
    corpus: &Corpus,
    separator: Option<u32>,
    report: &(dyn Fn(usize) + Sync),
) -> Result<Vec<u32>, DataError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = corpus.stories.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<u32>, DataError>> = std::thread::scope(|s| {
        let handles: Vec<_> = corpus
            .stories
            .chunks(per_thread)
            .map(|stories| {
                s.spawn(move || {
                    let mut ids = Vec::new();
                    for story in stories {
                        ids.extend(tokenizer.encode(story)?);
                        ids.extend(separator);
                        report(story.len());
                    }
                    Ok(ids)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("an encoding thread panicked"))
            .collect()
    });
    let mut ids = Vec::new();
    for part in parts {
        ids.extend(part?);
    }
    Ok(ids)
}
