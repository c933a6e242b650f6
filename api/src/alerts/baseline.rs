//! What a window's volume should be, and how surprising the observed one is: the
//! statistics of the spike detector, kept free of I/O so they are tested alone.
//!
//! **Seasonal samples.** A window's history is the same window of the day on each of
//! the previous days (`daily`) and, among those, the same day of the week
//! (`weekday`). Comparing with the last 24 hours instead read every evening peak as a
//! crisis.
//!
//! **Robust location.** The daily expectation is the 20 %-trimmed mean of the daily
//! samples: a past incident at the same hour is one high sample and is trimmed away,
//! as is a day the channel was down (a gap reads as zero). With enough weeks, the
//! median of the same weekday's samples is taken when it is higher (a busy Monday
//! morning is not an incident; a quiet Sunday keeps the daily line, which only makes
//! Sunday alarms a little harder). A median or trimmed mean rather than a seasonal
//! EWMA: an EWMA keeps a fraction of every incident in its state for days (raising
//! the line after each one); a trimmed sample forgets it at once. (Reasoned, not
//! measured: the evaluation in the README compares settings of this baseline only.)
//!
//! **Over-dispersion.** Counts are negative-binomial, variance `μ + αμ²`: quiet
//! channels come in clumps (one angry thread, five messages), not as Poisson drops. α
//! comes from the samples' robust spread (interquartile range), floored at the
//! configured minimum, and grows by the uncertainty of μ itself (few samples, wider
//! interval). A window spikes when `P(X ≥ observed)` under that law is at most the
//! configured significance; the alert carries μ, the usual range and the alarm line.

/// The law a window's count is expected to follow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expectation {
    /// Expected count.
    pub mean: f64,
    /// α of the variance `μ + αμ²`.
    pub dispersion: f64,
    /// Which samples set `mean`.
    pub model: Model,
    /// Days of history the samples came from.
    pub days: usize,
}

/// Which history set the expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// The same time on every previous day.
    Daily,
    /// The same time on the same day of the week (it was higher).
    Weekday,
}

impl Model {
    pub fn name(self) -> &'static str {
        match self {
            Model::Daily => "daily",
            Model::Weekday => "weekday",
        }
    }
}

/// The smallest expected count a window is judged against: a scope silent at this
/// hour still needs several mentions, not one, to be surprising.
pub const MIN_MEAN: f64 = 1.0;
/// The largest dispersion the spread of the samples can claim.
pub const MAX_DISPERSION: f64 = 4.0;
/// Share of the daily samples trimmed at each end.
const TRIM: f64 = 0.2;
/// Share of each window's samples winsorized (capped) at the top before its spread
/// is measured: a past incident's one or two days, no more (capping more hides the
/// clumpiness the spread is there to measure).
const WINSOR: f64 = 0.08;
/// Same-weekday samples needed before the weekday line is used.
const MIN_WEEKDAY_SAMPLES: usize = 3;

/// The expectation from the daily samples (`daily[i]`: the count `i + 1` days
/// before) and the same weekday's (`weekday`), with dispersion at least
/// `min_dispersion`. `None` without samples.
pub fn expect(daily: &[f64], weekday: &[f64], min_dispersion: f64) -> Option<Expectation> {
    if daily.is_empty() {
        return None;
    }
    let mut sorted = daily.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let cut = ((n as f64) * TRIM).floor() as usize;
    let kept = &sorted[cut..n - cut];
    let daily_mean = kept.iter().sum::<f64>() / kept.len() as f64;
    let (mut mean, mut model) = (daily_mean, Model::Daily);
    if weekday.len() >= MIN_WEEKDAY_SAMPLES {
        let mut w = weekday.to_vec();
        w.sort_by(f64::total_cmp);
        let median = quantile(&w, 0.5);
        if median > mean {
            (mean, model) = (median, Model::Weekday);
        }
    }
    let mean = mean.max(MIN_MEAN);
    let alpha = dispersion(&[daily]).max(min_dispersion).min(MAX_DISPERSION);
    // The mean is itself estimated from `n` samples (a trimmed mean's variance is about
    // 1.2 times the plain mean's): the predictive law is that much wider.
    let uncertainty = 1.2 * (mean + alpha * mean * mean) / n as f64 / (mean * mean);
    Some(Expectation { mean, dispersion: alpha + uncertainty, model, days: n })
}

/// The over-dispersion α shared by several windows' samples (each window's counts on
/// its previous days): pooled moments, `Σ(s²ₖ − mₖ) / Σmₖ²`, each window's samples
/// winsorized at their top `WINSOR` first (a past incident is one sample, and must not
/// pass for clumpiness). Pooling a day of windows gives hundreds of samples: a window's
/// own 28 are too few to tell α = 0.1 from 0.3 at two mentions an hour, and the
/// evaluation's false alarms came from that guess being low.
pub fn dispersion(windows: &[&[f64]]) -> f64 {
    let (mut excess, mut scale) = (0.0, 0.0);
    for samples in windows {
        if samples.len() < 3 {
            continue;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let cap = sorted[sorted.len() - 1 - ((sorted.len() as f64) * WINSOR).ceil() as usize];
        let kept: Vec<f64> = sorted.iter().map(|x| x.min(cap)).collect();
        let n = kept.len() as f64;
        let m = kept.iter().sum::<f64>() / n;
        let var = kept.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
        excess += var - m;
        scale += m * m;
    }
    if scale <= 0.0 { 0.0 } else { (excess / scale).max(0.0) }
}

/// The `q` quantile of sorted samples, interpolated between neighbours.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let at = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
}

impl Expectation {
    /// `k` and `q` of the negative binomial: pmf(j+1) = pmf(j)·(j+k)/(j+1)·q.
    fn shape(&self) -> (f64, f64) {
        let k = 1.0 / self.dispersion;
        (k, self.mean / (k + self.mean))
    }

    fn ln_pmf(&self, x: u64) -> f64 {
        let (k, q) = self.shape();
        let x = x as f64;
        ln_gamma(x + k) - ln_gamma(k) - ln_gamma(x + 1.0) + k * (1.0 - q).ln() + x * q.ln()
    }

    /// `P(X ≥ x)`; 1 at or below the mean (only surprise upwards matters).
    pub fn upper_tail(&self, x: u64) -> f64 {
        if (x as f64) <= self.mean {
            return 1.0;
        }
        let (k, q) = self.shape();
        let mut term = self.ln_pmf(x).exp();
        let mut sum = 0.0;
        // Above the mean the terms shrink; a bounded walk, with the rest bounded by a
        // geometric series of the last ratio.
        for j in x..x + 100_000 {
            sum += term;
            let ratio = (j as f64 + k) / (j as f64 + 1.0) * q;
            term *= ratio;
            if term <= sum * 1e-15 {
                return sum.min(1.0);
            }
            if j + 1 == x + 100_000 && ratio < 1.0 {
                sum += term / (1.0 - ratio);
            }
        }
        sum.min(1.0)
    }

    /// The smallest count whose upper tail is at most `p`: the alarm line.
    pub fn line(&self, p: f64) -> u64 {
        let (k, q) = self.shape();
        let mut x = self.mean.floor() as u64 + 1;
        let mut tail = self.upper_tail(x);
        let mut pmf = self.ln_pmf(x).exp();
        let mut steps = 0;
        while tail > p && steps < 1_000_000 {
            tail -= pmf;
            pmf *= (x as f64 + k) / (x as f64 + 1.0) * q;
            x += 1;
            steps += 1;
        }
        x
    }

    /// The central interval holding `level` of the law (e.g. 0.9: the 5th to the
    /// 95th percentile): the usual range.
    pub fn interval(&self, level: f64) -> (u64, u64) {
        let (k, q) = self.shape();
        let (low_p, high_p) = ((1.0 - level) / 2.0, 1.0 - (1.0 - level) / 2.0);
        let mut ln_p = k * (1.0 - q).ln();
        let (mut cdf, mut low) = (0.0, None);
        let cap = (self.mean * 10.0) as u64 + 1_000;
        for j in 0..cap {
            cdf += ln_p.exp();
            if low.is_none() && cdf >= low_p {
                low = Some(j);
            }
            if cdf >= high_p {
                return (low.unwrap_or(j), j);
            }
            ln_p += ((j as f64 + k) / (j as f64 + 1.0)).ln() + q.ln();
        }
        (low.unwrap_or(0), cap)
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: about 15 significant digits).
pub fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        return std::f64::consts::PI.ln() - (std::f64::consts::PI * x).sin().abs().ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn law(mean: f64, dispersion: f64) -> Expectation {
        Expectation { mean, dispersion, model: Model::Daily, days: 28 }
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        let mut factorial = 1.0_f64;
        for n in 1..30 {
            factorial *= f64::from(n);
            assert!((ln_gamma(f64::from(n) + 1.0) - factorial.ln()).abs() < 1e-10, "{n}");
        }
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }

    #[test]
    fn the_tail_is_the_sum_of_the_probabilities() {
        // With a tiny dispersion the law is Poisson: P(X ≥ 10 | 4) = 0.00813…
        let poissonish = law(4.0, 1e-9);
        assert!((poissonish.upper_tail(10) - 0.008_132_5).abs() < 1e-6, "{}", poissonish.upper_tail(10));
        // And the tail plus the probabilities below it is one, at any dispersion.
        for (mean, alpha) in [(3.0, 0.3), (40.0, 0.05), (2000.0, 0.01)] {
            let l = law(mean, alpha);
            let x = (mean * 1.5) as u64;
            let below: f64 = (0..x).map(|j| l.ln_pmf(j).exp()).sum();
            assert!((below + l.upper_tail(x) - 1.0).abs() < 1e-9, "{mean} {alpha}");
        }
    }

    #[test]
    fn over_dispersion_widens_the_alarm_line() {
        let poisson = law(5.0, 1e-6).line(1e-4);
        let clumpy = law(5.0, 0.5).line(1e-4);
        assert!((14..=16).contains(&poisson), "{poisson}");
        assert!(clumpy > poisson + 5, "{clumpy} vs {poisson}");
        let (low, high) = law(5.0, 1e-6).interval(0.9);
        assert_eq!((low, high), (2, 9));
    }

    #[test]
    fn one_past_incident_does_not_move_the_expectation() {
        let calm: Vec<f64> = (0..28).map(|d| f64::from(6 + (d % 3))).collect();
        let mut incident = calm.clone();
        incident[5] = 80.0;
        incident[12] = 0.0; // and one day the channel was down
        let a = expect(&calm, &[], 0.02).unwrap();
        let b = expect(&incident, &[], 0.02).unwrap();
        assert!((a.mean - b.mean).abs() < 0.5, "{a:?} {b:?}");
        assert!(b.dispersion < 0.2, "{b:?}");
    }

    #[test]
    fn a_busier_weekday_raises_the_line_and_a_quieter_one_does_not_lower_it() {
        let daily = vec![10.0; 28];
        let monday = expect(&daily, &[20.0, 22.0, 19.0, 60.0], 0.02).unwrap();
        assert_eq!(monday.model, Model::Weekday);
        assert!((monday.mean - 21.0).abs() < 1e-9, "{monday:?}");
        let sunday = expect(&daily, &[3.0, 4.0, 2.0], 0.02).unwrap();
        assert_eq!((sunday.model, sunday.mean), (Model::Daily, 10.0));
        let early = expect(&daily, &[30.0, 30.0], 0.02).unwrap();
        assert_eq!(early.model, Model::Daily, "two weeks are not a weekly pattern yet");
    }

    #[test]
    fn a_weekly_pulse_or_a_floor_above_the_cap_never_panics() {
        // A weekly survey hour: four busy days in 28, nothing otherwise.
        let pulse: Vec<f64> = (0..28).map(|d| if d % 7 == 0 { 20.0 } else { 0.0 }).collect();
        assert!(dispersion(&[&pulse]) > MAX_DISPERSION, "the pooled estimate can exceed the cap");
        for floor in [0.05, MAX_DISPERSION, 6.0] {
            let e = expect(&pulse, &[20.0, 20.0, 20.0, 20.0], floor).unwrap();
            assert!(e.dispersion.is_finite() && e.dispersion <= MAX_DISPERSION + 1.0, "{e:?}");
            assert!(e.upper_tail(60) < 1.0 && e.line(1e-5) > 20, "{e:?}");
        }
    }

    #[test]
    fn a_silent_hour_still_needs_several_mentions() {
        let silent = expect(&[0.0; 14], &[], 0.05).unwrap();
        assert_eq!(silent.mean, MIN_MEAN);
        assert!(silent.line(1e-4) >= 6, "{}", silent.line(1e-4));
        assert!(expect(&[], &[], 0.05).is_none());
    }
}
