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
pub const NEGATIVE_BELOW: f64 = -0.05;
pub const POSITIVE_ABOVE: f64 = 0.05;

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
    ("ok", 0.5),
    ("okay", 0.5),
    ("fine", 0.8),
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
    let toks = tokens(text);
    let kept: Vec<(String, bool)> = {
        let consumed_toks = tokens(&consumed);
        // Tokens of the phrases are gone from `consumed`; score what is left, keeping the
        // shouting flags of the original where the words line up.
        consumed_toks
            .into_iter()
            .map(|(w, _)| {
                let shouted = toks.iter().any(|(o, s)| *s && *o == w);
                (w, shouted)
            })
            .collect()
    };
    let but_at = kept
        .iter()
        .position(|(w, _)| w == "but" || w == "however" || w == "although");
    let mut sum = 0.0;
    for (i, (word, shouted)) in kept.iter().enumerate() {
        let Some(mut v) = valence(word) else { continue };
        // Intensifier or dampener just before.
        if i > 0
            && let Some((_, boost)) = INTENSIFIERS.iter().find(|(w, _)| *w == kept[i - 1].0)
        {
            v += v.signum() * boost * v.abs().max(1.0);
        }
        // Negation within the three words before flips and dampens.
        let from = i.saturating_sub(3);
        if kept[from..i]
            .iter()
            .any(|(w, _)| NEGATIONS.contains(&w.as_str()) || w.ends_with("n't"))
        {
            v *= -0.6;
        }
        if *shouted {
            v *= 1.4;
        }
        if let Some(b) = but_at {
            v *= if i < b { 0.5 } else { 1.5 };
        }
        sum += v;
    }
    let mut total = sum + phrase_sum;
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

    #[test]
    fn capitals_and_exclamations_strengthen() {
        let calm = analyse("this is bad").score;
        let loud = analyse("this is BAD!!!").score;
        assert!(loud < calm, "{loud} < {calm}");
        assert!((-1.0..=1.0).contains(&loud));
    }
}
