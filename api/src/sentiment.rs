//! Sentiment of customer text: a lexicon-and-rules analyser tuned for customer service.
//!
//! Words carry a valence in [-4, 4]; the score of a text is the normalised sum, adjusted
//! by rules that matter in service messages: negation flips and dampens the next
//! words ("not happy"), intensifiers and capitals strengthen ("VERY late"), a "but"
//! makes the clause after it count more than the one before, exclamation marks amplify,
//! emoji count as words, and service phrases ("still waiting", "no reply", "sorted it")
//! carry their own weight. Deterministic, dependency-free and fast (no allocation per
//! word beyond the lower-casing).

use entity::enums::SentimentLabel;

/// The result for one text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sentiment {
    /// In [-1, 1].
    pub score: f64,
    pub label: SentimentLabel,
}

/// Scores at or beyond these are negative / positive.
pub const NEGATIVE_BELOW: f64 = -0.1;
pub const POSITIVE_ABOVE: f64 = 0.1;

const PHRASES: &[(&str, f64)] = &[
    ("still waiting", -2.5),
    ("still not", -2.0),
    ("no reply", -2.5),
    ("no response", -2.5),
    ("not received", -2.0),
    ("never arrived", -2.8),
    ("hasn't arrived", -2.2),
    ("has not arrived", -2.2),
    ("didn't arrive", -2.2),
    ("on hold", -1.5),
    ("charged twice", -2.5),
    ("double charged", -2.5),
    ("waste of time", -3.0),
    ("worst service", -3.5),
    ("let down", -2.0),
    ("fed up", -2.5),
    ("want a refund", -1.8),
    ("cancel my", -1.8),
    ("thanks for nothing", -3.2),
    ("zero stars", -3.0),
    ("hung up", -2.4),
    ("no answer", -2.2),
    ("no record", -1.8),
    ("still no", -2.0),
    ("taking forever", -2.4),
    ("round in circles", -2.2),
    ("non-existent", -2.2),
    ("hidden fees", -2.5),
    ("not working", -2.0),
    ("doesn't work", -2.0),
    ("stopped working", -2.2),
    ("sorted it", 2.0),
    ("sorted out", 2.0),
    ("thank you", 2.0),
    ("thanks a lot", 2.2),
    ("well done", 2.2),
    ("went above and beyond", 3.2),
    ("above and beyond", 3.0),
    ("no problem", 1.2),
    ("no issues", 1.5),
    ("works now", 1.8),
    ("quick response", 2.0),
    ("fast delivery", 2.0),
];

const WORDS: &[(&str, f64)] = &[
    ("amazing", 3.2),
    ("awesome", 3.1),
    ("brilliant", 3.0),
    ("excellent", 3.2),
    ("fantastic", 3.2),
    ("great", 2.6),
    ("good", 1.9),
    ("love", 3.0),
    ("loved", 3.0),
    ("lovely", 2.6),
    ("happy", 2.5),
    ("pleased", 2.2),
    ("helpful", 2.3),
    ("friendly", 2.0),
    ("quick", 1.3),
    ("quickly", 1.3),
    ("fast", 1.2),
    ("easy", 1.8),
    ("smooth", 1.6),
    ("perfect", 3.0),
    ("best", 3.0),
    ("thanks", 1.9),
    ("thank", 1.8),
    ("appreciate", 2.2),
    ("appreciated", 2.2),
    ("recommend", 2.0),
    ("resolved", 1.6),
    ("solved", 1.6),
    ("fixed", 1.4),
    ("nice", 1.8),
    ("wonderful", 3.0),
    ("superb", 3.1),
    ("impressed", 2.6),
    ("glad", 2.0),
    ("satisfied", 2.0),
    ("polite", 1.8),
    ("efficient", 2.0),
    ("reliable", 1.8),
    ("delighted", 3.0),
    ("cheers", 1.4),
    ("kind", 2.0),
    ("professional", 2.0),
    ("pleasure", 2.5),
    ("better", 1.5),
    ("comfy", 2.0),
    ("comfortable", 1.8),
    ("listens", 1.5),
    ("brilliantly", 3.0),
    ("acceptable", 1.2),
    ("care", 1.2),
    ("star", 1.8),
    ("compliments", 2.2),
    ("clean", 1.2),
    ("patient", 1.8),
    ("punctual", 1.6),
    ("tidy", 1.2),
    ("👏", 2.0),
    ("fine", 0.3),
    ("works", 1.0),
    ("working", 0.6),
    ("bad", -2.5),
    ("terrible", -3.4),
    ("awful", -3.3),
    ("horrible", -3.3),
    ("worst", -3.4),
    ("poor", -2.2),
    ("hate", -3.2),
    ("angry", -2.8),
    ("furious", -3.4),
    ("annoyed", -2.3),
    ("annoying", -2.3),
    ("frustrated", -2.6),
    ("frustrating", -2.6),
    ("disappointed", -2.5),
    ("disappointing", -2.5),
    ("useless", -3.0),
    ("rude", -2.8),
    ("slow", -1.8),
    ("late", -1.8),
    ("delayed", -1.9),
    ("delay", -1.6),
    ("broken", -2.3),
    ("damaged", -2.4),
    ("missing", -1.9),
    ("lost", -2.0),
    ("wrong", -2.0),
    ("error", -1.8),
    ("fail", -2.2),
    ("failed", -2.2),
    ("failing", -2.2),
    ("fails", -2.2),
    ("crash", -2.3),
    ("crashes", -2.3),
    ("crashing", -2.3),
    ("bug", -1.6),
    ("refund", -0.8),
    ("complaint", -2.0),
    ("complain", -1.9),
    ("ridiculous", -2.9),
    ("unacceptable", -3.2),
    ("disgusting", -3.3),
    ("scam", -3.3),
    ("never", -1.0),
    ("cancel", -1.5),
    ("cancelled", -1.5),
    ("cancelling", -1.8),
    ("waiting", -1.2),
    ("waited", -1.4),
    ("ignored", -2.6),
    ("overcharged", -2.7),
    ("charged", -0.8),
    ("problem", -1.7),
    ("problems", -1.7),
    ("issue", -1.2),
    ("issues", -1.3),
    ("confusing", -1.8),
    ("confused", -1.5),
    ("expensive", -1.5),
    ("cold", -1.0),
    ("dirty", -2.2),
    ("joke", -1.8),
    ("shambles", -3.0),
    ("nightmare", -3.1),
    ("stuck", -1.8),
    ("unable", -1.6),
    ("cannot", -1.0),
    ("can't", -1.0),
    ("impossible", -2.2),
    ("sorry", -0.5),
    ("nobody", -1.2),
    ("ruined", -2.8),
    ("soaked", -1.5),
    ("missed", -1.8),
    ("unhelpful", -2.4),
    ("unreliable", -2.2),
    ("stain", -1.5),
    ("rejected", -2.0),
    ("forever", -0.8),
    ("declined", -1.5),
    ("suspended", -2.0),
    ("buggy", -2.2),
    ("overpriced", -2.3),
    ("underwhelming", -2.0),
    ("waste", -2.6),
    ("avoid", -2.0),
    ("embarrassing", -2.4),
    ("regret", -2.0),
    ("invalid", -1.5),
    ("unhappy", -2.5),
    ("appalling", -3.2),
    ("heartbroken", -3.0),
    ("distressed", -2.6),
    ("twice", -0.7),
    ("again", -0.6),
    ("chase", -1.4),
    ("stuck", -1.8),
    ("outage", -1.6),
    ("down", -0.4),
    ("without", -0.5),
    ("pending", -0.4),
    ("unfortunately", -1.4),
    ("worse", -2.6),
    ("hopeless", -2.9),
    ("pathetic", -3.0),
    ("😀", 2.5),
    ("😊", 2.5),
    ("😍", 3.0),
    ("👍", 2.0),
    ("🙏", 1.5),
    ("❤️", 3.0),
    ("❤", 3.0),
    ("🎉", 2.5),
    ("😡", -3.2),
    ("😠", -3.0),
    ("😤", -2.5),
    ("😞", -2.4),
    ("😢", -2.4),
    ("👎", -2.5),
    ("🤬", -3.5),
    ("🙄", -1.8),
];

const NEGATIONS: &[&str] = &[
    "not", "no", "never", "n't", "dont", "don't", "didn't", "didnt", "isn't", "isnt", "wasn't", "wasnt", "won't",
    "wont", "cannot", "can't", "cant", "nothing", "nobody", "neither", "nor", "without", "hardly", "aren't", "haven't",
    "hasn't", "doesn't", "doesnt",
];

const INTENSIFIERS: &[(&str, f64)] = &[
    ("very", 0.3),
    ("really", 0.3),
    ("so", 0.25),
    ("extremely", 0.45),
    ("incredibly", 0.45),
    ("totally", 0.3),
    ("absolutely", 0.4),
    ("completely", 0.35),
    ("super", 0.3),
    ("utterly", 0.45),
    ("most", 0.2),
    ("slightly", -0.3),
    ("somewhat", -0.25),
    ("kinda", -0.25),
    ("bit", -0.2),
    ("barely", -0.35),
];

fn valence(word: &str) -> Option<f64> {
    WORDS.iter().find(|(w, _)| *w == word).map(|(_, v)| *v)
}

fn tokens(text: &str) -> Vec<(String, bool)> {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | ';' | ':' | '?' | '(' | ')' | '"'))
        .filter(|t| !t.is_empty())
        .map(|t| {
            let trimmed = t.trim_matches(|c: char| c == '!' || c == '\'' || c == '*');
            let letters: Vec<char> = trimmed.chars().filter(|c| c.is_alphabetic()).collect();
            let shouted = letters.len() >= 3 && letters.iter().all(|c| c.is_uppercase());
            (trimmed.to_lowercase(), shouted)
        })
        .filter(|(t, _)| !t.is_empty())
        .collect()
}

/// Scores a text.
pub fn analyse(text: &str) -> Sentiment {
    let lower = text.to_lowercase();
    let mut phrase_sum = 0.0;
    let mut consumed = lower.clone();
    for (phrase, v) in PHRASES {
        let n = consumed.matches(phrase).count();
        if n > 0 {
            phrase_sum += v * n as f64;
            consumed = consumed.replace(phrase, " ");
        }
    }
    // Words shouted in the original (all capitals) keep that mark after lower-casing.
    let shouted: Vec<String> = tokens(text).into_iter().filter(|(_, s)| *s).map(|(w, _)| w).collect();
    let kept: Vec<String> = tokens(&consumed).into_iter().map(|(w, _)| w).collect();
    let contrast = kept.iter().position(|w| matches!(w.as_str(), "but" | "however" | "although" | "despite"));
    let mut sum = 0.0;
    for (i, word) in kept.iter().enumerate() {
        let Some(mut v) = valence(word) else { continue };
        // Intensifier or dampener just before.
        if i > 0
            && let Some((_, boost)) = INTENSIFIERS.iter().find(|(w, _)| *w == kept[i - 1])
        {
            v += v.signum() * boost * v.abs().max(1.0);
        }
        // A negation among the two words before a lexical word flips and dampens it
        // ("not happy", "never helpful"); emoji are not negated, and "can't believe",
        // "can't wait" are not negations.
        let from = i.saturating_sub(2);
        let lexical = word.chars().any(char::is_alphabetic);
        let negated = kept[from..i].iter().enumerate().any(|(k, w)| {
            let is_negation = NEGATIONS.contains(&w.as_str()) || w.ends_with("n't");
            let idiom = kept.get(from + k + 1).is_some_and(|next| next == "believe" || next == "wait");
            is_negation && !idiom
        });
        if lexical && negated {
            v *= -0.6;
        }
        if shouted.contains(word) {
            v *= 1.4;
        }
        // What follows "but" counts more than what came before it.
        if let Some(c) = contrast {
            v *= if i < c { 0.5 } else { 1.5 };
        }
        sum += v;
    }
    let mut total = sum + phrase_sum;
    // Repeated question marks ("hello???") read as exasperation.
    total -= 1.2 * text.matches("??").count().min(3) as f64;
    let exclamations = text.matches('!').count().min(4) as f64;
    if total != 0.0 {
        total += total.signum() * 0.3 * exclamations;
    }
    // Normalise to [-1, 1] (as VADER does): x / sqrt(x² + α).
    let score = total / (total * total + 15.0).sqrt();
    let label = if score <= NEGATIVE_BELOW {
        SentimentLabel::Negative
    } else if score >= POSITIVE_ABOVE {
        SentimentLabel::Positive
    } else {
        SentimentLabel::Neutral
    };
    Sentiment { score, label }
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

    /// Accuracy and macro-F1 on a labelled set in `tests/data/`.
    fn evaluate(file: &str) -> (f64, f64, usize) {
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
        eprintln!("sentiment on {total} labelled messages: confusion (rows want neg/neu/pos) {confusion:?}");
        (correct as f64 / total as f64, f1, total)
    }

    /// The figures reported in the README; the analyser must not fall below them.
    #[test]
    fn labelled_set_stays_above_the_reported_figures() {
        for (file, min_size, accuracy_floor, f1_floor) in [
            ("sentiment.tsv", 300, REPORTED_ACCURACY, REPORTED_MACRO_F1),
            ("sentiment_holdout.tsv", 90, HOLDOUT_ACCURACY, HOLDOUT_MACRO_F1),
        ] {
            let (accuracy, macro_f1, n) = evaluate(file);
            eprintln!("{file}: accuracy {accuracy:.3}, macro-F1 {macro_f1:.3} on {n} messages");
            assert!(n >= min_size, "{file} has at least {min_size} messages");
            assert!(accuracy >= accuracy_floor, "{file}: accuracy {accuracy:.3} fell below {accuracy_floor}");
            assert!(macro_f1 >= f1_floor, "{file}: macro-F1 {macro_f1:.3} fell below {f1_floor}");
        }
    }

    // The README's figures (rounded down): the tuning set, and the held-out set that
    // was written afterwards and never used for tuning.
    const REPORTED_ACCURACY: f64 = 0.91;
    const REPORTED_MACRO_F1: f64 = 0.91;
    const HOLDOUT_ACCURACY: f64 = 0.76;
    const HOLDOUT_MACRO_F1: f64 = 0.76;

    #[test]
    fn capitals_and_exclamations_strengthen() {
        let calm = analyse("this is bad").score;
        let loud = analyse("this is BAD!!!").score;
        assert!(loud < calm, "{loud} < {calm}");
        assert!((-1.0..=1.0).contains(&loud));
    }
}
