//! `mosaic explain`: the page's numbers are the model's (read back from the page and checked
//! against the forward pass, for v1, v2 and GPT), the page runs in a browser and draws its
//! heat map, and bad input gets a message before anything runs.

mod common;

use std::path::Path;
use std::process::Command;

use burn::tensor::{Device, Tensor};
use common::{assert_refused, config_file, mosaic, scratch, shakespeare, train};
use mosaic_data::load_tokenizer;
use mosaic_models::{GptConfig, LanguageModel, MemoryMosaicConfig, cross_entropy_per_token};
use mosaic_train::explain::{Explanation, ModelInfo, embedded, explain, render};

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec_as::<f32>().unwrap()
}

fn models(device: &Device, vocab: usize) -> Vec<LanguageModel> {
    device.seed(31);
    let v2 = MemoryMosaicConfig {
        short_window: 6,
        long_offset: [4, 8],
        ..MemoryMosaicConfig::v2(vocab, 2, 4, 16, 32)
    };
    vec![
        LanguageModel::MemoryMosaic(MemoryMosaicConfig::new(vocab, 2, 2, 16, 32).init(device)),
        LanguageModel::MemoryMosaic(v2.init(device)),
        LanguageModel::Gpt(
            GptConfig {
                vocab_size: vocab,
                n_layer: 2,
                n_head: 2,
                n_embd: 16,
                block_size: 32,
                dropout: 0.0,
            }
            .init(device),
        ),
    ]
}

/// The page's memories and banks against the model's own reading: every row is the weights
/// the model computed (to the page's five decimals) and sums to one, or to zero where the
/// position has nothing to read; the losses are the per-token cross-entropies.
fn check(page: &Explanation, model: &LanguageModel, ids: &[u32]) {
    let input = model.tokens(ids, 1).unwrap();
    let reading = model.read(input.clone()).unwrap();
    let t = ids.len();
    let losses = floats(cross_entropy_per_token(
        reading.forward.logits.clone().narrow(1, 0, t - 1),
        input.narrow(1, 1, t - 1),
    ));
    assert_eq!(page.loss[0], None);
    for (got, want) in page.loss[1..].iter().zip(&losses) {
        assert!((got.unwrap() - want).abs() < 1e-5, "loss {got:?} vs {want}");
    }
    for (layer, read) in page.layers.iter().zip(&reading.layers) {
        for (memory, m) in layer.memories.iter().zip(&read.memories) {
            let w = floats(m.weights.clone());
            for (h, head) in memory.heads.iter().enumerate() {
                for (pos, row) in head.rows.iter().enumerate() {
                    let sum: f32 = row.w.iter().sum();
                    assert!(sum.abs() < 1e-3 || (sum - 1.0).abs() < 1e-3, "sum {sum}");
                    let full = &w[(h * t + pos) * t..][..t];
                    for (i, &v) in full.iter().enumerate() {
                        let listed = i.checked_sub(row.from).and_then(|k| row.w.get(k));
                        let got = listed.copied().unwrap_or(0.0);
                        assert!((got - v).abs() < 1e-5, "{} head {h} row {pos}", memory.name);
                    }
                }
                assert_eq!(head.gate.is_some(), m.gates.is_some());
            }
        }
        if let (Some(bank), Some(b)) = (&layer.bank, &read.bank) {
            let w = floats(b.clone());
            let slots = bank.slots;
            for (h, head) in bank.heads.iter().enumerate() {
                for (pos, top) in head.iter().enumerate() {
                    let row = &w[(h * t + pos) * slots..][..slots];
                    for (&s, &v) in top.slot.iter().zip(&top.w) {
                        assert!((row[s] - v).abs() < 1e-5);
                    }
                    let total = top.w.iter().sum::<f32>() + top.rest;
                    assert!((total - 1.0).abs() < 1e-3, "bank row sums to {total}");
                }
            }
        }
    }
}

#[test]
fn the_page_holds_the_models_own_numbers() {
    let dir = scratch("explain-numbers");
    let data = shakespeare(&dir);
    let meta = mosaic_data::Meta::read(&data).unwrap();
    let tokenizer = load_tokenizer(&data, meta.tokenizer).unwrap();
    let ids = tokenizer.encode("ROMEO:\nWhat say you, my lord?").unwrap();
    let device = Device::flex();
    for model in models(&device, meta.vocab_size) {
        let info = ModelInfo {
            kind: model.kind().to_string(),
            params: 0,
            step: 0,
            config: serde_json::Value::Null,
        };
        let page = render(&explain(&model, &ids, tokenizer.as_ref(), info).unwrap());
        let back = embedded(&page).expect("the page carries its data");
        assert_eq!(back.tokens.concat(), "ROMEO:\nWhat say you, my lord?");
        check(&back, &model, &ids);
    }
    // Longer than the block: the first 32 tokens, and the page says so.
    let long: Vec<u32> = ids.iter().cycle().take(40).copied().collect();
    let model = &models(&device, meta.vocab_size)[0];
    let info = ModelInfo {
        kind: "memory_mosaic".into(),
        params: 0,
        step: 0,
        config: serde_json::Value::Null,
    };
    let page = explain(model, &long, tokenizer.as_ref(), info).unwrap();
    assert_eq!(page.tokens.len(), 32);
    assert!(page.windowed.unwrap().contains("first 32"));
}

/// Headless Chromium (Debian's `chromium`), as a user's browser would open the page.
fn chromium(args: &[&str]) -> std::process::Output {
    let browser = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("this test opens the page in Chromium: install it (Debian: apt install chromium)");
    Command::new(browser)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args(["--window-size=1100,1400", "--virtual-time-budget=3000"])
        .args(args)
        .output()
        .unwrap()
}

/// The heat map's rectangle `x,y,w,h` in page pixels, as the page's script records it.
fn heatmap_rect(dom: &str) -> [usize; 4] {
    let at = dom
        .find("data-heatmap=\"")
        .expect("the script drew the heat map")
        + 14;
    let text = &dom[at..at + dom[at..].find('"').unwrap()];
    let v: Vec<usize> = text.split(',').map(|s| s.parse().unwrap()).collect();
    [v[0], v[1], v[2], v[3]]
}

/// The share of the pixels inside `rect` of the PNG at `path` that are not white.
fn inked(path: &Path, [x, y, w, h]: [usize; 4]) -> f64 {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let mut ink = 0;
    for row in y..y + h {
        for col in x..x + w {
            let p = &buf[(row * info.width as usize + col) * channels..][..3];
            ink += usize::from(p.iter().any(|&c| c < 230));
        }
    }
    ink as f64 / (w * h) as f64
}

#[test]
fn the_page_opens_in_a_browser_and_draws_its_heat_map() {
    let dir = scratch("explain-page");
    let data = shakespeare(&dir);
    let config = config_file(&dir, &data, "mosaic", "");
    let trained = train(&config, &["train.max_iters=3"], &[]);
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    let (run, page) = (dir.join("run"), dir.join("page.html"));
    let args = |more: &[&str]| {
        let mut a = vec!["explain", "--checkpoint", run.to_str().unwrap()];
        a.extend(more);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let out = mosaic(
        &args(&[
            "--prompt",
            "ROMEO: and JULIET",
            "--out",
            page.to_str().unwrap(),
        ])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let url = format!("file://{}", page.display());
    let dom = String::from_utf8_lossy(&chromium(&["--dump-dom", &url]).stdout).into_owned();
    assert!(
        dom.contains("data-ready=\"yes\""),
        "the script did not finish: {dom:.400}"
    );
    assert!(!dom.contains("data-error"), "the script failed: {dom:.400}");
    let shot = dir.join("page.png");
    let taken = chromium(&[&format!("--screenshot={}", shot.display()), &url]);
    assert!(shot.is_file(), "{}", String::from_utf8_lossy(&taken.stderr));
    let rect = heatmap_rect(&dom);
    let share = inked(&shot, rect);
    assert!(
        share > 0.3,
        "the heat map is blank: {share:.2} of its pixels inked"
    );

    // A v2 checkpoint explains with its gates and adaptive bandwidth.
    let v2 = dir.join("v2");
    std::fs::create_dir_all(&v2).unwrap();
    let config = config_file(&v2, &data, "mosaic", "");
    let sets = [
        "train.max_iters=2",
        "model.gated_keys=true",
        "model.adaptive_bandwidth=true",
    ];
    assert!(train(&config, &sets, &[]).status.success());
    let v2_page = v2.join("page.html");
    let out = mosaic(&[
        "explain",
        "--checkpoint",
        v2.join("run").to_str().unwrap(),
        "--prompt",
        "ROMEO: and JULIET",
        "--out",
        v2_page.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = format!("file://{}", v2_page.display());
    let dom = String::from_utf8_lossy(&chromium(&["--dump-dom", &url]).stdout).into_owned();
    assert!(dom.contains("data-ready=\"yes\"") && !dom.contains("data-error"));
    for column in ["gate g (mean)", "decay lambda (mean)", "beta0", "alpha"] {
        assert!(dom.contains(column), "`{column}` missing from the v2 page");
    }

    // Bad input: unknown characters, an unwritable page, a missing file.
    let refused = |more: &[&str], expected: &str| {
        let a = args(more);
        assert_refused(
            &mosaic(&a.iter().map(String::as_str).collect::<Vec<_>>()),
            expected,
        );
    };
    let page_s = page.to_str().unwrap();
    refused(
        &["--prompt", "naïve €", "--out", page_s],
        "cannot be read with this checkpoint",
    );
    refused(
        &["--prompt", "ROMEO", "--out", "/nonexistent/dir/page.html"],
        "cannot write",
    );
    refused(
        &["--text", "/nonexistent/text.txt", "--out", page_s],
        "cannot read the text",
    );
}
