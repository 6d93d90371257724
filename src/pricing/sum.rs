//! Costs summed exactly: in whole nano-dollars, so that any order of adding gives the same sum.

/// A sum of costs in whole nano-dollars.
///
/// Doubles added in another order can differ in their last bit, and a total that falls on a
/// half cent then prints differently; integers do not. Each cost is rounded to the nano-dollar
/// (half away from zero) before it is added, which is how the SQL store sums its `cost_usd`
/// column too: a report over the JSONL files and the same report computed by a database
/// print the same figures.
///
/// ```
/// use tracing_llm_usage::pricing::CostSum;
///
/// let mut a = CostSum::default();
/// let mut b = CostSum::default();
/// for c in [0.1, 0.2, 0.3] {
///     a.add(c);
/// }
/// for c in [0.3, 0.2, 0.1] {
///     b.add(c);
/// }
/// assert_eq!(a, b);
/// assert_eq!(a.usd(), 0.6);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CostSum(i64);

impl CostSum {
    /// A sum of `nanos` nano-dollars.
    #[must_use]
    pub const fn from_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    /// `usd` in nano-dollars: `floor(|usd| × 10⁹ + 0.5)`, with the sign of `usd` (in double
    /// precision, as the store's SQL computes it), saturating at the ends of `i64`.
    #[must_use]
    pub fn nanos_of(usd: f64) -> i64 {
        // `as` saturates, and a NaN becomes 0.
        let n = (usd.abs() * 1e9 + 0.5).floor() as i64;
        if usd < 0.0 {
            -n
        } else {
            n
        }
    }

    /// Adds the cost `usd`.
    pub fn add(&mut self, usd: f64) {
        self.0 = self.0.saturating_add(Self::nanos_of(usd));
    }

    /// Adds another sum.
    pub fn merge(&mut self, other: CostSum) {
        self.0 = self.0.saturating_add(other.0);
    }

    /// The sum in nano-dollars.
    #[must_use]
    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// The sum in US dollars.
    #[must_use]
    pub fn usd(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

#[cfg(test)]
mod tests {
    use super::CostSum;

    #[test]
    fn rounds_half_away_from_zero_and_saturates() {
        assert_eq!(CostSum::nanos_of(0.000_000_001_5), 2);
        assert_eq!(CostSum::nanos_of(-0.000_000_001_5), -2);
        assert_eq!(CostSum::nanos_of(0.283_65), 283_650_000);
        assert_eq!(CostSum::nanos_of(f64::NAN), 0);
        let mut s = CostSum::from_nanos(i64::MAX - 1);
        s.add(1.0);
        assert_eq!(s.nanos(), i64::MAX);
    }
}
