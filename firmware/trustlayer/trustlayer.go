// Package trustlayer is what judges certificates on a kiosk: the trusted
// clock (firmware/trustclock), the revocation store kept current while
// taps run (firmware/revocation) and one verifier per JPKI purpose
// (firmware/verify), each with its own anchors, so a signature
// certificate never chains in the authentication verifier. The daemon
// only fills in Options; tests drive the same layer with injected clocks.
package trustlayer

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/kazashi/kazashi/firmware/revocation"
	"github.com/kazashi/kazashi/firmware/tap"
	"github.com/kazashi/kazashi/firmware/trustclock"
	"github.com/kazashi/kazashi/firmware/verify"
)

// Options configure a Layer.
type Options struct {
	// ClockState is the trusted clock's state file.
	ClockState string
	// System and Mono are the wall clock and the monotonic time since
	// start (time.Now and time.Since(start) in the daemon); Synced tells
	// whether the system reports NTP synchronisation (optional).
	System           func() time.Time
	Mono             func() time.Duration
	Synced           func() bool
	MaxUnsyncedAhead time.Duration

	// IndexDir is the revocation store; CRLFiles are imported when they
	// change (a directory stands for its *.crl files); Poll is the check
	// interval of Run.
	IndexDir string
	CRLFiles []string
	Poll     time.Duration
	// Grace lets a CRL past nextUpdate judge for this long (0: fail closed).
	Grace time.Duration

	AuthAnchors []*x509.Certificate
	// SignAnchors, when non-empty, enable VerifyJPKISign.
	SignAnchors []*x509.Certificate
	AllowTest   bool
	Logger      *slog.Logger
}

// Layer implements tap.Verifier. Safe for concurrent use.
type Layer struct {
	clock      *trustclock.Clock
	store      *revocation.Store
	watch      *revocation.Watch
	auth, sign *verify.Verifier
	log        *slog.Logger
}

var _ tap.Verifier = (*Layer)(nil)

// Open opens the clock and the store (mapping the indexes, parsing no
// CRL), imports the CRL files that changed since the last run and builds
// the verifiers. It fails only when no revocation data is usable at all;
// a CRL refused next to usable data is logged and shown in Status while
// the previous data keeps serving.
func Open(ctx context.Context, o Options) (*Layer, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clock, err := trustclock.Open(trustclock.Options{
		Path: o.ClockState, System: o.System, Mono: o.Mono, Synced: o.Synced, MaxUnsyncedAhead: o.MaxUnsyncedAhead,
	})
	if err != nil {
		return nil, err
	}
	store, err := revocation.Open(ctx, o.IndexDir, revocation.Options{Logger: log, Now: clock.Time})
	if err != nil {
		return nil, err
	}
	l := &Layer{clock: clock, store: store, log: log}
	l.raise(ctx, store.Newest(), "crl-index")
	l.watch = &revocation.Watch{
		Store:    store,
		Files:    o.CRLFiles,
		Signers:  slices.Concat(o.AuthAnchors, o.SignAnchors),
		Interval: o.Poll,
		OnImport: func(ctx context.Context, r *revocation.Result) { l.raise(ctx, r.Info.ThisUpdate, "crl-thisUpdate") },
		Logger:   log,
	}
	if err := l.watch.Sync(ctx); err != nil {
		if len(store.Status().Series) == 0 {
			store.Close()
			return nil, fmt.Errorf("no usable revocation data: %w", err)
		}
		log.Error("some CRLs were refused; the previous revocation data stays in use", "err", err)
	}
	mk := func(p verify.Purpose, a []*x509.Certificate) (*verify.Verifier, error) {
		v, err := verify.New(verify.Options{Anchors: a, Revocation: store, Now: clock.Time,
			Grace: o.Grace, AllowTest: o.AllowTest, Purpose: p})
		if err != nil {
			return nil, fmt.Errorf("%s verifier: %w", p, err)
		}
		return v, nil
	}
	if l.auth, err = mk(verify.PurposeAuth, o.AuthAnchors); err != nil {
		store.Close()
		return nil, err
	}
	if len(o.SignAnchors) > 0 {
		if l.sign, err = mk(verify.PurposeSign, o.SignAnchors); err != nil {
			store.Close()
			return nil, err
		}
	}
	return l, nil
}

// raise lifts the trusted clock to a verified CRL's thisUpdate: the CA
// signed that time, so it has passed.
func (l *Layer) raise(ctx context.Context, at time.Time, source string) {
	if at.IsZero() {
		return
	}
	if err := l.clock.Raise(ctx, at, source); err != nil {
		l.log.Error("trusted clock raised but not persisted", "err", err)
	}
}

// Run keeps the clock persisted and the revocation data current until ctx
// ends; every value on trigger (SIGHUP) re-checks at once.
func (l *Layer) Run(ctx context.Context, trigger <-chan struct{}) {
	done := make(chan struct{})
	go func() { _ = l.clock.Run(ctx); close(done) }()
	_ = l.watch.Run(ctx, trigger)
	<-done
}

// Sync re-checks the CRL files and the store directory now.
func (l *Layer) Sync(ctx context.Context) error { return l.watch.Sync(ctx) }

// Import checks one CRL from r and, if it passes, swaps it in while taps
// run; the fleet update path calls it with pushed CRL bytes.
func (l *Layer) Import(ctx context.Context, r io.Reader) (*revocation.Result, error) {
	res, err := l.store.Import(ctx, r, l.watch.Signers, nil)
	if err != nil {
		return nil, err
	}
	if !res.Unchanged {
		l.raise(ctx, res.Info.ThisUpdate, "crl-thisUpdate")
	}
	return res, nil
}

// Close persists the clock and unmaps the indexes.
func (l *Layer) Close() error {
	if err := l.clock.Persist(context.Background()); err != nil {
		l.log.Error("trusted clock not persisted at shutdown", "err", err)
	}
	return l.store.Close()
}

// Status is the layer's part of the daemon status.
type Status struct {
	// Schema is StatusSchema (gateway/schema validates it).
	Schema     string             `json:"schema"`
	Clock      trustclock.Reading `json:"clock"`
	Revocation revocation.Status  `json:"revocation"`
	// AgeS is the age of the newest loaded CRL in seconds (nil: none).
	AgeS *int64 `json:"revocation_age_s,omitempty"`
}

// StatusSchema versions the Status document, published retained on the
// device's status/revocation topic.
const StatusSchema = "kazashi.revocation-status/v1"

// Status reports the clock and the revocation store.
func (l *Layer) Status() Status {
	st := Status{Schema: StatusSchema, Clock: l.clock.Now(), Revocation: l.store.Status()}
	if age, ok := l.RevocationAge(st.Clock.Time); ok {
		s := int64(age / time.Second)
		st.AgeS = &s
	}
	return st
}

// EventClock stamps events with the trusted time (tap.Pipeline.Clock).
func (l *Layer) EventClock() (time.Time, bool) {
	r := l.clock.Now()
	return r.Time, r.Believed
}

// RevocationAge is the age of the newest loaded CRL at now.
func (l *Layer) RevocationAge(now time.Time) (time.Duration, bool) {
	n := l.store.Newest()
	if n.IsZero() {
		return 0, false
	}
	return now.Sub(n), true
}

func verdict(r verify.Result) tap.Verdict {
	v := tap.Verdict{Reason: string(r.Reason), Detail: r.Detail, Chained: r.Chained()}
	if r.CRLNumber != nil {
		v.RevocationAge, v.RevocationKnown, v.RevocationStale = r.CRLAge, true, r.StaleGrace
	}
	return v
}

// Verify checks a certificate of the purpose and returns the full result.
func (l *Layer) Verify(ctx context.Context, p verify.Purpose, der []byte) (verify.Result, bool) {
	v := l.auth
	if p == verify.PurposeSign {
		v = l.sign
	}
	if v == nil {
		return verify.Result{}, false
	}
	return v.Verify(ctx, der), true
}

// VerifyJPKIAuth implements tap.Verifier.
func (l *Layer) VerifyJPKIAuth(ctx context.Context, der []byte) tap.Verdict {
	r, _ := l.Verify(ctx, verify.PurposeAuth, der)
	return verdict(r)
}

// VerifyJPKISign implements tap.Verifier.
func (l *Layer) VerifyJPKISign(ctx context.Context, der []byte) tap.Verdict {
	r, ok := l.Verify(ctx, verify.PurposeSign, der)
	if !ok {
		return tap.Verdict{Reason: string(verify.ReasonCRLUnavailable), Detail: "no signature verifier configured for this profile"}
	}
	return verdict(r)
}

// Report publishes the Status as JSON through publish: at once, whenever
// the revocation part changes (checked every second), and at least every
// interval, until ctx ends. The daemon retains it on
// <prefix>/<device>/status/revocation. Publish errors are logged and
// retried at the next round.
func (l *Layer) Report(ctx context.Context, interval time.Duration, publish func(ctx context.Context, payload []byte) error) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last []byte
	var sent time.Time
	for {
		st := l.Status()
		rev, _ := json.Marshal(st.Revocation)
		if !bytes.Equal(rev, last) || time.Since(sent) >= interval {
			b, err := json.Marshal(st)
			if err == nil {
				err = publish(ctx, b)
			}
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				l.log.Warn("revocation status not published", "err", err)
			} else {
				last, sent = rev, time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
