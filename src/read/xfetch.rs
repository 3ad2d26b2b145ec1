//! Early refresh, the XFetch rule of Vattani, Chierichetti and Lowenstein
//! ("Optimal Probabilistic Cache Stampede Prevention", VLDB 2015).
//!
//! Each entry records how long its fetch took (δ, `fetch_ms`). A read
//! refreshes the entry ahead of its expiry when
//!
//! ```text
//! now − β · δ · ln(r) ≥ expiry,    r uniform in (0, 1]
//! ```
//!
//! Since `−ln(r)` is exponentially distributed, a read at `gap = expiry − now`
//! before the expiry refreshes with probability `exp(−gap / (β·δ))`: almost
//! never far from the expiry, more and more often as it nears, so that one
//! reader refreshes a busy entry a little early instead of every reader at
//! once when it expires. Entries that took longer to fetch are refreshed
//! earlier; β > 1 favours earlier refreshes, β < 1 later ones, β = 0 turns
//! early refresh off. An entry with δ = 0 (the warm stages do not time single
//! entries) is never refreshed early.

use rand::{Rng, RngExt};

/// The early-refresh rule with its β.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyRefresh {
    beta: f64,
}

impl Default for EarlyRefresh {
    /// β = 1, the paper's recommended default.
    fn default() -> Self {
        EarlyRefresh { beta: 1.0 }
    }
}

impl EarlyRefresh {
    /// The rule with this β; a negative or non-finite β counts as 0 (never
    /// refresh early).
    pub fn new(beta: f64) -> EarlyRefresh {
        let beta = if beta.is_finite() && beta > 0.0 {
            beta
        } else {
            0.0
        };
        EarlyRefresh { beta }
    }

    /// β.
    pub fn beta(self) -> f64 {
        self.beta
    }

    /// Whether a read at `now_ms` of an entry expiring at `expires_at_ms`
    /// whose fetch took `fetch_ms` refreshes it, given the uniform draw `r`
    /// in (0, 1]: `now − β·δ·ln(r) ≥ expiry`. Always true at or past the
    /// expiry.
    pub fn is_due_for(self, now_ms: i64, expires_at_ms: i64, fetch_ms: i64, r: f64) -> bool {
        if now_ms >= expires_at_ms {
            return true;
        }
        let delta = fetch_ms.max(0) as f64;
        // r is in (0, 1], so ln(r) ≤ 0 and the term pushes `now` forward.
        let r = r.clamp(f64::MIN_POSITIVE, 1.0);
        now_ms as f64 - self.beta * delta * r.ln() >= expires_at_ms as f64
    }

    /// [`Self::is_due_for`] with `r` drawn from `rng`.
    pub fn is_due<R: Rng + ?Sized>(
        self,
        now_ms: i64,
        expires_at_ms: i64,
        fetch_ms: i64,
        rng: &mut R,
    ) -> bool {
        // `random::<f64>()` is uniform in [0, 1); its complement is in (0, 1].
        let r = 1.0 - rng.random::<f64>();
        self.is_due_for(now_ms, expires_at_ms, fetch_ms, r)
    }

    /// The probability that a read at `now_ms` refreshes:
    /// `exp(−(expiry − now) / (β·δ))` before the expiry, 1 from it on.
    pub fn probability(self, now_ms: i64, expires_at_ms: i64, fetch_ms: i64) -> f64 {
        if now_ms >= expires_at_ms {
            return 1.0;
        }
        let scale = self.beta * fetch_ms.max(0) as f64;
        if scale <= 0.0 {
            return 0.0;
        }
        (-(expires_at_ms.saturating_sub(now_ms) as f64) / scale).exp()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    /// The share of `draws` reads at `gap` ms before the expiry that refresh.
    fn observed(rule: EarlyRefresh, gap: i64, fetch_ms: i64, rng: &mut StdRng) -> f64 {
        const DRAWS: u32 = 20_000;
        let expiry = 1_000_000;
        let due = (0..DRAWS)
            .filter(|_| rule.is_due(expiry - gap, expiry, fetch_ms, rng))
            .count();
        due as f64 / f64::from(DRAWS)
    }

    #[test]
    fn refresh_probability_rises_towards_expiry_as_the_formula_says() {
        let mut rng = StdRng::seed_from_u64(2015);
        let rule = EarlyRefresh::default();
        let delta = 400;
        let mut previous = -1.0;
        // From 4·δ before the expiry to the expiry itself.
        for gap in [1600, 1200, 800, 400, 200, 100, 0] {
            let seen = observed(rule, gap, delta, &mut rng);
            let expected = rule.probability(1_000_000 - gap, 1_000_000, delta);
            assert!(
                (seen - expected).abs() < 0.015,
                "gap {gap} ms: observed {seen}, formula {expected}"
            );
            assert!(
                seen > previous,
                "not rising at gap {gap}: {seen} after {previous}"
            );
            previous = seen;
        }
        assert_eq!(previous, 1.0, "at the expiry every read refreshes");
    }

    #[test]
    fn a_larger_beta_or_a_slower_fetch_refreshes_earlier() {
        let mut rng = StdRng::seed_from_u64(7);
        let gap = 1000;
        let base = observed(EarlyRefresh::new(1.0), gap, 500, &mut rng);
        let beta2 = observed(EarlyRefresh::new(2.0), gap, 500, &mut rng);
        let slow = observed(EarlyRefresh::new(1.0), gap, 1000, &mut rng);
        assert!((base - (-2.0f64).exp()).abs() < 0.015, "{base}");
        assert!((beta2 - (-1.0f64).exp()).abs() < 0.015, "{beta2}");
        assert!(
            (slow - beta2).abs() < 0.02,
            "β·δ is what counts: {slow} vs {beta2}"
        );
    }

    #[test]
    fn the_rule_is_the_papers_inequality() {
        let rule = EarlyRefresh::new(1.0);
        // r = e^-1: now + δ ≥ expiry exactly when the gap is at most δ.
        let r = (-1.0f64).exp();
        assert!(rule.is_due_for(900, 1000, 100, r));
        assert!(!rule.is_due_for(899, 1000, 100, r));
        // r = 1 never refreshes early; past the expiry always refreshes.
        assert!(!rule.is_due_for(999, 1000, 100, 1.0));
        assert!(rule.is_due_for(1000, 1000, 0, 1.0));
    }

    #[test]
    fn beta_zero_or_an_untimed_entry_never_refreshes_early() {
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(observed(EarlyRefresh::new(0.0), 1, 1000, &mut rng), 0.0);
        assert_eq!(observed(EarlyRefresh::new(-3.0), 1, 1000, &mut rng), 0.0);
        assert_eq!(observed(EarlyRefresh::default(), 1, 0, &mut rng), 0.0);
        assert_eq!(EarlyRefresh::new(f64::NAN).beta(), 0.0);
    }
}
