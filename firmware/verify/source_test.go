package verify_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
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

var (
	oidAKI          = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidCRLNumber    = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidDeltaCRL     = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidFreshestCRL  = asn1.ObjectIdentifier{2, 5, 29, 46}
	oidReasonCode   = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidInvalidity   = asn1.ObjectIdentifier{2, 5, 29, 24}
	oidCertIssuer   = asn1.ObjectIdentifier{2, 5, 29, 29}
	errNoSigner     = errors.New("no pool certificate with the CRL issuer's name verifies the signature")
	errTrailingData = errors.New("trailing data")
)

func parseMemCRL(pool []*x509.Certificate, der []byte) (*memCRL, error) {
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, err
	}
	if len(rl.Raw) != len(der) {
		return nil, errTrailingData
	}
	c := &memCRL{entries: make(map[string]kcrl.Revocation)}
	for _, p := range pool {
		if bytes.Equal(p.RawSubject, rl.RawIssuer) && rl.SignatureAlgorithm != x509.SHA1WithRSA &&
			p.CheckSignature(rl.SignatureAlgorithm, rl.RawTBSRevocationList, rl.Signature) == nil {
			c.signer = p
			break
		}
	}
	if c.signer == nil {
		return nil, errNoSigner
	}
	c.info = kcrl.Info{
		Version: 2, SignatureAlgorithm: rl.SignatureAlgorithm, RawIssuer: rl.RawIssuer,
		ThisUpdate: rl.ThisUpdate, NextUpdate: rl.NextUpdate, Number: rl.Number, AuthorityKeyID: rl.AuthorityKeyId,
		Entries: int64(len(rl.RevokedCertificateEntries)),
	}
	for _, e := range rl.Extensions {
		switch {
		case e.Id.Equal(oidAKI), e.Id.Equal(oidCRLNumber):
		case e.Id.Equal(oidDeltaCRL):
			c.info.BaseNumber = new(big.Int)
			if rest, err := asn1.Unmarshal(e.Value, &c.info.BaseNumber); err != nil || len(rest) > 0 {
				return nil, errors.New("malformed deltaCRLIndicator")
			}
		case e.Id.Equal(oidIDP):
			if c.info.IDP, err = parseTestIDP(e.Value); err != nil {
				return nil, err
			}
			c.scope = string(e.Value)
		case e.Id.Equal(oidFreshestCRL):
			c.info.FreshestCRL = true
		case e.Critical:
			c.info.UnknownCritical = append(c.info.UnknownCritical, e.Id)
		}
	}
	if c.info.BaseNumber != nil && c.info.Number == nil {
		return nil, errors.New("delta CRL without cRLNumber")
	}
	issuer := rl.RawIssuer
	for _, entry := range rl.RevokedCertificateEntries {
		reason, unknown := kcrl.ReasonAbsent, false
		for _, e := range entry.Extensions {
			switch {
			case e.Id.Equal(oidReasonCode):
				var r asn1.Enumerated
				if _, err := asn1.Unmarshal(e.Value, &r); err != nil {
					return nil, errors.New("malformed reasonCode")
				}
				reason = int(r)
			case e.Id.Equal(oidCertIssuer):
				c.info.HasCertificateIssuer = true
				issuer = firstDirectoryName(e.Value)
			case e.Id.Equal(oidInvalidity):
			case e.Critical:
				unknown = true
			}
		}
		if unknown {
			c.info.EntryUnknownCritical++
		}
		c.entries[entryKey(issuer, entry.SerialNumber)] = kcrl.Revocation{Reason: reason, RevokedAt: entry.RevocationTime}
	}
	return c, nil
}

// firstDirectoryName returns the first directoryName of a DER
// GeneralNames, or nil (no directory issuer: the entry matches nothing).
func firstDirectoryName(gns []byte) []byte {
	var seq asn1.RawValue
	if _, err := asn1.Unmarshal(gns, &seq); err != nil {
		return nil
	}
	for in := seq.Bytes; len(in) > 0; {
		var gn asn1.RawValue
		var err error
		if in, err = asn1.Unmarshal(in, &gn); err != nil {
			return nil
		}
		if gn.Class == asn1.ClassContextSpecific && gn.Tag == 4 {
			return gn.Bytes
		}
	}
	return nil
}

// parseTestIDP decodes an issuingDistributionPoint (RFC 5280 §5.2.5) for
// the test double; firmware/crl has the real parser.
func parseTestIDP(value []byte) (*kcrl.IDP, error) {
	var seq asn1.RawValue
	if rest, err := asn1.Unmarshal(value, &seq); err != nil || len(rest) > 0 || seq.Tag != asn1.TagSequence {
		return nil, errors.New("malformed IDP")
	}
	idp := &kcrl.IDP{Raw: value}
	for in := seq.Bytes; len(in) > 0; {
		var f asn1.RawValue
		var err error
		if in, err = asn1.Unmarshal(in, &f); err != nil || f.Class != asn1.ClassContextSpecific {
			return nil, errors.New("malformed IDP field")
		}
		switch f.Tag {
		case 0:
			var choice asn1.RawValue
			if _, err := asn1.Unmarshal(f.Bytes, &choice); err != nil {
				return nil, errors.New("malformed IDP distributionPoint")
			}
			if choice.Tag == 1 {
				idp.RelativeName = append([]byte{0x31}, choice.FullBytes[1:]...)
				continue
			}
			for b := choice.Bytes; len(b) > 0; {
				var gn asn1.RawValue
				if b, err = asn1.Unmarshal(b, &gn); err != nil {
					return nil, errors.New("malformed IDP GeneralName")
				}
				idp.FullName = append(idp.FullName, gn.FullBytes)
			}
		case 3:
			if len(f.Bytes) < 1 {
				return nil, errors.New("malformed onlySomeReasons")
			}
			for i := 0; i < 9 && i/8 < len(f.Bytes)-1; i++ {
				if f.Bytes[1+i/8]&(0x80>>(i%8)) != 0 {
					idp.OnlySomeReasons |= 1 << i
				}
			}
			idp.OnlySomeReasons &= kcrl.AllReasons
		case 1, 2, 4, 5:
			set := len(f.Bytes) == 1 && f.Bytes[0] == 0xFF
			switch f.Tag {
			case 1:
				idp.OnlyUser = set
			case 2:
				idp.OnlyCA = set
			case 4:
				idp.Indirect = set
			case 5:
				idp.OnlyAttr = set
			}
		default:
			return nil, errors.New("unknown IDP field")
		}
	}
	return idp, nil
}
