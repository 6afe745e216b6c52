//! Random deterministic automata with partial transitions, every state accepting.

use rand::Rng;
use rand::seq::index::sample;

use super::LETTERS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Automaton {
    /// `next[s][l]`: the state after letter `l` (0-based, id `l + 1`) from state `s`; the
    /// initial state is 0.
    pub next: Vec<[Option<u8>; LETTERS]>,
}

impl Automaton {
    /// The benchmark's sampler: 4-12 states, an alphabet of 4-18 letters, 1-3 out-edges per
    /// state on distinct letters to distinct other states; then minimised and trimmed.
    pub fn random(rng: &mut impl Rng) -> Automaton {
        Self::random_unminimised(rng).minimised()
    }

    /// The sampler's automaton before minimisation.
    pub fn random_unminimised(rng: &mut impl Rng) -> Automaton {
        let n_states = rng.random_range(4..=12);
        let n_letters = rng.random_range(4..=LETTERS);
        let alphabet: Vec<usize> = sample(rng, LETTERS, n_letters).into_vec();
        let mut next = vec![[None; LETTERS]; n_states];
        for (s, row) in next.iter_mut().enumerate() {
            let k = rng.random_range(1..=3);
            let letters = sample(rng, n_letters, k);
            // k distinct targets among the other states.
            let targets: Vec<usize> = sample(rng, n_states - 1, k)
                .into_iter()
                .map(|t| if t >= s { t + 1 } else { t })
                .collect();
            for (l, t) in letters.into_iter().zip(targets) {
                row[alphabet[l]] = Some(t as u8);
            }
        }
        Automaton { next }
    }

    pub fn num_states(&self) -> usize {
        self.next.len()
    }

    /// The letters (0-based) defined in state `s`.
    pub fn letters(&self, s: usize) -> impl Iterator<Item = usize> + '_ {
        (0..LETTERS).filter(move |&l| self.next[s][l].is_some())
    }

    /// Whether the automaton accepts `word` (0-based letters): every state accepts, so a word
    /// is accepted when every transition along it is defined.
    pub fn accepts(&self, word: &[usize]) -> bool {
        let mut s = 0usize;
        for &l in word {
            match self.next[s][l] {
                Some(t) => s = t as usize,
                None => return false,
            }
        }
        true
    }

    /// Partition refinement: states are equivalent when they define the same letters and each
    /// letter leads to equivalent states. Then only what the initial state reaches is kept,
    /// numbered in breadth-first order from it.
    pub fn minimised(&self) -> Automaton {
        let n = self.num_states();
        let mut block: Vec<usize> = vec![0; n];
        loop {
            // A state's signature: its block and, per letter, the target's block (or none).
            let signatures: Vec<(usize, Vec<Option<usize>>)> = (0..n)
                .map(|s| {
                    let targets = self.next[s]
                        .iter()
                        .map(|t| t.map(|t| block[t as usize]))
                        .collect();
                    (block[s], targets)
                })
                .collect();
            let mut ids: Vec<&(usize, Vec<Option<usize>>)> = Vec::new();
            let refined: Vec<usize> = signatures
                .iter()
                .map(|sig| match ids.iter().position(|x| *x == sig) {
                    Some(i) => i,
                    None => {
                        ids.push(sig);
                        ids.len() - 1
                    }
                })
                .collect();
            let stable = ids.len() == block.iter().max().map_or(0, |m| m + 1);
            block = refined;
            if stable {
                break;
            }
        }
        // Breadth-first from the initial state's block.
        let mut order: Vec<usize> = vec![block[0]];
        let mut number = std::collections::HashMap::from([(block[0], 0usize)]);
        let mut i = 0;
        while i < order.len() {
            let b = order[i];
            let s = (0..n)
                .find(|&s| block[s] == b)
                .expect("a block has a state");
            for t in self.next[s].iter().flatten() {
                let tb = block[*t as usize];
                if let std::collections::hash_map::Entry::Vacant(e) = number.entry(tb) {
                    e.insert(order.len());
                    order.push(tb);
                }
            }
            i += 1;
        }
        let next = order
            .iter()
            .map(|&b| {
                let s = (0..n)
                    .find(|&s| block[s] == b)
                    .expect("a block has a state");
                let mut row = [None; LETTERS];
                for (l, t) in self.next[s].iter().enumerate() {
                    row[l] = t.map(|t| number[&block[t as usize]] as u8);
                }
                row
            })
            .collect();
        Automaton { next }
    }
}
