package verify

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// crlSet is an immutable set of checked CRLs; Verifier swaps it whole.
type crlSet struct {
	byAnchor         map[*anchor][]*crl // newest CRL per scope
	newestThisUpdate time.Time
}

// crl is one checked CRL, bound to the anchor that signed it.
type crl struct {
	input      int // position in the ReplaceCRLs argument, for messages
	anchor     *anchor
	number     *big.Int // nil when the CRL has no cRLNumber
	thisUpdate time.Time
	nextUpdate time.Time
	scope      scope
	revoked    revocationIndex
}

// revocationIndex answers whether a serial is listed in one checked CRL.
// The in-memory map is enough for now; an on-disk sorted index for
// multi-million-entry CRLs will implement the same interface, hence the
// context and error.
type revocationIndex interface {
	lookup(ctx context.Context, serial *big.Int) (revocation, bool, error)
}

type revocation struct {
	reason int // RFC 5280 §5.3.1 CRLReason
	at     time.Time
}

// memIndex keys entries by serialKey.
type memIndex map[string]revocation

func (m memIndex) lookup(_ context.Context, serial *big.Int) (revocation, bool, error) {
	r, ok := m[serialKey(serial)]
	return r, ok, nil
}

// serialKey is the serial's magnitude with a sign marker: negative serials
// are non-conforming but must not collide with positive ones.
func serialKey(n *big.Int) string {
	if n.Sign() < 0 {
		return "-" + string(n.Bytes())
	}
	return string(n.Bytes())
}

// scope is what an issuingDistributionPoint restricts a CRL to.
type scope struct {
	key   string   // the raw extension value, "" without IDP
	names [][]byte // DER GeneralNames of the IDP fullName; nil: any distribution point
}

// covers reports whether a CRL with this scope covers a leaf (an end
// entity: onlyContainsUserCerts always holds) whose cRLDistributionPoints
// carry dpNames.
func (s scope) covers(dpNames [][]byte) bool {
	if s.names == nil {
		return true
	}
	for _, n := range s.names {
		if slices.ContainsFunc(dpNames, func(d []byte) bool { return bytes.Equal(d, n) }) {
			return true
		}
	}
	return false
}

// Object identifiers of CRL and CRL entry extensions (RFC 5280 §5.2, §5.3).
var (
	oidAuthorityKeyID = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidCRLNumber      = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidIDP            = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidDeltaCRL       = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidCertIssuer     = asn1.ObjectIdentifier{2, 5, 29, 29}
	oidFreshestCRL    = asn1.ObjectIdentifier{2, 5, 29, 46}
)

// reasonRemoveFromCRL is the CRLReason that only delta CRLs may carry.
const reasonRemoveFromCRL = 8

func (v *Verifier) buildCRLSet(ders [][]byte) (*crlSet, error) {
	set := &crlSet{byAnchor: make(map[*anchor][]*crl)}
	for i, der := range ders {
		c, err := v.checkCRL(i, der)
		if err != nil {
			return nil, err
		}
		if c.thisUpdate.After(set.newestThisUpdate) {
			set.newestThisUpdate = c.thisUpdate
		}
		list := set.byAnchor[c.anchor]
		j := slices.IndexFunc(list, func(o *crl) bool { return o.scope.key == c.scope.key })
		switch {
		case j < 0:
			set.byAnchor[c.anchor] = append(list, c)
		case newer(c, list[j]):
			list[j] = c
		}
	}
	return set, nil
}

// newer orders CRLs of one scope: higher cRLNumber, then later thisUpdate.
func newer(a, b *crl) bool {
	if a.number != nil && b.number != nil {
		if c := a.number.Cmp(b.number); c != 0 {
			return c > 0
		}
	}
	return a.thisUpdate.After(b.thisUpdate)
}

// scopeID names the CRL series of one anchor and scope.
type scopeID struct {
	anchor *anchor
	scope  string
}

// checkReplay refuses a set that would move a CRL series back to a lower
// cRLNumber than highest records.
func (s *crlSet) checkReplay(highest map[scopeID]*big.Int) error {
	for a, list := range s.byAnchor {
		for _, c := range list {
			h := highest[scopeID{a, c.scope.key}]
			if h != nil && c.number != nil && c.number.Cmp(h) < 0 {
				return fmt.Errorf("%w: input %d: cRLNumber %d, already loaded %d (anchor %s)", ErrCRLReplay, c.input, c.number, h, a.id)
			}
		}
	}
	return nil
}

// raise records the set's cRLNumbers in highest.
func (s *crlSet) raise(highest map[scopeID]*big.Int) {
	for a, list := range s.byAnchor {
		for _, c := range list {
			id := scopeID{a, c.scope.key}
			if h := highest[id]; c.number != nil && (h == nil || c.number.Cmp(h) > 0) {
				highest[id] = c.number
			}
		}
	}
}

// checkCRL parses one DER CRL and runs the checks that do not depend on
// the time: issuer, signature, extensions, entries.
func (v *Verifier) checkCRL(i int, der []byte) (*crl, error) {
	malformed := func(format string, args ...any) error {
		return fmt.Errorf("%w: input %d: %s", ErrCRLMalformed, i, fmt.Sprintf(format, args...))
	}
	unsupported := func(format string, args ...any) error {
		return fmt.Errorf("%w: input %d: %s", ErrCRLUnsupported, i, fmt.Sprintf(format, args...))
	}

	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, malformed("%v", err)
	}
	if len(rl.Raw) != len(der) {
		return nil, malformed("%d octets of trailing data", len(der)-len(rl.Raw))
	}

	// Issuer: the CRL issuer name must equal an anchor's subject, and that
	// anchor's key must verify the signature.
	cands := v.byName[string(rl.RawIssuer)]
	if len(cands) == 0 {
		return nil, fmt.Errorf("%w: input %d: issuer name matches no trust anchor", ErrCRLUntrusted, i)
	}
	a, err := bySignature(cands, rl.AuthorityKeyId, rl.SignatureAlgorithm, rl.RawTBSRevocationList, rl.Signature)
	if err != nil {
		return nil, fmt.Errorf("%w: input %d: signature verifies under none of the %d anchors with the issuer's name: %v", ErrCRLUntrusted, i, len(cands), err)
	}
	if a.cert.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return nil, fmt.Errorf("%w: input %d: anchor %s lacks cRLSign", ErrCRLUntrusted, i, a.id)
	}

	c := &crl{input: i, anchor: a, number: rl.Number, thisUpdate: rl.ThisUpdate, nextUpdate: rl.NextUpdate}
	if rl.NextUpdate.IsZero() {
		return nil, unsupported("no nextUpdate: freshness cannot be judged")
	}
	if rl.NextUpdate.Before(rl.ThisUpdate) {
		return nil, malformed("nextUpdate precedes thisUpdate")
	}

	var seen []asn1.ObjectIdentifier
	for _, e := range rl.Extensions {
		if slices.ContainsFunc(seen, e.Id.Equal) {
			return nil, malformed("extension %v appears twice", e.Id)
		}
		seen = append(seen, e.Id)
		switch {
		case e.Id.Equal(oidAuthorityKeyID), e.Id.Equal(oidCRLNumber):
			// Parsed by x509.ParseRevocationList.
		case e.Id.Equal(oidIDP):
			if c.scope, err = parseIDP(i, e.Value); err != nil {
				return nil, err
			}
		case e.Id.Equal(oidDeltaCRL):
			// Never treat a delta as complete, critical or not.
			return nil, unsupported("delta CRL (deltaCRLIndicator)")
		case e.Id.Equal(oidFreshestCRL):
			// Points at delta CRLs; offline, complete CRLs only.
		case e.Critical:
			return nil, unsupported("critical extension %v not understood", e.Id)
		}
	}

	idx := make(memIndex, len(rl.RevokedCertificateEntries))
	for _, entry := range rl.RevokedCertificateEntries {
		for _, e := range entry.Extensions {
			switch {
			case e.Id.Equal(oidCertIssuer):
				return nil, unsupported("indirect CRL entry (certificateIssuer)")
			case e.Critical:
				return nil, unsupported("critical entry extension %v", e.Id)
			}
		}
		if entry.ReasonCode == reasonRemoveFromCRL {
			return nil, unsupported("removeFromCRL entry outside a delta CRL")
		}
		k := serialKey(entry.SerialNumber)
		if _, dup := idx[k]; !dup {
			idx[k] = revocation{reason: entry.ReasonCode, at: entry.RevocationTime}
		}
	}
	c.revoked = idx
	return c, nil
}

// status is the revocation step of Verify for a leaf issued by a.
func (s *crlSet) status(ctx context.Context, a *anchor, serial *big.Int, dpNames [][]byte, now time.Time) (Reason, string) {
	list := s.byAnchor[a]
	if len(list) == 0 {
		return ReasonCRLUnavailable, fmt.Sprintf("no CRL loaded for anchor %s", a.id)
	}
	var current, stale []*crl
	for _, c := range list {
		switch {
		case !c.scope.covers(dpNames):
		case crlCurrent(c, now):
			current = append(current, c)
		default:
			stale = append(stale, c)
		}
	}
	if len(current) == 0 {
		if len(stale) == 0 {
			return ReasonCRLUnavailable, fmt.Sprintf("none of the %d CRLs of anchor %s covers the certificate's distribution points", len(list), a.id)
		}
		c := stale[0]
		return ReasonCRLStale, fmt.Sprintf("CRL %s of anchor %s is current %s..%s, not at %s", crlName(c), a.id, stamp(c.thisUpdate), stamp(c.nextUpdate), stamp(now))
	}
	for _, c := range current {
		r, listed, err := c.revoked.lookup(ctx, serial)
		if err != nil {
			return ReasonCRLUnavailable, fmt.Sprintf("CRL %s lookup: %v", crlName(c), err)
		}
		if listed {
			return ReasonRevoked, fmt.Sprintf("listed in CRL %s of anchor %s: %s since %s", crlName(c), a.id, reasonName(r.reason), stamp(r.at))
		}
	}
	return ReasonOK, fmt.Sprintf("anchor %s; not listed in CRL %s (nextUpdate %s)", a.id, crlName(current[0]), stamp(current[0].nextUpdate))
}

// crlCurrent is RFC 5280 §6.3.3 (a)(1)-(2): thisUpdate ≤ now ≤ nextUpdate.
// With the clock floor thisUpdate never lies ahead, but the check stays
// so the function is correct on its own.
func crlCurrent(c *crl, now time.Time) bool {
	return !now.Before(c.thisUpdate) && !now.After(c.nextUpdate)
}

func crlName(c *crl) string {
	if c.number == nil {
		return "without number"
	}
	return "#" + c.number.String()
}

var reasonNames = []string{"unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
	"superseded", "cessationOfOperation", "certificateHold", "reason 7", "removeFromCRL",
	"privilegeWithdrawn", "aACompromise"}

func reasonName(r int) string {
	if r >= 0 && r < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason %d", r)
}

// parseIDP parses an issuingDistributionPoint (RFC 5280 §5.2.5) and
// refuses every scope this verifier cannot apply:
//
//	IssuingDistributionPoint ::= SEQUENCE {
//	     distributionPoint          [0] DistributionPointName OPTIONAL,
//	     onlyContainsUserCerts      [1] BOOLEAN DEFAULT FALSE,
//	     onlyContainsCACerts        [2] BOOLEAN DEFAULT FALSE,
//	     onlySomeReasons            [3] ReasonFlags OPTIONAL,
//	     indirectCRL                [4] BOOLEAN DEFAULT FALSE,
//	     onlyContainsAttributeCerts [5] BOOLEAN DEFAULT FALSE }
func parseIDP(input int, value []byte) (scope, error) {
	malformed := func(what string) error {
		return fmt.Errorf("%w: input %d: issuingDistributionPoint: %s", ErrCRLMalformed, input, what)
	}
	unsupported := func(what string) error {
		return fmt.Errorf("%w: input %d: issuingDistributionPoint scope %s not handled", ErrCRLUnsupported, input, what)
	}
	fields, err := sequence(value)
	if err != nil {
		return scope{}, malformed(err.Error())
	}
	if len(fields) == 0 {
		return scope{}, malformed("empty")
	}
	s := scope{key: string(value)}
	last := -1
	for _, f := range fields {
		if f.Class != asn1.ClassContextSpecific || f.Tag <= last || f.Tag > 5 {
			return scope{}, malformed("unexpected or out-of-order field")
		}
		last = f.Tag
		if f.Tag == 0 {
			if s.names, err = distributionPointName(f); err != nil {
				if errors.Is(err, errRelativeName) {
					return scope{}, unsupported("nameRelativeToCRLIssuer")
				}
				return scope{}, malformed(err.Error())
			}
			continue
		}
		if f.Tag == 3 {
			return scope{}, unsupported("onlySomeReasons")
		}
		set, err := boolean(f)
		if err != nil {
			return scope{}, malformed(err.Error())
		}
		switch {
		case !set, f.Tag == 1: // onlyContainsUserCerts: leaves are end entities
		case f.Tag == 2:
			return scope{}, unsupported("onlyContainsCACerts")
		case f.Tag == 4:
			return scope{}, unsupported("indirectCRL")
		case f.Tag == 5:
			return scope{}, unsupported("onlyContainsAttributeCerts")
		}
	}
	return s, nil
}

// parseCRLDistributionPoints returns the fullName GeneralNames (DER) of a
// certificate's cRLDistributionPoints (RFC 5280 §4.2.1.13). Distribution
// points naming a cRLIssuer (indirect CRLs) or a name relative to the CRL
// issuer contribute nothing, so a scoped CRL never matches them.
func parseCRLDistributionPoints(value []byte) ([][]byte, error) {
	dps, err := sequence(value)
	if err != nil {
		return nil, fmt.Errorf("cRLDistributionPoints: %w", err)
	}
	var names [][]byte
	for _, dp := range dps {
		if dp.Class != asn1.ClassUniversal || dp.Tag != asn1.TagSequence {
			return nil, errors.New("cRLDistributionPoints: distribution point is not a SEQUENCE")
		}
		fields, err := sequence(dp.FullBytes)
		if err != nil {
			return nil, fmt.Errorf("cRLDistributionPoints: %w", err)
		}
		var dpNames [][]byte
		indirect := false
		for _, f := range fields {
			if f.Class != asn1.ClassContextSpecific {
				return nil, errors.New("cRLDistributionPoints: unexpected field")
			}
			switch f.Tag {
			case 0:
				n, err := distributionPointName(f)
				if err != nil && !errors.Is(err, errRelativeName) {
					return nil, fmt.Errorf("cRLDistributionPoints: %w", err)
				}
				dpNames = n
			case 2:
				indirect = true
			}
		}
		if !indirect {
			names = append(names, dpNames...)
		}
	}
	return names, nil
}

var errRelativeName = errors.New("nameRelativeToCRLIssuer")

// distributionPointName unwraps a [0] DistributionPointName field and
// returns its fullName GeneralNames as DER elements.
func distributionPointName(f asn1.RawValue) ([][]byte, error) {
	if !f.IsCompound {
		return nil, errors.New("distributionPoint is not constructed")
	}
	var choice asn1.RawValue
	rest, err := asn1.Unmarshal(f.Bytes, &choice)
	if err != nil || len(rest) > 0 || choice.Class != asn1.ClassContextSpecific || !choice.IsCompound {
		return nil, errors.New("malformed DistributionPointName")
	}
	switch choice.Tag {
	case 0:
	case 1:
		return nil, errRelativeName
	default:
		return nil, errors.New("malformed DistributionPointName")
	}
	var names [][]byte
	for in := choice.Bytes; len(in) > 0; {
		var gn asn1.RawValue
		if in, err = asn1.Unmarshal(in, &gn); err != nil || gn.Class != asn1.ClassContextSpecific {
			return nil, errors.New("malformed GeneralName")
		}
		names = append(names, gn.FullBytes)
	}
	if len(names) == 0 {
		return nil, errors.New("empty fullName")
	}
	return names, nil
}

// sequence splits a DER SEQUENCE into its elements.
func sequence(der []byte) ([]asn1.RawValue, error) {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(der, &seq)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return nil, errors.New("not a single DER SEQUENCE")
	}
	var out []asn1.RawValue
	for in := seq.Bytes; len(in) > 0; {
		var e asn1.RawValue
		if in, err = asn1.Unmarshal(in, &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// boolean decodes an implicitly tagged DER BOOLEAN.
func boolean(f asn1.RawValue) (bool, error) {
	if f.IsCompound || len(f.Bytes) != 1 || (f.Bytes[0] != 0 && f.Bytes[0] != 0xFF) {
		return false, errors.New("malformed BOOLEAN")
	}
	return f.Bytes[0] == 0xFF, nil
}
