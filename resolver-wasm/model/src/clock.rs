//! Hybrid logical clocks (Kulkarni et al.): physical milliseconds plus a logical counter, so
//! stamps follow causality even when region clocks drift, and stay close to wall time.

use policy_types::Hlc;

/// One region's clock.
#[derive(Clone, Debug)]
pub struct HlcClock {
    region: String,
    wall_ms: u64,
    logical: u32,
}

impl HlcClock {
    pub fn new(region: impl Into<String>) -> Self {
        HlcClock {
            region: region.into(),
            wall_ms: 0,
            logical: 0,
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// A stamp for a local write at physical time `physical_ms`.
    pub fn now(&mut self, physical_ms: u64) -> Hlc {
        if physical_ms > self.wall_ms {
            self.wall_ms = physical_ms;
            self.logical = 0;
        } else {
            self.logical += 1;
        }
        Hlc::new(self.wall_ms, self.logical, self.region.clone())
    }

    /// Moves the clock past a stamp this region has seen (replicated or read), so that its next
    /// write is stamped after it.
    pub fn observe(&mut self, seen: &Hlc, physical_ms: u64) {
        let wall = self.wall_ms.max(seen.wall_ms).max(physical_ms);
        self.logical = if wall == self.wall_ms && wall == seen.wall_ms {
            self.logical.max(seen.logical)
        } else if wall == self.wall_ms {
            self.logical
        } else if wall == seen.wall_ms {
            seen.logical
        } else {
            0
        };
        self.wall_ms = wall;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_increase_and_follow_what_was_seen() {
        let mut eu = HlcClock::new("eu");
        let a = eu.now(100);
        let b = eu.now(100);
        assert!(b > a);
        let mut na = HlcClock::new("na");
        // NA's physical clock is behind; after seeing EU's stamp its next write still follows it.
        na.observe(&b, 50);
        let c = na.now(50);
        assert!(c > b, "{c} must follow {b}");
        assert_eq!(c.wall_ms, 100);
    }
}
