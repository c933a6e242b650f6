//! The rules: words and phrases with a valence in [-4, 4], adjusted by what service
//! messages do with them — negation flips and dampens the next words ("not happy"),
//! intensifiers and capitals strengthen ("VERY late"), a "but" makes the clause after
//! it count more, exclamation marks amplify, emoji count as words, sarcasm markers turn
//! praise around — and cues of complaints said without an emotional word (a wait, a
//! repetition, a flat failure). Deterministic and dependency-free.

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
    ("cancel my", -0.6),
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
    ("rings out", -2.0),
    ("is anyone", -1.4),
    ("anyone else", -1.2),
    ("how you treat", -2.4),
    ("been down", -1.6),
    ("all morning", -1.0),
    ("doesn't help", -2.0),
    ("didn't help", -2.0),
    ("left my account", -1.6),
    ("taken from my account", -1.6),
    ("you took", -1.2),
    ("don't buy", -2.4),
    ("do not buy", -2.4),
    ("says delivered", -1.6),
    ("shows delivered", -1.6),
    ("marked as delivered", -1.6),
    ("hasn't worked", -2.0),
    ("haven't worked", -2.0),
    ("not worked", -2.0),
    ("isn't working", -2.0),
    ("good morning", 0.0),
    ("down for maintenance", 0.0),
    ("good afternoon", 0.0),
    ("good evening", 0.0),
    ("best way to", 0.0),
    ("not my", -1.2),
    ("considering moving", -2.0),
    ("at best", -0.8),
    ("expected better", -1.8),
    ("up from", -1.2),
    ("in a row", -1.4),
    ("it isn't.", -1.6),
    ("it wasn't.", -1.6),
    ("it is not.", -1.6),
    ("it was not.", -1.6),
    ("it didn't.", -1.6),
    ("it hasn't.", -1.6),
    ("wasn't ready", -1.6),
    ("not ready", -1.4),
    ("hasn't gone", -1.6),
    ("log me out", -1.6),
    ("you said", -1.0),
    ("fell apart", -2.4),
    ("as stated", 1.0),
    ("when stated", 1.0),
    ("as promised", 1.2),
    ("on time", 1.2),
    ("as described", 1.2),
    ("recommend them enough", 2.6),
    ("recommend it enough", 2.6),
    ("recommend you enough", 2.6),
    ("recommend enough", 2.6),
    ("thank you so much", 2.6),
    ("no signal", -2.0),
    ("no hot water", -2.0),
    ("no heating", -2.0),
    ("no internet", -2.0),
    ("no update", -1.8),
    ("no refund", -1.8),
    ("not applied", -1.6),
    ("wasn't applied", -1.6),
    ("didn't turn up", -2.0),
    ("did not turn up", -2.0),
    ("didn't come", -1.6),
    ("did not come", -1.6),
    ("not turned up", -2.0),
    ("not there", -1.2),
    ("not what i ordered", -2.2),
    ("nothing like", -1.6),
    ("same fault", -2.0),
    ("same problem", -2.0),
    ("same issue", -2.0),
    ("locked out", -2.0),
    ("logged out", -1.6),
    ("logs me out", -1.6),
    ("logging me out", -1.6),
    ("price rise", -1.6),
    ("price increase", -1.6),
    ("raised prices", -1.6),
    ("gone up", -1.4),
    ("money back", -1.6),
    ("stop calling", -2.0),
    ("at my wits", -2.6),
    ("so much for", -1.6),
    ("supposed to", -1.5),
    ("meant to", -1.2),
    ("was due", -1.2),
    ("should have", -1.0),
    ("it's now", -1.0),
    ("it is now", -1.0),
    ("every time", -1.2),
    ("each time", -1.2),
    ("every single", -1.2),
    ("second time", -1.0),
    ("2nd time", -1.0),
    ("third time", -1.6),
    ("3rd time", -1.6),
    ("no one", -1.2),
    ("no-one", -1.2),
    ("thank you for your email", 0.6),
    ("thank you for your message", 0.6),
    ("thanks for your email", 0.6),
    ("couldn't be happier", 3.0),
    ("could not be happier", 3.0),
    ("can't fault", 2.4),
    ("cannot fault", 2.4),
    ("can't thank", 2.6),
    ("never looked better", 2.6),
    ("never miss", 2.2),
    ("pleasantly surprised", 2.6),
    ("out of their way", 2.6),
    ("out of his way", 2.6),
    ("out of her way", 2.6),
    ("top marks", 2.6),
    ("five stars", 2.6),
    ("5 stars", 2.6),
    ("credit where", 2.2),
    ("shout out", 2.2),
    ("big up", 2.2),
    ("huge improvement", 2.6),
    ("we'll be back", 2.4),
    ("will be back", 2.0),
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
    ("fab", 2.6),
    ("legend", 2.4),
    ("lifesaver", 2.6),
    ("grateful", 2.6),
    ("thanked", 2.0),
    ("obsessed", 2.4),
    ("improvement", 1.8),
    ("decent", 1.4),
    ("shoutout", 2.2),
    ("easiest", 2.0),
    ("easier", 1.6),
    ("cheaper", 1.2),
    ("careful", 1.4),
    ("stars", 0.8),
    ("🔥", 2.0),
    ("💕", 2.5),
    ("👌", 2.0),
    ("🚀", 1.5),
    ("😁", 2.5),
    ("🥰", 3.0),
    ("🙌", 2.0),
    ("😂", 0.8),
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
    ("never", -1.3),
    ("cancel", -0.9),
    ("cancelled", -1.5),
    ("cancelling", -1.8),
    ("waiting", -1.2),
    ("waited", -1.4),
    ("ignored", -2.6),
    ("overcharged", -2.7),
    ("charged", -1.2),
    ("charge", -0.6),
    ("charges", -0.6),
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
    ("twice", -1.2),
    ("kept", -0.8),
    ("keeps", -0.8),
    ("again", -1.0),
    ("chase", -1.4),
    ("stuck", -1.8),
    ("outage", -1.6),
    ("down", -1.2),
    ("without", -0.5),
    ("pending", -0.4),
    ("unfortunately", -1.4),
    ("worse", -2.6),
    ("hopeless", -2.9),
    ("pathetic", -3.0),
    ("expired", -1.5),
    ("blocked", -1.5),
    ("disconnected", -1.5),
    ("buffering", -1.5),
    ("drops", -1.0),
    ("dropping", -1.0),
    ("snapped", -1.8),
    ("smashed", -2.0),
    ("squashed", -1.6),
    ("leak", -1.5),
    ("leaking", -1.5),
    ("fault", -1.5),
    ("faulty", -2.2),
    ("overdue", -1.0),
    ("reverts", -1.2),
    ("unavailable", -1.5),
    ("upset", -2.5),
    ("shocked", -2.2),
    ("shambolic", -3.0),
    ("worried", -2.0),
    ("stressful", -2.2),
    ("stressed", -2.2),
    ("wtf", -2.5),
    ("smh", -2.0),
    ("ffs", -2.5),
    ("seriously", -1.2),
    ("promised", -1.4),
    ("stop", -1.0),
    ("explanation", -1.2),
    ("compensation", -1.2),
    ("escalated", -1.0),
    ("chasing", -1.6),
    ("duplicate", -1.2),
    ("duplicated", -1.2),
    ("billed", -0.8),
    ("why", -1.2),
    ("still", -0.9),
    ("nothing", -0.9),
    ("yet", -0.3),
    ("broke", -2.0),
    ("filthy", -3.0),
    ("stains", -1.5),
    ("loose", -1.2),
    ("noisy", -1.4),
    ("meh", -1.5),
    ("gutted", -2.6),
    ("disappeared", -1.6),
    ("refused", -2.0),
    ("wasted", -2.4),
    ("elsewhere", -1.2),
    ("sorting", 1.2),
    ("resolving", 1.6),
    ("solid", 1.6),
    ("since", -1.3),
    ("😑", -2.0),
    ("😩", -2.2),
    ("😕", -1.8),
    ("🙃", -1.5),
    ("🤷", -1.4),
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
    ("🙄", -2.4),
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

/// A word's valence; an emoji also when modified (skin tone, gender, repeated).
fn valence(word: &str) -> Option<f64> {
    WORDS
        .iter()
        .find(|(w, _)| *w == word || (!w.starts_with(char::is_alphabetic) && word.starts_with(w)))
        .map(|(_, v)| *v)
}

pub(super) fn tokens(text: &str) -> Vec<(String, bool)> {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | ';' | ':' | '?' | '(' | ')' | '"'))
        .filter(|t| !t.is_empty())
        .map(|t| {
            let trimmed = t.trim_matches(|c: char| matches!(c, '!' | '\'' | '*' | '#' | '@'));
            let letters: Vec<char> = trimmed.chars().filter(|c| c.is_alphabetic()).collect();
            let shouted = letters.len() >= 3 && letters.iter().all(|c| c.is_uppercase());
            (trimmed.to_lowercase(), shouted)
        })
        .filter(|(t, _)| !t.is_empty())
        .collect()
}

const NUMBER_WORDS: &[&str] = &[
    "a", "an", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "fifteen", "twenty", "few", "couple", "several",
];
const TIME_UNITS: &[&str] = &[
    "min", "mins", "minute", "minutes", "hour", "hours", "hr", "hrs", "day", "days", "week", "weeks", "month", "months",
];
/// Words that make an amount of time a wait ("for four days", "took a month",
/// "3 weeks later").
const WAIT_BEFORE: &[&str] = &[
    "for", "after", "been", "over", "took", "taken", "takes", "taking", "another", "nearly", "almost", "last", "past",
    "waited", "waiting", "wait",
];
const WAIT_AFTER: &[&str] = &["later", "ago", "now", "running", "late", "overdue"];
/// Failure said flatly ("it wasn't", "the code hasn't arrived").
const FLAT_NEGATIONS: &[&str] = &[
    "not", "hasn't", "hasnt", "haven't", "havent", "didn't", "didnt", "isn't", "isnt", "wasn't", "wasnt", "doesn't",
    "doesnt", "won't", "wont", "aren't", "weren't", "couldn't",
];
/// First words of a request or a question.
const REQUESTS: &[&str] = &[
    "can", "could", "is", "are", "do", "does", "how", "what", "when", "where", "which", "would", "will", "please",
    "pls",
];
/// Markers of sarcasm: praise around them is meant the other way.
const SARCASM: &[&str] = &[
    "🙄",
    "😑",
    "🙃",
    "so much for",
    "oh great",
    "oh brilliant",
    "oh perfect",
    "love how",
    "nothing says",
    "thanks a lot",
    "thanks for nothing",
    "cheers mate",
    "imagine paying",
    "really appreciate the",
    "great job",
    "cracking job",
    "well done guys",
];

fn is_number(w: &str) -> bool {
    (!w.is_empty() && w.chars().all(|c| c.is_ascii_digit())) || NUMBER_WORDS.contains(&w)
}

/// Complaints that carry no emotional word: a wait ("for four days", "since
/// Monday", "day 3"), a repetition ("three times"), a failure said flatly ("it
/// wasn't"). Each kind counts once, so a long message is not a complaint by length.
fn quiet_complaint(words: &[String]) -> f64 {
    let at = |i: usize| words.get(i).map_or("", String::as_str);
    let mut wait = false;
    let mut repeated = false;
    let mut flat = 0;
    for i in 0..words.len() {
        let w = at(i);
        if TIME_UNITS.contains(&w) && i > 0 {
            // "4 days", "10 working days".
            let n = if is_number(at(i - 1)) {
                Some(i - 1)
            } else if i > 1
                && is_number(at(i - 2))
                && ["working", "whole", "full", "business", "more"].contains(&at(i - 1))
            {
                Some(i - 2)
            } else {
                None
            };
            if let Some(n) = n {
                let before = (n.saturating_sub(2)..n).any(|k| WAIT_BEFORE.contains(&at(k)));
                wait |= before || WAIT_AFTER.contains(&at(i + 1));
            }
            // "another week".
            wait |= at(i - 1) == "another";
        }
        // "Day 12 of waiting", "it's day 3".
        if w == "day" && is_number(at(i + 1)) && !["a", "an", "one"].contains(&at(i + 1)) {
            wait = true;
        }
        // "it's been 15", "it's been ten".
        if w == "been" && is_number(at(i + 1)) && !TIME_UNITS.contains(&at(i + 2)) && at(i + 2) != "working" {
            wait = true;
        }
        if w == "times" && i > 0 && is_number(at(i - 1)) && !["a", "an", "one"].contains(&at(i - 1)) {
            repeated = true;
        }
        if FLAT_NEGATIONS.contains(&w) && !words[i + 1..(i + 3).min(words.len())].iter().any(|n| valence(n).is_some()) {
            flat += 1;
        }
    }
    -1.6 * f64::from(u8::from(wait)) - 1.4 * f64::from(u8::from(repeated)) - 0.7 * f64::from(flat.min(2))
}

/// Blanks out every occurrence of `phrase` in `text` that stands on word boundaries
/// ("as promised", not "was promised"); returns how many.
fn blank_out(text: &mut String, phrase: &str) -> usize {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '\'');
    let mut n = 0;
    let mut from = 0;
    while let Some(at) = text[from..].find(phrase).map(|i| i + from) {
        let end = at + phrase.len();
        let bounded = !word(text[..at].chars().next_back()) && !word(text[end..].chars().next());
        // A phrase ending in punctuation ("it isn't.") is bounded by it.
        let bounded = bounded || (!word(text[..at].chars().next_back()) && !phrase.ends_with(char::is_alphanumeric));
        if bounded {
            // Blanked to the same length: nothing after it moves, so a long message
            // full of one phrase costs its length, not length × occurrences.
            text.replace_range(at..end, &" ".repeat(end - at));
            n += 1;
            from = end;
        } else {
            from = at + phrase.chars().next().map_or(1, char::len_utf8);
        }
    }
    n
}

/// What the rules read in a text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// Sum of the positive valences (≥ 0).
    pub praise: f64,
    /// Sum of the negative valences and complaint cues (≤ 0).
    pub blame: f64,
    /// The quiet-complaint cues alone (≤ 0).
    pub quiet: f64,
    /// A sarcasm marker turned the praise around.
    pub sarcastic: bool,
    /// A request or a question.
    pub request: bool,
    /// The rules' score in [-1, 1].
    pub score: f64,
}

/// Reads a text by the rules.
pub fn read(text: &str) -> Reading {
    let lower = text.to_lowercase();
    let mut phrase_sum = 0.0;
    let mut consumed = lower.clone();
    for (phrase, v) in PHRASES {
        let n = blank_out(&mut consumed, phrase);
        phrase_sum += v * n as f64;
    }
    // Words shouted in the original (all capitals) keep that mark after lower-casing.
    // A set: a 64 KiB message of shouted words must not cost words × words.
    let shouted: std::collections::HashSet<String> =
        tokens(text).into_iter().filter(|(_, s)| *s).map(|(w, _)| w).collect();
    let kept: Vec<String> = tokens(&consumed).into_iter().map(|(w, _)| w).collect();
    let contrast = kept.iter().position(|w| matches!(w.as_str(), "but" | "however" | "although" | "despite"));
    let (mut praise, mut blame) = (0.0, 0.0);
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
            // "no" negates only the word right after it ("no good"; not "no, that's wrong").
            let is_negation =
                (NEGATIONS.contains(&w.as_str()) || w.ends_with("n't")) && (w != "no" || from + k + 1 == i);
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
        if v > 0.0 {
            praise += v;
        } else {
            blame += v;
        }
    }
    let (praise_phrases, blame_phrases): (f64, f64) = (phrase_sum.max(0.0), phrase_sum.min(0.0));
    // A request or a question ("is it possible to pause it for a month?") mentions
    // time and repetition without complaining; its quiet cues count half.
    let request = kept.first().is_some_and(|w| REQUESTS.contains(&w.as_str()))
        || ["i'd like", "i would like"].iter().any(|r| lower.starts_with(r));
    let quiet = quiet_complaint(&kept) * if request { 0.5 } else { 1.0 };
    blame += blame_phrases + quiet;
    praise += praise_phrases;
    // Praise around a complaint and a sarcasm marker ("Great, another week without a
    // working fridge 🙄") is meant the other way.
    let sarcastic = SARCASM.iter().any(|m| lower.contains(m))
        || ["great,", "brilliant,", "perfect,", "lovely,", "fantastic,"].iter().any(|m| lower.starts_with(m));
    if sarcastic && blame <= -0.5 {
        blame -= 0.5 * praise;
        praise = 0.0;
    }
    let mut total = praise + blame;
    // Repeated question marks ("hello???") read as exasperation.
    total -= 1.2 * text.matches("??").count().min(3) as f64;
    let exclamations = text.matches('!').count().min(4) as f64;
    if total != 0.0 {
        total += total.signum() * 0.3 * exclamations;
    }
    // Normalise to [-1, 1] (as VADER does): x / sqrt(x² + α).
    let score = total / (total * total + 15.0).sqrt();
    Reading { praise, blame, quiet, sarcastic, request, score }
}
