package guard

import (
	"math"
	"time"
)

// BackoffConfig is an exponential backoff with jitter (as in grpc-go).
type BackoffConfig struct {
	// Base is the delay before the first retry (attempt 0).
	Base time.Duration
	// Multiplier grows the delay per attempt.
	Multiplier float64
	// Jitter spreads each delay uniformly over ±Jitter of itself (0.2 = ±20%).
	Jitter float64
	// Max caps the delay (after jitter).
	Max time.Duration
}

// DefaultBackoff returns the default backoff: 1 s, ×1.6, ±20%, at most 30 s.
func DefaultBackoff() BackoffConfig {
	return BackoffConfig{Base: time.Second, Multiplier: 1.6, Jitter: 0.2, Max: 30 * time.Second}
}

// Backoff is DefaultBackoff().Delay.
func Backoff(attempt int, rnd float64) time.Duration {
	return DefaultBackoff().Delay(attempt, rnd)
}

// Delay returns the delay before retry number attempt (0 = first retry):
// min(Base×Multiplier^attempt, Max), scaled by 1+Jitter×(2×rnd−1), then
// capped at Max again. rnd is a number in [0, 1) (e.g. rand.Float64());
// with rnd = 0.5 there is no jitter. The result is never negative.
func (c BackoffConfig) Delay(attempt int, rnd float64) time.Duration {
	if attempt < 0 {
		attempt = 0
	}
	if rnd < 0 {
		rnd = 0
	} else if rnd > 1 {
		rnd = 1
	}
	d := float64(c.Base)
	if c.Multiplier > 1 {
		d *= math.Pow(c.Multiplier, float64(attempt))
	}
	if c.Max > 0 && d > float64(c.Max) {
		d = float64(c.Max)
	}
	d *= 1 + c.Jitter*(2*rnd-1)
	if c.Max > 0 && d > float64(c.Max) {
		d = float64(c.Max)
	}
	if d < 0 || math.IsNaN(d) {
		d = 0
	}
	return time.Duration(d)
}
