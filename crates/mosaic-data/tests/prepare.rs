//! `prepare`: corpora to token files, their metadata, the samplers over them, and bad input.

mod common;

use std::path::{Path, PathBuf};

use common::{corpus_path, scratch};
use mosaic_data::files::TokenWidth;
use mosaic_data::prepare::encode_corpus;
use mosaic_data::{
    Corpus, DataError, Meta, PrepareOptions, RandomWindows, SequentialWindows, Split, TokenFile,
    TokenizerKind, load_tokenizer, prepare,
};

fn options(tokenizer: TokenizerKind, input: PathBuf, out: &Path) -> PrepareOptions {
    PrepareOptions {
        tokenizer,
        input,
        valid: None,
        vocab_size: None,
        out: out.to_path_buf(),
        force: false,
        holdout: None,
    }
}

fn tokens(file: &TokenFile) -> Vec<u32> {
    let mut out = Vec::new();
    file.read(0, file.len(), &mut out);
    out
}

/// tiny-shakespeare prepared with `tokenizer` into `out`.
fn shakespeare(tokenizer: TokenizerKind, out: &Path) -> Meta {
    let input = corpus_path("tinyshakespeare.txt");
    prepare(&options(tokenizer, input, out), &|_, _| {}).unwrap()
}

/// nanoGPT's shakespeare_char: 1,003,854 train and 111,540 validation characters.
#[test]
fn shakespeare_char_matches_nanogpt() {
    let out = scratch("char");
    let meta = shakespeare(TokenizerKind::Char, &out);
    assert_eq!(
        (meta.vocab_size, meta.train_tokens, meta.val_tokens),
        (65, 1_003_854, 111_540)
    );
    assert_eq!(meta.dtype, TokenWidth::U16);
    assert_eq!(meta.end_of_text, None);
    assert_eq!(meta.source, "tinyshakespeare.txt");
    assert_eq!(meta.source_sha256.len(), 64);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("meta.json")).unwrap()).unwrap();
    for key in [
        "tokenizer",
        "vocab_size",
        "train_tokens",
        "val_tokens",
        "source",
        "source_sha256",
    ] {
        assert!(json.get(key).is_some(), "meta.json lacks {key}");
    }
    assert_eq!(
        std::fs::metadata(out.join("train.bin")).unwrap().len(),
        2 * 1_003_854
    );

    // The files hold exactly what the saved tokenizer gives for the text.
    let text = std::fs::read_to_string(corpus_path("tinyshakespeare.txt")).unwrap();
    let tokenizer = load_tokenizer(&out, TokenizerKind::Char).unwrap();
    let val = TokenFile::open(&out, Split::Val).unwrap();
    let cut = text.char_indices().nth(1_003_854).unwrap().0;
    assert_eq!(tokens(&val), tokenizer.encode(&text[cut..]).unwrap());
}

/// nanoGPT's shakespeare (GPT-2 BPE): 301,966 train and 36,059 validation tokens.
#[test]
fn shakespeare_gpt2_matches_nanogpt() {
    let out = scratch("gpt2");
    let meta = shakespeare(TokenizerKind::Gpt2, &out);
    assert_eq!((meta.train_tokens, meta.val_tokens), (301_966, 36_059));
    assert_eq!(meta.vocab_size, 50257);
    assert_eq!(meta.dtype, TokenWidth::U16);
}

/// Stories end with the end-of-text id; the token count is the tokenizer's, story by story.
#[test]
fn stories_are_separated_and_counted() {
    let dir = scratch("stories");
    let input = dir.join("stories.txt");
    let stories = [
        "Tom had a red ball.",
        "Mia liked the sea.\nShe swam.",
        "The end.",
    ];
    std::fs::write(
        &input,
        stories.join("\n<|endoftext|>\n") + "\n<|endoftext|>\n",
    )
    .unwrap();
    let valid = dir.join("valid.jsonl");
    std::fs::write(
        &valid,
        "\"A cat sat.\"\n{\"story\": \"A dog ran.\", \"id\": 7}\n\n",
    )
    .unwrap();
    let out = dir.join("out");
    let mut opts = options(TokenizerKind::Gpt2, input, &out);
    opts.valid = Some(valid);
    let meta = prepare(&opts, &|_, _| {}).unwrap();
    assert_eq!(meta.end_of_text, Some(50256));
    assert_eq!(meta.valid_source.as_deref(), Some("valid.jsonl"));

    let tokenizer = load_tokenizer(&out, TokenizerKind::Gpt2).unwrap();
    let expected: Vec<u32> = stories
        .iter()
        .flat_map(|s| {
            let mut ids = tokenizer.encode(s).unwrap();
            ids.push(50256);
            ids
        })
        .collect();
    assert_eq!(
        tokens(&TokenFile::open(&out, Split::Train).unwrap()),
        expected
    );
    let val = tokens(&TokenFile::open(&out, Split::Val).unwrap());
    assert_eq!(val.iter().filter(|&&t| t == 50256).count(), 2);
    assert_eq!(
        tokenizer.decode(&val).unwrap(),
        "A cat sat.<|endoftext|>A dog ran.<|endoftext|>"
    );
}

#[test]
fn split_takes_the_last_tenth() {
    // Ten stories of ten characters: the last one is the validation split.
    let text: Vec<String> = (0..10).map(|i| format!("story {i:03}")).collect();
    let corpus = Corpus::from_separated_text(&text.join("\n<|endoftext|>\n"));
    assert_eq!(corpus.stories.len(), 10);
    let (train, val) = corpus.split_validation();
    assert_eq!(train.stories.len(), 9);
    assert_eq!(val.stories, vec!["story 009"]);
    // One text: the last 10 % of its characters.
    let (train, val) = Corpus::from_separated_text(&"é".repeat(95)).split_validation();
    assert_eq!((train.num_chars(), val.num_chars()), (85, 10));
}

#[test]
fn random_windows_are_deterministic_and_in_bounds() {
    let out = scratch("sampler");
    prepare(
        &options(
            TokenizerKind::Char,
            corpus_path("tinyshakespeare.txt"),
            &out,
        ),
        &|_, _| {},
    )
    .unwrap();
    let val = TokenFile::open(&out, Split::Val).unwrap();
    let all = tokens(&val);
    let batches = |seed| {
        let mut s = RandomWindows::new(val.clone(), 64, 12, seed).unwrap();
        (0..20).map(|_| s.next_batch()).collect::<Vec<_>>()
    };
    let (a, b, c) = (batches(1), batches(1), batches(2));
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Pinned: the first window of seed 1 starts where it always has, on every machine.
    let first = &a[0].inputs[..64];
    let start = (0..all.len() - 64)
        .find(|&i| &all[i..i + 64] == first)
        .unwrap();
    assert_eq!(start, 61_242, "the seeded sampler changed");
    for batch in &a {
        assert_eq!(batch.inputs.len(), 12 * 64);
        for row in 0..12 {
            let x = &batch.inputs[row * 64..(row + 1) * 64];
            let y = &batch.targets[row * 64..(row + 1) * 64];
            assert_eq!(&x[1..], &y[..63], "targets are the inputs shifted by one");
        }
    }
    // A file exactly one window long: every window is the whole file, never past its end.
    let tiny = scratch("tiny");
    std::fs::write(tiny.join("t.txt"), "abcdefghij").unwrap();
    prepare(
        &options(TokenizerKind::Char, tiny.join("t.txt"), &tiny),
        &|_, _| {},
    )
    .unwrap();
    let train = TokenFile::open(&tiny, Split::Train).unwrap();
    assert_eq!(train.len(), 9);
    let mut s = RandomWindows::new(train.clone(), 8, 4, 0).unwrap();
    assert_eq!(s.next_batch().inputs, [0, 1, 2, 3, 4, 5, 6, 7].repeat(4));
    assert!(RandomWindows::new(train, 9, 1, 0).is_err());
}

#[test]
fn sequential_windows_cover_the_split_once() {
    let out = scratch("seq");
    std::fs::write(out.join("t.txt"), "abcdefghijklmnopqrstuvwxyz".repeat(10)).unwrap();
    prepare(
        &options(TokenizerKind::Char, out.join("t.txt"), &out),
        &|_, _| {},
    )
    .unwrap();
    let train = TokenFile::open(&out, Split::Train).unwrap(); // 234 tokens
    let windows = SequentialWindows::new(train.clone(), 10, 7).unwrap();
    assert_eq!(windows.num_windows(), 23);
    let batches: Vec<_> = windows.collect();
    assert_eq!(
        batches.iter().map(|b| b.batch_size).collect::<Vec<_>>(),
        vec![7, 7, 7, 2]
    );
    let inputs: Vec<u32> = batches.iter().flat_map(|b| b.inputs.clone()).collect();
    assert_eq!(inputs, tokens(&train)[..230]);
}

#[test]
fn encode_corpus_appends_the_separator() {
    let tokenizer = load_tokenizer(Path::new("."), TokenizerKind::Gpt2).unwrap();
    let corpus = Corpus::from_separated_text("Hello world\n<|endoftext|>\nHello world\n");
    assert_eq!(
        encode_corpus(tokenizer.as_ref(), &corpus, Some(50256), &|_| {}).unwrap(),
        vec![15496, 995, 50256, 15496, 995, 50256]
    );
}

// Bad input: a clear error naming the file, and nothing half-written left behind.

/// Preparing `input` into `out` fails, names `input`'s file, and writes nothing.
fn refused(tokenizer: TokenizerKind, input: PathBuf, out: &Path) -> DataError {
    let err = prepare(&options(tokenizer, input.clone(), out), &|_, _| {}).unwrap_err();
    let name = input.file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.to_string().contains(&name), "{err}");
    if let Ok(entries) = std::fs::read_dir(out) {
        let names: Vec<_> = entries.map(|e| e.unwrap().file_name()).collect();
        assert!(names.is_empty(), "left behind: {names:?}");
    }
    err
}

#[test]
fn missing_corpus() {
    let out = scratch("missing");
    let err = refused(TokenizerKind::Char, out.join("nope.txt"), &out);
    assert!(matches!(err, DataError::Read { .. }), "{err}");
}

#[test]
fn empty_corpus() {
    let dir = scratch("empty");
    std::fs::write(dir.join("e.txt"), "\n  \n").unwrap();
    let err = refused(TokenizerKind::Gpt2, dir.join("e.txt"), &dir.join("out"));
    assert!(matches!(err, DataError::Empty { .. }), "{err}");
}

#[test]
fn non_utf8_corpus() {
    let dir = scratch("latin1");
    std::fs::write(dir.join("l.txt"), b"caf\xe9 au lait").unwrap();
    let err = refused(TokenizerKind::Char, dir.join("l.txt"), &dir.join("out"));
    assert!(matches!(err, DataError::NotUtf8 { offset: 3, .. }), "{err}");
}

#[test]
fn malformed_json_line() {
    let dir = scratch("jsonl");
    std::fs::write(dir.join("s.jsonl"), "\"ok\"\n{\"title\": \"no text\"}\n").unwrap();
    let err = Corpus::read(&dir.join("s.jsonl")).unwrap_err();
    assert!(matches!(err, DataError::JsonLine { line: 2, .. }), "{err}");
}

#[test]
fn token_file_that_disagrees_with_its_metadata() {
    let out = scratch("mismatch");
    std::fs::write(out.join("t.txt"), "hello there, general kenobi").unwrap();
    prepare(
        &options(TokenizerKind::Char, out.join("t.txt"), &out),
        &|_, _| {},
    )
    .unwrap();
    let bin = out.join("train.bin");
    let bytes = std::fs::read(&bin).unwrap();
    std::fs::write(&bin, &bytes[..bytes.len() - 2]).unwrap();
    let err = TokenFile::open(&out, Split::Train).err().unwrap();
    assert!(matches!(err, DataError::SizeMismatch { .. }), "{err}");
    assert!(err.to_string().contains("train.bin"), "{err}");
}

#[test]
fn vocabulary_larger_than_the_token_format() {
    let out = scratch("vocab");
    std::fs::write(out.join("t.txt"), "hello there").unwrap();
    let mut meta = prepare(
        &options(TokenizerKind::Char, out.join("t.txt"), &out),
        &|_, _| {},
    )
    .unwrap();
    meta.vocab_size = 70_000; // u16 ids cannot hold it
    std::fs::write(out.join("meta.json"), serde_json::to_string(&meta).unwrap()).unwrap();
    let err = Meta::read(&out).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::VocabTooLarge {
                vocab_size: 70_000,
                bits: 16
            }
        ),
        "{err}"
    );
    assert!(TokenWidth::for_vocab(70_000).unwrap() == TokenWidth::U32);
}

/// A failed run keeps the previous, complete output.
#[test]
fn failed_run_keeps_the_previous_output() {
    let dir = scratch("keep");
    let out = dir.join("data");
    std::fs::write(dir.join("t.txt"), "first corpus").unwrap();
    let before = prepare(
        &options(TokenizerKind::Char, dir.join("t.txt"), &out),
        &|_, _| {},
    )
    .unwrap();
    std::fs::write(dir.join("bad.txt"), b"\xff\xfe").unwrap();
    let mut opts = options(TokenizerKind::Char, dir.join("bad.txt"), &out);
    opts.force = true;
    assert!(prepare(&opts, &|_, _| {}).is_err());
    assert_eq!(Meta::read(&out).unwrap(), before);
    for d in [&dir, &out] {
        let names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }
}

/// Prepared data is replaced only when asked, then whole: a BPE directory prepared again by
/// character keeps no `tokenizer.json`; a directory holding other files is never replaced.
#[test]
fn existing_data_is_replaced_only_with_force_and_whole() {
    let dir = scratch("force");
    let out = dir.join("data");
    let input = corpus_path("tinyshakespeare.txt");
    let mut bpe = options(TokenizerKind::Bpe, input.clone(), &out);
    bpe.vocab_size = Some(300);
    let first = prepare(&bpe, &|_, _| {}).unwrap();
    let train = std::fs::read(out.join("train.bin")).unwrap();

    let mut chars = options(TokenizerKind::Char, input, &out);
    let err = prepare(&chars, &|_, _| {}).unwrap_err();
    assert!(matches!(err, DataError::Exists { .. }), "{err}");
    assert_eq!(Meta::read(&out).unwrap(), first, "refused, untouched");
    assert_eq!(std::fs::read(out.join("train.bin")).unwrap(), train);

    chars.force = true;
    let second = prepare(&chars, &|_, _| {}).unwrap();
    assert_eq!(
        (second.tokenizer, second.vocab_size),
        (TokenizerKind::Char, 65)
    );
    assert_eq!(Meta::read(&out).unwrap(), second);
    assert!(
        !out.join("tokenizer.json").exists(),
        "the old tokenizer is gone"
    );
    assert!(out.join("vocab.json").is_file());
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["data"], "no staging directory left");

    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let err = prepare(&chars, &|_, _| {}).unwrap_err();
    assert!(err.to_string().contains("notes.txt"), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
}

/// The tokenizer hash follows the tokenizer, not the token files; the data hash follows both.
#[test]
fn fingerprints_follow_what_they_name() {
    let dir = scratch("fingerprint");
    let (a, b) = (dir.join("a"), dir.join("b"));
    std::fs::write(dir.join("one.txt"), "abc abc abc abc abc").unwrap();
    std::fs::write(dir.join("two.txt"), "cba cba cba cba cba").unwrap();
    std::fs::write(dir.join("three.txt"), "abcd abcd abcd").unwrap();
    prepare(
        &options(TokenizerKind::Char, dir.join("one.txt"), &a),
        &|_, _| {},
    )
    .unwrap();
    prepare(
        &options(TokenizerKind::Char, dir.join("two.txt"), &b),
        &|_, _| {},
    )
    .unwrap();
    let tok = |d: &Path| mosaic_data::tokenizer_sha256(d, TokenizerKind::Char).unwrap();
    let data = |d: &Path| mosaic_data::data_sha256(d).unwrap();
    assert_eq!(tok(&a), tok(&b), "same characters, same tokenizer");
    assert_ne!(data(&a), data(&b), "other ids");
    let mut again = options(TokenizerKind::Char, dir.join("three.txt"), &b);
    again.force = true;
    prepare(&again, &|_, _| {}).unwrap();
    assert_ne!(tok(&a), tok(&b), "a fourth character");
    assert_eq!(data(&a), mosaic_data::data_sha256(&a).unwrap());
}

/// `prepare_once` prepares what is missing, takes what was prepared from the same inputs, and
/// refuses data prepared from others.
#[test]
fn prepare_once_takes_only_data_of_the_same_inputs() {
    let dir = scratch("once");
    let out = dir.join("data");
    std::fs::write(dir.join("a.txt"), "some text to prepare, twice").unwrap();
    std::fs::write(dir.join("b.txt"), "other text").unwrap();
    let opts = options(TokenizerKind::Char, dir.join("a.txt"), &out);
    let (first, now) = mosaic_data::prepare_once(&opts, &|_, _| {}).unwrap();
    assert!(now);
    let (again, now) = mosaic_data::prepare_once(&opts, &|_, _| {}).unwrap();
    assert!(!now);
    assert_eq!(again, first);
    let other = options(TokenizerKind::Char, dir.join("b.txt"), &out);
    let err = mosaic_data::prepare_once(&other, &|_, _| {}).unwrap_err();
    assert!(err.to_string().contains("corpus a.txt there"), "{err}");
    let mut bpe = options(TokenizerKind::Bpe, dir.join("a.txt"), &out);
    bpe.vocab_size = Some(300);
    let err = mosaic_data::prepare_once(&bpe, &|_, _| {}).unwrap_err();
    assert!(err.to_string().contains("tokenizer char there"), "{err}");
    assert_eq!(Meta::read(&out).unwrap(), first, "refused, untouched");
}

/// Stories held out by position: of every 4, the first to selection and the second to test;
/// the test part decodes to exactly its stories, each ended by the separator; the fingerprint
/// covers it; a holdout is not combined with a validation file, and data held out otherwise
/// is refused by `prepare_once`.
#[test]
fn held_out_stories_form_the_selection_and_test_parts() {
    let dir = scratch("holdout");
    let stories: Vec<String> = (0..10).map(|i| format!("story {i} of ten")).collect();
    let input = dir.join("stories.txt");
    std::fs::write(&input, stories.join("\n<|endoftext|>\n")).unwrap();
    let parts = Corpus::read(&input).unwrap().hold_out(4).unwrap();
    let pick = |idx: &[usize]| idx.iter().map(|&i| stories[i].clone()).collect::<Vec<_>>();
    assert_eq!(parts.selection.stories, pick(&[0, 4, 8]));
    assert_eq!(parts.test.stories, pick(&[1, 5, 9]));
    assert_eq!(parts.train.stories, pick(&[2, 3, 6, 7]));

    let out = dir.join("data");
    let opts = PrepareOptions {
        holdout: Some(4),
        ..options(TokenizerKind::Char, input.clone(), &out)
    };
    let meta = prepare(&opts, &|_, _| {}).unwrap();
    assert_eq!(meta.holdout, Some(4));
    let eot = meta.end_of_text.expect("several stories are separated");
    let tokenizer = load_tokenizer(&out, meta.tokenizer).unwrap();
    let test = tokens(&TokenFile::open(&out, Split::Test).unwrap());
    assert_eq!(Some(test.len() as u64), meta.test_tokens);
    let decoded: Vec<String> = test
        .split(|&t| t == eot)
        .filter(|s| !s.is_empty())
        .map(|s| tokenizer.decode(s).unwrap())
        .collect();
    assert_eq!(decoded, pick(&[1, 5, 9]));
    let selection = tokens(&TokenFile::open(&out, Split::Val).unwrap());
    assert_eq!(selection.len() as u64, meta.val_tokens);
    assert_eq!(selection.iter().filter(|&&t| t == eot).count(), 3);

    // The test file is part of what the data's hash names.
    let before = mosaic_data::data_sha256(&out).unwrap();
    let mut bytes = std::fs::read(out.join("test.bin")).unwrap();
    bytes[0] ^= 1;
    std::fs::write(out.join("test.bin"), bytes).unwrap();
    assert_ne!(mosaic_data::data_sha256(&out).unwrap(), before);

    // No test part without a holdout; a holdout with a validation file; another period.
    let plain = dir.join("plain");
    prepare(
        &options(TokenizerKind::Char, input.clone(), &plain),
        &|_, _| {},
    )
    .unwrap();
    let err = TokenFile::open(&plain, Split::Test)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no test part"), "{err}");
    let both = PrepareOptions {
        valid: Some(input.clone()),
        holdout: Some(4),
        ..options(TokenizerKind::Char, input.clone(), &dir.join("both"))
    };
    let err = prepare(&both, &|_, _| {}).unwrap_err().to_string();
    assert!(err.contains("no separate validation corpus"), "{err}");
    let other = PrepareOptions {
        holdout: Some(5),
        ..opts.clone()
    };
    let err = mosaic_data::prepare_once(&other, &|_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("2 of every 4 stories held out there"), "{err}");
    let err = Corpus::read(&input).unwrap().hold_out(11).unwrap_err();
    assert!(
        err.to_string().contains("at least that many stories"),
        "{err}"
    );
}
