//! What produced a run's result: hashes of its fully resolved config, of its data (tokenizer
//! and token files) and of how it is measured, and the commit. A result is reused only while
//! the three hashes are those of the run as it stands; the commit is recorded, not compared
//! (a change of code that moves the numbers is for a person to rerun with `--fresh`).

use std::path::Path;

use anyhow::{Context, Result};
use mosaic_data::sha256_hex;
use mosaic_train::RunConfig;
use serde::{Deserialize, Serialize};

use super::spec::EvalSpec;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    /// The run's configuration after its overrides and `--steps`, without the two paths
    /// (where the data and the checkpoints lie changes no number).
    pub config_sha256: String,
    /// [`mosaic_data::data_sha256`] of the prepared directory.
    pub data_sha256: String,
    /// The experiment's `[eval]` table and the out-of-distribution text it names.
    pub eval_sha256: String,
    /// `git rev-parse HEAD`, with `-dirty` when the working tree had changes.
    pub commit: String,
}

impl Inputs {
    pub fn new(config: &RunConfig, data_sha256: &str, eval_sha256: &str, commit: &str) -> Self {
        let mut bare = config.clone();
        bare.data.dir = Default::default();
        bare.train.out_dir = Default::default();
        let json = serde_json::to_string(&bare).expect("a config serializes");
        Self {
            config_sha256: sha256_hex(json.as_bytes()),
            data_sha256: data_sha256.into(),
            eval_sha256: eval_sha256.into(),
            commit: commit.into(),
        }
    }

    /// Whether a checkpoint trained with `old` can be continued: same config, same data.
    pub fn trains_as(&self, old: &Inputs) -> bool {
        self.config_sha256 == old.config_sha256 && self.data_sha256 == old.data_sha256
    }

    /// Why a result made with `old` does not stand for these inputs; `None` when it does.
    pub fn changed_since(&self, old: Option<&Inputs>) -> Option<String> {
        let Some(old) = old else {
            return Some("its result records no inputs (made before results did)".into());
        };
        let mut changed = Vec::new();
        if self.config_sha256 != old.config_sha256 {
            changed.push("its config");
        }
        if self.data_sha256 != old.data_sha256 {
            changed.push("its data");
        }
        if self.eval_sha256 != old.eval_sha256 {
            changed.push("the experiment's [eval] table or text");
        }
        match changed.is_empty() {
            true => None,
            false => Some(format!(
                "{} changed since its result (made at commit {})",
                changed.join(" and "),
                old.commit
            )),
        }
    }
}

/// The hash of how each run is measured: the `[eval]` table and the text of its `ood` file.
pub fn eval_sha256(eval: &EvalSpec) -> Result<String> {
    let mut bytes = serde_json::to_vec(eval)?;
    if let Some(ood) = &eval.ood {
        bytes
            .extend(std::fs::read(ood).with_context(|| format!("{}: cannot read", ood.display()))?);
    }
    Ok(sha256_hex(&bytes))
}

/// The commit of the working tree at `dir`, `-dirty` when it has changes; `unknown` outside
/// a git checkout. The experiments' own outputs (`docs/results`) do not count as changes: runs
/// finished earlier lie there uncommitted while later ones train.
pub fn commit(dir: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match (
        git(&["rev-parse", "HEAD"]),
        git(&["status", "--porcelain", "--", ".", ":(exclude)docs/results"]),
    ) {
        (Some(head), Some(status)) if !status.is_empty() => format!("{head}-dirty"),
        (Some(head), _) => head,
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::commit;
    use std::path::Path;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .current_dir(dir)
            .status()
            .expect("git runs")
            .success();
        assert!(ok, "git {args:?}");
    }

    #[test]
    fn results_written_beside_the_code_do_not_make_it_dirty() {
        let dir = std::env::temp_dir().join(format!("mosaic-commit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("docs/results")).unwrap();
        git(&dir, &["init", "-q"]);
        std::fs::write(dir.join("code.rs"), "fn main() {}").unwrap();
        git(&dir, &["add", "code.rs"]);
        git(&dir, &["commit", "-q", "-m", "code"]);
        let head = commit(&dir);
        assert_eq!(head.len(), 40, "{head}");

        std::fs::write(dir.join("docs/results/run.json"), "{}").unwrap();
        assert_eq!(commit(&dir), head, "a result alone is not a change");
        std::fs::write(dir.join("code.rs"), "fn main() { todo!() }").unwrap();
        assert_eq!(commit(&dir), format!("{head}-dirty"), "edited code is");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
