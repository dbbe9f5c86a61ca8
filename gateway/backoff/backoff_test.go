package backoff

import (
	"context"
	"testing"
	"time"
)

func TestGrowthCapAndJitterBounds(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999999} {
		b := Policy{Initial: 100 * time.Millisecond, Max: time.Second, Rand: func() float64 { return r }}.New()
		bases := []time.Duration{100, 200, 400, 800, 1000, 1000}
		for i, base := range bases {
			base *= time.Millisecond
			d := b.Next()
			lo, hi := base/2, base
			if d < lo || d > hi {
				t.Fatalf("r=%v step %d: %v outside [%v, %v]", r, i, d, lo, hi)
			}
			if want := base/2 + time.Duration(r*float64(base-base/2)); d != want {
				t.Fatalf("r=%v step %d: %v, want %v", r, i, d, want)
			}
		}
		b.Reset()
		if d := b.Next(); d > 100*time.Millisecond {
			t.Fatalf("after Reset: %v, want ≤ Initial", d)
		}
	}
}

func TestJitterSpreads(t *testing.T) {
	p := Policy{Initial: time.Second, Max: time.Second}
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[p.New().Next()] = true
	}
	if len(seen) < 40 {
		t.Fatalf("%d distinct first delays of 50: kiosks would retry in lockstep", len(seen))
	}
}

func TestWaitHonoursContext(t *testing.T) {
	b := Policy{Initial: time.Hour, Max: time.Hour}.New()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := b.Wait(ctx); err != context.Canceled {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("Wait slept despite a cancelled context")
	}
	if err := (Policy{Initial: time.Millisecond, Max: time.Millisecond}).New().Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}
