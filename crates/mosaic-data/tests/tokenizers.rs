//! The three tokenizers: round trips, known ids, vocabularies, saving and reloading.

mod common;

use common::{corpus_path, scratch};
use mosaic_data::tokenizer::{BpeTokenizer, CharTokenizer, Gpt2Tokenizer};
use mosaic_data::{Corpus, DataError, Tokenizer, TokenizerKind, load_tokenizer};

const SAMPLE: &str =
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n  All: Speak, speak!";

#[test]
fn gpt2_gives_the_known_ids() {
    let gpt2 = Gpt2Tokenizer::new().unwrap();
    assert_eq!(gpt2.encode("Hello world").unwrap(), vec![15496, 995]);
    assert_eq!(gpt2.vocab_size(), 50257);
    assert_eq!(gpt2.end_of_text(), Some(50256));
    assert_eq!(gpt2.decode(&[50256]).unwrap(), "<|endoftext|>");
    let text = "Once upon a time, Lily saw a café — and smiled. 🙂";
    assert_eq!(gpt2.decode(&gpt2.encode(text).unwrap()).unwrap(), text);
    assert!(gpt2.decode(&[50257]).is_err());
}

#[test]
fn char_vocabulary_of_tiny_shakespeare_has_65_symbols() {
    let corpus = Corpus::read(&corpus_path("tinyshakespeare.txt")).unwrap();
    let chars = CharTokenizer::from_corpus(&corpus, false);
    assert_eq!(chars.vocab_size(), 65);
    assert_eq!(chars.end_of_text(), None);
    let ids = chars.encode(SAMPLE).unwrap();
    assert_eq!(ids.len(), SAMPLE.chars().count());
    assert_eq!(chars.decode(&ids).unwrap(), SAMPLE);
    // Sorted: '\n' is id 0, ' ' id 1, 'a' after 'Z'.
    assert_eq!(chars.encode("\n a").unwrap(), vec![0, 1, 39]);
    match chars.encode("naïve") {
        Err(DataError::UnknownChars(c)) => assert_eq!(c, "ï"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn char_tokenizer_saves_and_reloads() {
    let corpus = Corpus::from_separated_text("ab\n<|endoftext|>\nba c\n");
    let chars = CharTokenizer::from_corpus(&corpus, true);
    assert_eq!(chars.vocab_size(), 5); // ' ', 'a', 'b', 'c' and the separator
    assert_eq!(chars.end_of_text(), Some(4));
    let dir = scratch("char");
    chars.save(&dir).unwrap();
    let back = load_tokenizer(&dir, TokenizerKind::Char).unwrap();
    assert_eq!(back.encode("cab").unwrap(), vec![3, 1, 2]);
    assert_eq!(back.decode(&[1, 4]).unwrap(), "a<|endoftext|>");
}

#[test]
fn bpe_trains_round_trips_and_reloads() {
    let corpus = Corpus::read(&corpus_path("tinyshakespeare.txt")).unwrap();
    let bpe = BpeTokenizer::train(&corpus, 600).unwrap();
    assert_eq!(bpe.vocab_size(), 600);
    assert_eq!(bpe.end_of_text(), Some(0));
    let ids = bpe.encode(SAMPLE).unwrap();
    assert!(
        ids.len() < SAMPLE.len() * 2 / 3,
        "merges should shorten the text: {} ids",
        ids.len()
    );
    assert_eq!(bpe.decode(&ids).unwrap(), SAMPLE);
    // Bytes never seen in training still encode (byte-level alphabet).
    let unseen = "日本語 ✓";
    assert_eq!(bpe.decode(&bpe.encode(unseen).unwrap()).unwrap(), unseen);

    let dir = scratch("bpe");
    bpe.save(&dir).unwrap();
    let back = load_tokenizer(&dir, TokenizerKind::Bpe).unwrap();
    assert_eq!(back.encode(SAMPLE).unwrap(), ids);
}

#[test]
fn bpe_vocabulary_below_the_byte_alphabet_is_refused() {
    let corpus = Corpus::from_separated_text("some text");
    assert!(matches!(
        BpeTokenizer::train(&corpus, 100),
        Err(DataError::Invalid(_))
    ));
}

#[test]
fn tokenizer_file_that_does_not_parse_is_named() {
    let dir = scratch("badtok");
    std::fs::write(dir.join("tokenizer.json"), "{\"model\": 3").unwrap();
    match load_tokenizer(&dir, TokenizerKind::Bpe) {
        Err(e @ DataError::TokenizerFile { .. }) => {
            assert!(e.to_string().contains("tokenizer.json"), "{e}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a broken tokenizer.json loaded"),
    }
    std::fs::write(dir.join("vocab.json"), "[1, 2").unwrap();
    assert!(matches!(
        load_tokenizer(&dir, TokenizerKind::Char),
        Err(DataError::TokenizerFile { .. })
    ));
}
