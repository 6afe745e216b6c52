//! A text corpus as a list of stories (documents).
//!
//! Two layouts load through [`Corpus::read`]: plain text, where a line that is exactly
//! `<|endoftext|>` ends a story (TinyStories, BabiStories' text form; a file with no such line
//! is one story), and JSON lines (`.jsonl`), one story per line, either a JSON string or an
//! object with a string field `text` or `story`.

use std::path::Path;

use crate::END_OF_TEXT;
use crate::error::DataError;

#[derive(Debug, Clone, PartialEq)]
pub struct Corpus {
    pub stories: Vec<String>,
}

impl Corpus {
    pub fn read(path: &Path) -> Result<Corpus, DataError> {
        let bytes = std::fs::read(path).map_err(|error| DataError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Corpus::from_bytes(&bytes, path)
    }

    /// Parses the bytes of the file `path` (whose extension picks the layout).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Corpus, DataError> {
        let text = std::str::from_utf8(bytes).map_err(|e| DataError::NotUtf8 {
            path: path.to_path_buf(),
            offset: e.valid_up_to(),
        })?;
        let corpus = match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl") => Corpus::from_json_lines(text, path)?,
            _ => Corpus::from_separated_text(text),
        };
        if corpus.stories.is_empty() {
            return Err(DataError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(corpus)
    }

    /// Stories separated by lines that are exactly `<|endoftext|>`; the newline before a
    /// separator belongs to neither story. Blank stories are dropped. Text without separators
    /// is one story, kept exactly.
    pub fn from_separated_text(text: &str) -> Corpus {
        if !text
            .lines()
            .any(|l| l.trim_end_matches('\r') == END_OF_TEXT)
        {
            let stories = match text.trim().is_empty() {
                true => vec![],
                false => vec![text.to_string()],
            };
            return Corpus { stories };
        }
        let mut stories = Vec::new();
        let mut current = String::new();
        for line in text.split_inclusive('\n') {
            if line.trim_end_matches(['\n', '\r']) == END_OF_TEXT {
                push_story(&mut stories, std::mem::take(&mut current));
            } else {
                current.push_str(line);
            }
        }
        push_story(&mut stories, current);
        Corpus { stories }
    }

    /// One story per line, each a JSON string or an object with a string field `text` or
    /// `story`. Blank lines are skipped.
    pub fn from_json_lines(text: &str, path: &Path) -> Result<Corpus, DataError> {
        let mut stories = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let err = |reason: String| DataError::JsonLine {
                path: path.to_path_buf(),
                line: i + 1,
                reason,
            };
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(|e| err(format!("not JSON: {e}")))?;
            let story = match &value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Object(map) => ["text", "story"]
                    .iter()
                    .find_map(|k| map.get(*k).and_then(|v| v.as_str()))
                    .ok_or_else(
                        || err("an object without a string field `text` or `story`".into()),
                    )?
                    .to_string(),
                _ => return Err(err("expected a JSON string or object".into())),
            };
            push_story(&mut stories, story);
        }
        Ok(Corpus { stories })
    }

    pub fn num_chars(&self) -> usize {
        self.stories.iter().map(|s| s.chars().count()).sum()
    }

    pub fn num_bytes(&self) -> usize {
        self.stories.iter().map(String::len).sum()
    }

    /// Splits off the validation part, nanoGPT's last 10 %: whole stories from the end until
    /// they hold at least a tenth of the characters, or, for a single story, its last 10 % of
    /// characters.
    pub fn split_validation(mut self) -> (Corpus, Corpus) {
        let total = self.num_chars();
        let target = total.div_ceil(10);
        if self.stories.len() == 1 {
            let story = self.stories.pop().unwrap_or_default();
            let cut = story
                .char_indices()
                .nth(total - target)
                .map_or(story.len(), |(i, _)| i);
            let (train, val) = story.split_at(cut);
            return (
                Corpus {
                    stories: vec![train.to_string()],
                },
                Corpus {
                    stories: vec![val.to_string()],
                },
            );
        }
        let mut val_chars = 0;
        let mut cut = self.stories.len();
        while cut > 1 && val_chars < target {
            cut -= 1;
            val_chars += self.stories[cut].chars().count();
        }
        let val = self.stories.split_off(cut);
        (self, Corpus { stories: val })
    }
}

/// Stories of a corpus set aside before training: a part to choose settings on and a part
/// to report on, disjoint from the training stories and from each other.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldOut {
    pub train: Corpus,
    pub selection: Corpus,
    pub test: Corpus,
}

impl Corpus {
    /// Of every `period` consecutive stories (numbered from 0 in file order), story
    /// `i = 0 (mod period)` goes to the selection part and `i = 1 (mod period)` to the test
    /// part; the others train. Deterministic, and the same for every run prepared from the file.
    pub fn hold_out(self, period: usize) -> Result<HeldOut, DataError> {
        if period < 3 || self.stories.len() < period {
            return Err(DataError::Invalid(format!(
                "holding out 2 of every {period} stories needs a period of 3 or more and at \
                 least that many stories (the corpus has {})",
                self.stories.len()
            )));
        }
        let mut parts = HeldOut {
            train: Corpus { stories: vec![] },
            selection: Corpus { stories: vec![] },
            test: Corpus { stories: vec![] },
        };
        for (i, story) in self.stories.into_iter().enumerate() {
            match i % period {
                0 => parts.selection.stories.push(story),
                1 => parts.test.stories.push(story),
                _ => parts.train.stories.push(story),
            }
        }
        Ok(parts)
    }
}

fn push_story(stories: &mut Vec<String>, story: String) {
    let story = story.trim_end_matches(['\n', '\r']);
    if !story.trim().is_empty() {
        stories.push(story.to_string());
    }
}
