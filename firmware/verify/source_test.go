package verify_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync/atomic"
	"testing"

	kcrl "github.com/kazashi/kazashi/firmware/crl"
)

// memSource is a TEST-ONLY kcrl.Source: CRLs parsed with
// x509.ParseRevocationList, each bound to the first pool certificate whose
// name and key verify it, deltas merged into their base. It implements
// what the verifier relies on (certificateIssuer-partitioned lookup,
// complete+delta merge) and nothing else; firmware/revocation is the real
// store.
type memSource struct {
	cur      atomic.Pointer[memSnap]
	taken    atomic.Int64
	released atomic.Int64
}

type memSnap struct {
	byIssuer map[string][]kcrl.Usable
	refused  []error // CRLs the store would not have imported
}

// snapView is one Snapshot of a memSource.
type snapView struct {
	s    *memSnap
	src  *memSource
	done atomic.Bool
}

func (v *snapView) ByIssuer(name []byte) []kcrl.Usable {
	if v.done.Load() {
		panic("memSource: ByIssuer after Release")
	}
	return v.s.byIssuer[string(name)]
}

func (v *snapView) Release() {
	if v.done.Swap(true) {
		panic("memSource: Release twice")
	}
	v.src.released.Add(1)
}

func (s *memSource) Snapshot() kcrl.Snapshot {
	s.taken.Add(1)
	return &snapView{s: s.cur.Load(), src: s}
}

// memCRL is one usable CRL of a memSource.
type memCRL struct {
	info    kcrl.Info
	signer  *x509.Certificate
	scope   string                     // IDP value, "" without
	entries map[string]kcrl.Revocation // by entryKey
}

func (c *memCRL) Info() *kcrl.Info          { return &c.info }
func (c *memCRL) Signer() *x509.Certificate { return c.signer }
func (c *memCRL) Lookup(ctx context.Context, certIssuer []byte, serial *big.Int) (kcrl.Revocation, bool, error) {
	if err := ctx.Err(); err != nil {
		return kcrl.Revocation{}, false, err
	}
	r, ok := c.entries[entryKey(certIssuer, serial)]
	return r, ok, nil
}

func entryKey(issuer []byte, serial *big.Int) string {
	sign := "+"
	if serial.Sign() < 0 {
		sign = "-"
	}
	return string(issuer) + "\x00" + sign + string(serial.Bytes())
}

// newMemSource builds a source from DER CRLs; pool holds the candidate
// signers. CRLs no pool certificate signed, or that do not parse, are
// left out (and recorded in refused), as a store would refuse them.
func newMemSource(tb testing.TB, pool []*x509.Certificate, ders ...[]byte) *memSource {
	if tb != nil {
		tb.Helper()
	}
	s := &memSource{}
	s.cur.Store(buildSnap(pool, ders))
	return s
}

// swap replaces the source's CRLs; snapshots already taken keep theirs.
func (s *memSource) swap(pool []*x509.Certificate, ders ...[]byte) {
	s.cur.Store(buildSnap(pool, ders))
}

func (s *memSource) refused() []error { return s.cur.Load().refused }

func buildSnap(pool []*x509.Certificate, ders [][]byte) *memSnap {
	snap := &memSnap{byIssuer: make(map[string][]kcrl.Usable)}
	var complete, deltas []*memCRL
	for i, der := range ders {
		c, err := parseMemCRL(pool, der)
		if err != nil {
			snap.refused = append(snap.refused, fmt.Errorf("CRL %d: %w", i, err))
			continue
		}
		if c.info.BaseNumber != nil {
			deltas = append(deltas, c)
		} else {
			complete = append(complete, c)
		}
	}
	for _, base := range complete {
		// The newest delta of this issuer and scope that applies to base
		// (RFC 5280 §5.2.4: base cRLNumber ≥ the delta's BaseCRLNumber).
		var delta *memCRL
		for _, d := range deltas {
			if !bytes.Equal(d.info.RawIssuer, base.info.RawIssuer) || d.scope != base.scope ||
				base.info.Number == nil || base.info.Number.Cmp(d.info.BaseNumber) < 0 {
				continue
			}
			if delta == nil || d.info.Number.Cmp(delta.info.Number) > 0 {
				delta = d
			}
		}
		if delta != nil {
			base = merge(base, delta)
		}
		snap.byIssuer[string(base.info.RawIssuer)] = append(snap.byIssuer[string(base.info.RawIssuer)], base)
	}
	return snap
}

// merge applies delta to a copy of base: new entries added or replaced,
// removeFromCRL entries removed; number and times are the delta's.
func merge(base, delta *memCRL) *memCRL {
	m := &memCRL{info: base.info, signer: base.signer, scope: base.scope, entries: make(map[string]kcrl.Revocation, len(base.entries))}
	for k, r := range base.entries {
		m.entries[k] = r
	}
	for k, r := range delta.entries {
		if r.Reason == kcrl.ReasonRemoveFromCRL {
			delete(m.entries, k)
		} else {
			m.entries[k] = r
		}
	}
	m.info.Number, m.info.ThisUpdate, m.info.NextUpdate = delta.info.Number, delta.info.ThisUpdate, delta.info.NextUpdate
	m.info.UnknownCritical = append(slices.Clone(base.info.UnknownCritical), delta.info.UnknownCritical...)
	m.info.EntryUnknownCritical += delta.info.EntryUnknownCritical
	m.info.HasCertificateIssuer = base.info.HasCertificateIssuer || delta.info.HasCertificateIssuer
	m.info.Entries = int64(len(m.entries))
	return m
}

var errNoSigner = errors.New("no pool certificate with the CRL issuer's name verifies the signature")

func parseMemCRL(pool []*x509.Certificate, der []byte) (*memCRL, error) {
	// The double reads CRLs with the real streaming parser (its own tests
	// compare it with crypto/x509) and keeps the entries in a map.
	c := &memCRL{entries: make(map[string]kcrl.Revocation)}
	type listed struct {
		issuer []byte // nil: the CRL issuer
		serial *big.Int
		r      kcrl.Revocation
	}
	var all []listed
	var issuer []byte
	p, err := kcrl.Parse(context.Background(), bytes.NewReader(der), func(e *kcrl.Entry) error {
		switch {
		case e.CertificateIssuer != nil:
			issuer = bytes.Clone(e.CertificateIssuer)
		case e.NonDirectoryIssuer:
			issuer = []byte("not a directory name: matches no certificate")
		}
		serial := new(big.Int).SetBytes(e.Serial)
		if e.Negative {
			serial.Neg(serial)
		}
		all = append(all, listed{issuer, serial, kcrl.Revocation{Reason: e.Reason, RevokedAt: e.RevokedAt}})
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, l := range all {
		if l.issuer == nil {
			l.issuer = p.RawIssuer
		}
		c.entries[entryKey(l.issuer, l.serial)] = l.r
	}
	for _, cand := range pool {
		if bytes.Equal(cand.RawSubject, p.RawIssuer) && p.CheckSignature(cand.PublicKey) == nil {
			c.signer = cand
			break
		}
	}
	if c.signer == nil {
		return nil, errNoSigner
	}
	c.info = p.Info
	if p.IDP != nil {
		c.scope = string(p.IDP.Raw)
	}
	if c.info.BaseNumber != nil && c.info.Number == nil {
		return nil, errors.New("delta CRL without cRLNumber")
	}
	return c, nil
}
