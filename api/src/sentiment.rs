//! Sentiment of customer text, in two layers: rules that know service language
//! ([`lexicon`]: valences, negation, intensifiers, "but" clauses, sarcasm markers, and
//! complaints said without an emotional word — waits, repetitions, broken promises)
//! and a small learned model ([`model`]) that weighs the rules' reading with the
//! words of the text, trained on the labelled sets in `tests/data/` that are not held
//! out. Rules alone learned their author's phrasing: on a set by another author they
//! read four complaints in ten as neutral; the model generalises from many authors.
//! Deterministic and dependency-free; the model trains once per process, in
//! milliseconds.

mod lexicon;
mod model;

use entity::enums::SentimentLabel;

/// The result for one text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sentiment {
    /// In [-1, 1].
    pub score: f64,
    pub label: SentimentLabel,
}

/// Scores below the first are negative, above the second positive, and neutral
/// between (the schema's `SentimentLabel` says the same).
pub const NEGATIVE_BELOW: f64 = -0.25;
pub const POSITIVE_ABOVE: f64 = 0.25;

/// Scores a text: the rules' reading, weighed by the learned model.
pub fn analyse(text: &str) -> Sentiment {
    let score = model::score(text, &lexicon::read(text));
    Sentiment { score, label: label(score) }
}

/// The label of a score: the one definition of the thresholds, documented on the
/// schema's `SentimentLabel`.
pub fn label(score: f64) -> SentimentLabel {
    if score < NEGATIVE_BELOW {
        SentimentLabel::Negative
    } else if score > POSITIVE_ABOVE {
        SentimentLabel::Positive
    } else {
        SentimentLabel::Neutral
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(text: &str) -> SentimentLabel {
        analyse(text).label
    }

    #[test]
    fn reads_service_messages_the_way_people_do() {
        use SentimentLabel::*;
        assert_eq!(label("Thanks, the agent was really helpful!"), Positive);
        assert_eq!(label("Still waiting for my parcel, third week now."), Negative);
        assert_eq!(label("The delivery was not good"), Negative);
        assert_eq!(label("Not bad at all"), Positive);
        assert_eq!(label("Where is my order?"), Neutral);
        assert_eq!(label("The app is great but the checkout keeps crashing"), Negative);
        assert_eq!(label("Delivery was late but the support team sorted it out"), Positive);
        assert_eq!(label("Absolutely furious 😡"), Negative);
        assert_eq!(label("love it 😍"), Positive);
    }

    /// How the analyser does on a labelled set.
    #[derive(Debug)]
    struct Scores {
        accuracy: f64,
        macro_f1: f64,
        /// Of the messages labelled negative, the share read as negative.
        negative_recall: f64,
        messages: usize,
    }

    /// Scores on a labelled set in `tests/data/`.
    fn evaluate(file: &str) -> Scores {
        let path = format!("{}/../tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
        let data = std::fs::read_to_string(path).expect("labelled set");
        let labels = [SentimentLabel::Negative, SentimentLabel::Neutral, SentimentLabel::Positive];
        let mut confusion = [[0usize; 3]; 3];
        for line in data.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let mut cols = line.splitn(3, '\t');
            let (want, _channel, text) = (cols.next().unwrap_or(""), cols.next(), cols.next().unwrap_or(""));
            let want = match want {
                "negative" => 0,
                "neutral" => 1,
                "positive" => 2,
                other => panic!("unknown label {other}"),
            };
            let got = labels.iter().position(|l| *l == analyse(text).label).unwrap_or(1);
            if got != want && std::env::var_os("SENTIMENT_MISSES").is_some() {
                eprintln!("MISS want {want} got {got} ({:.2}): {text}", analyse(text).score);
            }
            confusion[want][got] += 1;
        }
        let total: usize = confusion.iter().flatten().sum();
        let correct: usize = (0..3).map(|i| confusion[i][i]).sum();
        let f1 = (0..3)
            .map(|i| {
                let tp = confusion[i][i] as f64;
                let predicted: usize = (0..3).map(|r| confusion[r][i]).sum();
                let actual: usize = confusion[i].iter().sum();
                let p = if predicted == 0 { 0.0 } else { tp / predicted as f64 };
                let r = if actual == 0 { 0.0 } else { tp / actual as f64 };
                if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) }
            })
            .sum::<f64>()
            / 3.0;
        eprintln!("{file}: confusion (rows want neg/neu/pos) {confusion:?}");
        let negatives: usize = confusion[0].iter().sum();
        Scores {
            accuracy: correct as f64 / total as f64,
            macro_f1: f1,
            negative_recall: confusion[0][0] as f64 / negatives.max(1) as f64,
            messages: total,
        }
    }

    /// The figures reported in the README; the analyser must not fall below them.
    #[test]
    fn labelled_sets_stay_above_the_reported_figures() {
        for (file, min_size, floor) in REPORTED {
            let got = evaluate(file);
            eprintln!("{file}: {got:?}");
            assert!(got.messages >= *min_size, "{file} has at least {min_size} messages");
            assert!(got.accuracy >= floor[0], "{file}: accuracy {:.3} fell below {}", got.accuracy, floor[0]);
            assert!(got.macro_f1 >= floor[1], "{file}: macro-F1 {:.3} fell below {}", got.macro_f1, floor[1]);
            assert!(
                got.negative_recall >= floor[2],
                "{file}: negative recall {:.3} fell below {}",
                got.negative_recall,
                floor[2]
            );
        }
    }

    /// The README's figures, rounded down: `(file, least messages, [accuracy, macro-F1,
    /// negative recall])`. The model is trained on the first five sets (their figures
    /// say the training worked, not what to expect); `sentiment_holdout3.tsv` was
    /// written by another independent author after it was trained, and is the figure
    /// to expect on new text.
    const REPORTED: &[(&str, usize, [f64; 3])] = &[
        ("sentiment.tsv", 300, [0.99, 0.99, 0.99]),
        ("sentiment_tune2.tsv", 400, [0.99, 0.99, 0.99]),
        ("sentiment_holdout.tsv", 90, [0.99, 0.99, 0.99]),
        ("sentiment_holdout2.tsv", 300, [0.98, 0.98, 0.98]),
        ("sentiment_tune3.tsv", 500, [0.98, 0.98, 0.99]),
        ("sentiment_holdout3.tsv", 300, [0.87, 0.87, 0.92]),
    ];

    #[test]
    fn capitals_and_exclamations_strengthen() {
        let calm = analyse("this is bad").score;
        let loud = analyse("this is BAD!!!").score;
        assert!(loud < calm, "{loud} < {calm}");
        assert!((-1.0..=1.0).contains(&loud));
    }
}
