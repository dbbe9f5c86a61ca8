// Package backoff is the project's one retry-delay policy: exponential
// growth from Initial to Max with "full jitter" (each delay is uniform in
// [d/2, d]), so that thousands of kiosks reconnecting after a broker
// restart do not arrive in lockstep (AWS Architecture Blog, "Exponential
// Backoff And Jitter", 2015, compares the variants).
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy describes the delays. The zero value is not usable: set Initial
// and Max.
type Policy struct {
	Initial time.Duration // first delay (before jitter)
	Max     time.Duration // cap (before jitter)
	// Rand returns a value in [0, 1); nil uses math/rand/v2. Tests inject
	// a fixed one.
	Rand func() float64
}

// Backoff is one retry sequence; not safe for concurrent use.
type Backoff struct {
	p    Policy
	next time.Duration
}

// New starts a sequence.
func (p Policy) New() *Backoff { return &Backoff{p: p, next: p.Initial} }

// Next returns the next delay and doubles the base up to Max.
func (b *Backoff) Next() time.Duration {
	d := b.next
	b.next = min(b.next*2, b.p.Max)
	r := b.p.Rand
	if r == nil {
		r = rand.Float64
	}
	return d/2 + time.Duration(r()*float64(d-d/2))
}

// Reset starts over from Initial (after a success).
func (b *Backoff) Reset() { b.next = b.p.Initial }

// Wait sleeps for the next delay or until ctx ends; it returns ctx.Err()
// if ctx ended first.
func (b *Backoff) Wait(ctx context.Context) error {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
