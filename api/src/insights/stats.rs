//! The statistics every insight figure carries: sample size, a 95% margin of error and
//! the interval it spans, and whether the sample is too small to trust.
//!
//! The database computes counts, sums and sums of squares (and order statistics for
//! percentiles); this module turns them into estimates. Margins are normal
//! approximations (z = 1.96): Wald for proportions, `s / √n` for means, and for NPS
//! the variance of the promoter − detractor difference of a multinomial sample,
//! `(p + d − (p − d)²) / n`, which is larger than either share's own variance would
//! suggest. Small samples are flagged (`low_sample`) rather than hidden.

/// The 97.5th percentile of the standard normal distribution.
pub const Z95: f64 = 1.959_963_984_540_054;

/// One figure with its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Estimate {
    /// None when there is no data.
    pub value: Option<f64>,
    pub sample_size: i64,
    /// Half-width of the 95% interval.
    pub margin: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

impl Estimate {
    /// An estimate with a symmetric interval.
    fn symmetric(value: f64, margin: f64, n: i64) -> Self {
        Estimate {
            value: Some(value),
            sample_size: n,
            margin: Some(margin),
            low: Some(value - margin),
            high: Some(value + margin),
        }
    }

    /// No data.
    pub fn empty(n: i64) -> Self {
        Estimate { sample_size: n, ..Default::default() }
    }

    /// Whether the sample is below `min` (too small to trust).
    pub fn low_sample(&self, min: i64) -> bool {
        self.sample_size < min
    }
}

/// A share in percent (0–100): `hits` out of `n`.
pub fn percent(hits: i64, n: i64) -> Estimate {
    if n <= 0 {
        return Estimate::empty(0);
    }
    let p = hits as f64 / n as f64;
    let margin = Z95 * (p * (1.0 - p) / n as f64).sqrt();
    Estimate::symmetric(100.0 * p, 100.0 * margin, n)
}

/// Net Promoter Score (−100…100) with the margin of the promoter − detractor difference.
pub fn nps(promoters: i64, passives: i64, detractors: i64) -> Estimate {
    let n = promoters + passives + detractors;
    if n <= 0 {
        return Estimate::empty(0);
    }
    let (p, d) = (promoters as f64 / n as f64, detractors as f64 / n as f64);
    let variance = (p + d - (p - d).powi(2)) / n as f64;
    Estimate::symmetric(100.0 * (p - d), 100.0 * Z95 * variance.max(0.0).sqrt(), n)
}

/// A mean from the count, sum and sum of squares (sample standard deviation).
pub fn mean(n: i64, sum: f64, sum_sq: f64) -> Estimate {
    if n <= 0 {
        return Estimate::empty(0);
    }
    let nf = n as f64;
    let value = sum / nf;
    if n < 2 {
        return Estimate { value: Some(value), sample_size: n, ..Default::default() };
    }
    let variance = ((sum_sq - sum * sum / nf) / (nf - 1.0)).max(0.0);
    Estimate::symmetric(value, Z95 * (variance / nf).sqrt(), n)
}

/// A percentile with its distribution-free interval (order statistics the database
/// picked at ranks `n·q ± z·√(n·q·(1−q))`); the margin is half the interval's width.
pub fn percentile(n: i64, value: Option<f64>, low: Option<f64>, high: Option<f64>) -> Estimate {
    let margin = match (low, high) {
        (Some(l), Some(h)) => Some((h - l) / 2.0),
        _ => None,
    };
    Estimate { value, sample_size: n, margin, low, high }
}

/// The squared half-width, in ranks, of a percentile's interval: `z²·n·q(1−q)` is
/// compared in SQL with `(rank − n·q)²`, so no square root is needed there.
pub fn rank_band_sq(q: f64) -> f64 {
    Z95 * Z95 * q * (1.0 - q)
}

/// The difference of two independent estimates (e.g. NPS with vs without a topic).
pub fn difference(a: &Estimate, b: &Estimate) -> Estimate {
    match (a.value, b.value) {
        (Some(x), Some(y)) => {
            let margin = match (a.margin, b.margin) {
                (Some(m1), Some(m2)) => Some((m1 * m1 + m2 * m2).sqrt()),
                _ => None,
            };
            let value = x - y;
            Estimate {
                value: Some(value),
                sample_size: a.sample_size.min(b.sample_size),
                margin,
                low: margin.map(|m| value - m),
                high: margin.map(|m| value + m),
            }
        }
        _ => Estimate::empty(a.sample_size.min(b.sample_size)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn nps_margin_uses_the_variance_of_the_difference() {
        // 50 promoters, 30 passives, 20 detractors: NPS 30.
        let e = nps(50, 30, 20);
        assert!(close(e.value.unwrap(), 30.0));
        // p = .5, d = .2: variance (.5 + .2 − .09) / 100 = .0061.
        assert!(close(e.margin.unwrap(), 100.0 * Z95 * 0.0061_f64.sqrt()), "{e:?}");
        assert_eq!(e.sample_size, 100);
        assert!(nps(0, 0, 0).value.is_none());
    }

    #[test]
    fn proportions_and_means() {
        let e = percent(30, 40);
        assert!(close(e.value.unwrap(), 75.0));
        assert!(close(e.margin.unwrap(), 100.0 * Z95 * (0.75 * 0.25 / 40.0_f64).sqrt()));
        // 1, 2, 3, 4, 5: mean 3, sample variance 2.5.
        let m = mean(5, 15.0, 55.0);
        assert!(close(m.value.unwrap(), 3.0));
        assert!(close(m.margin.unwrap(), Z95 * (2.5_f64 / 5.0).sqrt()));
        assert!(mean(1, 4.0, 16.0).margin.is_none(), "one answer has no spread");
        assert!(percent(1, 3).low_sample(30));
    }

    #[test]
    fn differences_add_variances() {
        let d = difference(&Estimate::symmetric(40.0, 3.0, 10), &Estimate::symmetric(10.0, 4.0, 20));
        assert!(close(d.value.unwrap(), 30.0));
        assert!(close(d.margin.unwrap(), 5.0));
    }
}
