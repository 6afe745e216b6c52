//! RegBench: automata, sequences, metrics and the n-gram predictors.

use mosaic_data::regbench::metrics::truth;
use mosaic_data::regbench::sequence::to_text;
use mosaic_data::regbench::{Automaton, LETTERS, NGram, SEP, Score, VOCAB, example, score};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Every string up to `depth` letters (over all 18) is accepted by both or by neither. Strings
/// rejected by both are not extended: every extension is rejected by both too.
fn same_language(a: &Automaton, b: &Automaton, depth: usize) -> bool {
    fn walk(
        a: &Automaton,
        b: &Automaton,
        sa: usize,
        sb: usize,
        depth: usize,
        word: &mut Vec<usize>,
    ) -> bool {
        if depth == 0 {
            return true;
        }
        (0..LETTERS).all(|l| match (a.next[sa][l], b.next[sb][l]) {
            (None, None) => true,
            (Some(ta), Some(tb)) => {
                word.push(l);
                let ok = a.accepts(word)
                    && b.accepts(word)
                    && walk(a, b, ta as usize, tb as usize, depth - 1, word);
                word.pop();
                ok
            }
            _ => false,
        })
    }
    walk(a, b, 0, 0, depth, &mut Vec::new())
}

#[test]
fn minimised_automata_accept_the_same_strings() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut states = 0;
    for _ in 0..300 {
        let raw = Automaton::random_unminimised(&mut rng);
        let min = raw.minimised();
        assert!(min.num_states() <= raw.num_states());
        assert!(same_language(&raw, &min, 6), "{raw:?}\n{min:?}");
        assert_eq!(min.minimised(), min, "minimising twice changes nothing");
        states += min.num_states();
    }
    let mean = states as f64 / 300.0;
    assert!(
        (5.5..8.5).contains(&mean),
        "about 7 states on average, got {mean}"
    );
}

#[test]
fn minimisation_merges_equivalent_states() {
    // 0 -a-> 1, 0 -b-> 2, and 1, 2 both -c-> 3 with 3 a dead end: 1 and 2 are one state.
    let mut next = vec![[None; LETTERS]; 4];
    next[0][0] = Some(1);
    next[0][1] = Some(2);
    next[1][2] = Some(3);
    next[2][2] = Some(3);
    let min = Automaton { next }.minimised();
    assert_eq!(min.num_states(), 3);
    assert!(min.accepts(&[1, 2]) && !min.accepts(&[2]));
}

#[test]
fn sequences_follow_their_automaton_and_the_ranges() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for _ in 0..200 {
        let e = example(&mut rng);
        let strings: Vec<&[u32]> = e.sequence.split(|&t| t == SEP).collect();
        assert!((10..=19).contains(&strings.len()));
        for s in &strings {
            assert!((1..=49).contains(&s.len()), "{}", to_text(&e.sequence));
            let word: Vec<usize> = s.iter().map(|&t| t as usize - 1).collect();
            assert!(e.automaton.accepts(&word));
        }
        assert!((19..=949).contains(&e.sequence.len()));
        let targets = e.targets();
        assert_eq!(targets.len(), e.inputs().len());
        for (t, &raw) in targets.iter().zip(&e.sequence[1..]) {
            assert_eq!(*t == -1, raw == SEP);
        }
    }
    // Same seed, same data.
    assert_eq!(
        example(&mut ChaCha8Rng::seed_from_u64(1)),
        example(&mut ChaCha8Rng::seed_from_u64(1))
    );
}

fn hand_made() -> Automaton {
    // 0 -a-> 1, 0 -b-> 1, 1 -a-> 0.
    let mut next = vec![[None; LETTERS]; 2];
    next[0][0] = Some(1);
    next[0][1] = Some(1);
    next[1][0] = Some(0);
    Automaton { next }
}

#[test]
fn metrics_on_hand_made_distributions() {
    let a = hand_made();
    let inputs = [1, 1, SEP]; // a a |
    let q = truth(&a, &inputs);
    assert_eq!(q[0][1], 1.0);
    assert_eq!((q[1][1], q[1][2]), (0.5, 0.5));
    assert_eq!((q[2][1], q[2][2]), (0.5, 0.5));

    let uniform = [1.0 / VOCAB as f64; VOCAB];
    let mut only_b = [0.0; VOCAB];
    only_b[2] = 1.0;
    let mut tie = [0.0; VOCAB];
    tie[1] = 0.5;
    tie[2] = 0.5;
    let s: Score = score(&a, &inputs, &[uniform, only_b, tie]);
    // Uniform: argmax is id 0 (lowest on ties), not a letter; TVD 0.5 (0.95 + 19 x 0.05).
    // Only b after "aa": legal, TVD 0.5. The a/b tie: argmax a, legal, TVD 0.
    assert_eq!((s.positions, s.correct), (3, 2));
    assert!((s.tvd() - (0.95 + 0.5 + 0.0) / 3.0).abs() < 1e-12);
    // The oracle is perfect.
    let oracle = score(&a, &inputs, &q);
    assert_eq!((oracle.accuracy(), oracle.tvd()), (1.0, 0.0));
}

#[test]
fn bigram_on_a_hand_worked_prefix() {
    // a b | a, worked by hand in the comments of each position.
    let p = NGram { n: 2 }.predict(&[1, 2, SEP, 1]);
    let ab = |i: usize| (p[i][1], p[i][2]);
    // "_a": h = a never followed yet; all mass backs off to the unigram over seen {a}.
    assert_eq!(ab(0), (1.0, 0.0));
    // "_ab": h = b never followed; unigram a:1/3, b:1/3 -> half each.
    assert_eq!(ab(1), (0.5, 0.5));
    // "_ab" and "_": h = _ seen twice, once before a -> a 1/2; the rest 1/2 to b.
    assert_eq!(ab(2), (0.5, 0.5));
    // "_ab" and "_a": h = a seen twice, once before b -> b 1/2; the rest to a.
    assert_eq!(ab(3), (0.5, 0.5));
    assert!(p.iter().all(|d| d[SEP as usize] == 0.0 && d[0] == 0.0));
}

#[test]
fn trigram_backs_off_through_the_bigram() {
    // a b a b | a b: after the second string's "ab", h = "ab" has occurred three times
    // ("__abab" twice, "__ab" once) and was followed by a once, so a gets 1/3; "abb" never
    // occurred, so b, the only seen letter without a count, takes the remaining 2/3.
    let p = NGram { n: 3 }.predict(&[1, 2, 1, 2, SEP, 1, 2]);
    let last = p.last().unwrap();
    assert!(
        (last[1] - 1.0 / 3.0).abs() < 1e-12 && (last[2] - 2.0 / 3.0).abs() < 1e-12,
        "{last:?}"
    );
}

/// The protocol's self-test on a few hundred sequences: 2-gram TVD 0.33 / accuracy 0.83,
/// 3-gram 0.26 / 0.934 (within sampling noise).
#[test]
fn ngram_self_test_numbers() {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let examples: Vec<_> = (0..300).map(|_| example(&mut rng)).collect();
    for (n, acc, tvd) in [(2, 0.83, 0.33), (3, 0.934, 0.26)] {
        let mut total = Score::default();
        for e in &examples {
            total.add(score(
                &e.automaton,
                e.inputs(),
                &NGram { n }.predict(e.inputs()),
            ));
        }
        assert!(
            (total.accuracy() - acc).abs() < 0.02,
            "{n}-gram accuracy {}",
            total.accuracy()
        );
        assert!(
            (total.tvd() - tvd).abs() < 0.02,
            "{n}-gram TVD {}",
            total.tvd()
        );
    }
}
