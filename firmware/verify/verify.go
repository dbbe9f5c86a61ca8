// Package verify checks a JPKI end-entity certificate offline: against
// preloaded trust anchors and preloaded CRLs, with an injected clock. A
// Verifier serves one purpose (Options.Purpose): user authentication or
// digital signature, each with its own anchors and CRLs.
//
// The JPKI CAs issue end-entity certificates directly
// from a self-signed root, and the roots of its generations (2015, 2019,
// 2023) share one subject DN. A leaf is therefore accepted only under an
// anchor whose subject equals the leaf's issuer name AND whose key verifies
// the leaf's signature; key identifiers only order the candidates.
//
// Verify runs its checks in this order and stops at the first failure; the
// Reason of the failing check is the operator-facing code:
//
//	malformed        leaf does not parse, is not a v3 end-entity certificate,
//	                 lacks digitalSignature, or has a critical extension this
//	                 package does not understand
//	wrong-purpose    key usage of the other JPKI purpose: a signature
//	                 certificate (nonRepudiation) offered for user
//	                 authentication, or a certificate without
//	                 nonRepudiation offered as a signature certificate
//	test-card        leaf names an O=JPKI-TEST issuer and Options.AllowTest is off
//	untrusted        no anchor with the issuer's name verifies the signature,
//	                 or that anchor is not valid at the verification time
//	not-yet-valid    verification time before the leaf's notBefore
//	expired          verification time after the leaf's notAfter
//	crl-unavailable  no loaded CRL of that anchor covers the leaf (fail closed)
//	crl-stale        every covering CRL's nextUpdate has passed
//	revoked          serial listed in a current covering CRL (any reason,
//	                 certificateHold included)
//	ok               none of the above
//
// # Revocation
//
// CRLs are checked once, when loaded (New, ReplaceCRLs), following the
// complete-CRL subset of RFC 5280 §6.3.3: the CRL issuer name must equal an
// anchor's subject and that anchor's key (with cRLSign) must verify the
// CRL's signature; CRLs with unknown critical extensions, critical entry
// extensions, delta-CRL indicators or indirect entries are refused; an
// issuingDistributionPoint is accepted only with a fullName and/or
// onlyContainsUserCerts (a fullName must then match a name in the leaf's
// cRLDistributionPoints). A CRL that fails is an error naming why; nothing
// is loaded then. The freshness window (thisUpdate ≤ now ≤ nextUpdate) is
// judged at each Verify. Per anchor and scope only the CRL with the highest
// cRLNumber is kept; ReplaceCRLs refuses a number lower than the highest
// the Verifier has loaded (replay of an old CRL).
//
// # Clock
//
// Kiosk boards without an RTC boot in 1970. The verification time is
// max(Options.Now(), Options.ClockFloor, newest loaded CRL's thisUpdate): a
// CRL signed by a trust anchor proves that its thisUpdate has passed. When
// the floor wins, Result.Detail says so.
//
// Not handled yet: intermediate CAs (the JPKI auth CA has none; the checks
// are written per issuing certificate so a path builder can reuse them for
// the NIST PKITS suite), delta CRLs, indirect CRLs, reason-partitioned CRLs,
// RFC 5280 §7.1 name normalisation (names compare byte for byte, which fails
// closed), certificate policies and extended key usage.
package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Reason is a stable, operator-facing verification outcome, published in
// MQTT events. Never change an existing value.
type Reason string

// Reasons, see the package documentation for when each applies.
const (
	ReasonOK             Reason = "ok"
	ReasonRevoked        Reason = "revoked"
	ReasonExpired        Reason = "expired"
	ReasonNotYetValid    Reason = "not-yet-valid"
	ReasonUntrusted      Reason = "untrusted"
	ReasonTestCard       Reason = "test-card"
	ReasonMalformed      Reason = "malformed"
	ReasonCRLUnavailable Reason = "crl-unavailable"
	ReasonCRLStale       Reason = "crl-stale"
	ReasonWrongPurpose   Reason = "wrong-purpose"
)

// Reasons returns every reason code, ok first.
func Reasons() []Reason {
	return []Reason{ReasonOK, ReasonRevoked, ReasonExpired, ReasonNotYetValid, ReasonUntrusted,
		ReasonTestCard, ReasonMalformed, ReasonCRLUnavailable, ReasonCRLStale, ReasonWrongPurpose}
}

// TestOrganization is the O= value that marks the JPKI test hierarchy.
const TestOrganization = "JPKI-TEST"

// Errors returned by New, ReplaceCRLs and LoadAnchors; branch with errors.Is.
var (
	ErrOptions        = errors.New("verify: invalid options")
	ErrBadAnchor      = errors.New("verify: unusable trust anchor")
	ErrCRLMalformed   = errors.New("verify: malformed CRL")
	ErrCRLUntrusted   = errors.New("verify: CRL not issued by a trust anchor")
	ErrCRLUnsupported = errors.New("verify: CRL uses a feature this verifier refuses")
	ErrCRLReplay      = errors.New("verify: CRL older than the one loaded")
)

// Options configure a Verifier.
type Options struct {
	// Anchors are the trust anchors: self-signed CA certificates with
	// keyCertSign. Required.
	Anchors []*x509.Certificate
	// CRLs are DER CRLs issued by the anchors. Without a CRL covering a
	// leaf, Verify fails closed with crl-unavailable.
	CRLs [][]byte
	// Now returns the current time. Required; see also ClockFloor.
	Now func() time.Time
	// ClockFloor is a persisted high-water mark of trustworthy time: the
	// verification time is never earlier. Optional.
	ClockFloor time.Time
	// AllowTest accepts the O=JPKI-TEST hierarchy (demo and test mode).
	// When false, New refuses JPKI-TEST anchors and Verify answers
	// test-card for JPKI-TEST leaves.
	AllowTest bool
	// Purpose is what the leaves are for: PurposeAuth (the default) or
	// PurposeSign. Anchors are per purpose too: give a Verifier only the
	// roots of its purpose, so a signature certificate never chains in an
	// authentication Verifier.
	Purpose Purpose
}

// Purpose of the certificates a Verifier accepts.
type Purpose string

// Purposes: the JPKI user-authentication certificate (keyUsage
// digitalSignature) and the signature certificate (digitalSignature and
// nonRepudiation), per the JPKI end-entity profile.
const (
	PurposeAuth Purpose = "auth"
	PurposeSign Purpose = "sign"
)

// Result is the outcome of one Verify.
type Result struct {
	Reason Reason
	// Detail explains the reason for logs and staff. It holds no personal
	// data: no names, no serial numbers, no certificate bytes.
	Detail string
	// Time is the verification time used, after the clock floor.
	Time time.Time
	// Leaf is the parsed certificate (nil if it did not parse). Its serial
	// number identifies a person to J-LIS: do not log or publish it.
	Leaf *x509.Certificate
	// Anchor is the trust anchor whose key verified the leaf, if any.
	Anchor *x509.Certificate
}

// Chained reports whether the leaf's signature verified under one of the
// Verifier's anchors, whatever the later checks said (validity,
// revocation). Only then do the leaf's issuer and serial identify a card:
// a self-made certificate that copies them does not chain.
func (r Result) Chained() bool { return r.Anchor != nil }

// OK reports whether the certificate was accepted.
func (r Result) OK() bool { return r.Reason == ReasonOK }

// Err returns nil for an accepted certificate and an *Error otherwise.
func (r Result) Err() error {
	if r.OK() {
		return nil
	}
	return &Error{Reason: r.Reason, Detail: r.Detail}
}

// Error is a rejected verification, for callers that prefer errors.
type Error struct {
	Reason Reason
	Detail string
}

func (e *Error) Error() string { return "verify: " + string(e.Reason) + ": " + e.Detail }

// Verifier checks leaves against fixed anchors and a replaceable CRL set.
// It is safe for concurrent use.
type Verifier struct {
	anchors   []*anchor
	byName    map[string][]*anchor // by DER subject
	now       func() time.Time
	floor     time.Time
	allowTest bool
	purpose   Purpose

	replace sync.Mutex           // serialises ReplaceCRLs
	highest map[scopeID]*big.Int // highest cRLNumber loaded so far, under replace
	crls    atomic.Pointer[crlSet]
}

type anchor struct {
	cert *x509.Certificate
	id   string // SHA-256 fingerprint, abbreviated like the fact sheet's
}

// New validates the anchors, loads and checks the CRLs, and returns a
// Verifier.
func New(opts Options) (*Verifier, error) {
	if opts.Now == nil {
		return nil, fmt.Errorf("%w: Now is required", ErrOptions)
	}
	if len(opts.Anchors) == 0 {
		return nil, fmt.Errorf("%w: no trust anchors", ErrOptions)
	}
	v := &Verifier{
		byName:    make(map[string][]*anchor),
		highest:   make(map[scopeID]*big.Int),
		now:       opts.Now,
		floor:     opts.ClockFloor,
		allowTest: opts.AllowTest,
		purpose:   opts.Purpose,
	}
	switch v.purpose {
	case "":
		v.purpose = PurposeAuth
	case PurposeAuth, PurposeSign:
	default:
		return nil, fmt.Errorf("%w: purpose %q", ErrOptions, opts.Purpose)
	}
	for i, c := range opts.Anchors {
		if c == nil {
			return nil, fmt.Errorf("%w: anchor %d is nil", ErrBadAnchor, i)
		}
		a := &anchor{cert: c, id: shortFingerprint(c.Raw)}
		switch {
		case !c.BasicConstraintsValid || !c.IsCA:
			return nil, fmt.Errorf("%w: anchor %s is not a CA", ErrBadAnchor, a.id)
		case c.KeyUsage&x509.KeyUsageCertSign == 0:
			return nil, fmt.Errorf("%w: anchor %s lacks keyCertSign", ErrBadAnchor, a.id)
		case !opts.AllowTest && isTestName(c.Subject.Organization):
			return nil, fmt.Errorf("%w: anchor %s is a %s root and test mode is off", ErrBadAnchor, a.id, TestOrganization)
		}
		if slices.ContainsFunc(v.anchors, func(b *anchor) bool { return bytes.Equal(b.cert.Raw, c.Raw) }) {
			continue
		}
		v.anchors = append(v.anchors, a)
		v.byName[string(c.RawSubject)] = append(v.byName[string(c.RawSubject)], a)
	}
	v.crls.Store(&crlSet{})
	if err := v.ReplaceCRLs(opts.CRLs); err != nil {
		return nil, err
	}
	return v, nil
}

// ReplaceCRLs checks ders and, if every one passes, atomically replaces the
// loaded CRL set with them; otherwise the loaded set stays. A CRL whose
// cRLNumber is lower than the highest this Verifier has loaded for the same
// anchor and scope is refused with ErrCRLReplay (the memory does not
// survive a restart).
func (v *Verifier) ReplaceCRLs(ders [][]byte) error {
	v.replace.Lock()
	defer v.replace.Unlock()
	set, err := v.buildCRLSet(ders)
	if err != nil {
		return err
	}
	if err := set.checkReplay(v.highest); err != nil {
		return err
	}
	set.raise(v.highest)
	v.crls.Store(set)
	return nil
}

// Verify checks the DER certificate leafDER. ctx bounds revocation lookups.
func (v *Verifier) Verify(ctx context.Context, leafDER []byte) Result {
	set := v.crls.Load()
	now, clockNote := v.clock(set)
	r := v.verify(ctx, set, now, leafDER)
	r.Time = now
	if clockNote != "" {
		r.Detail += "; " + clockNote
	}
	return r
}

// clock returns the verification time and, when a floor raised it, a note.
func (v *Verifier) clock(set *crlSet) (time.Time, string) {
	sys := v.now()
	now, note := sys, ""
	if set.newestThisUpdate.After(now) {
		now = set.newestThisUpdate
		note = fmt.Sprintf("clock %s is behind the newest CRL's thisUpdate; verified at %s", stamp(sys), stamp(now))
	}
	if v.floor.After(now) {
		now = v.floor
		note = fmt.Sprintf("clock %s is behind the persisted clock floor; verified at %s", stamp(sys), stamp(now))
	}
	return now, note
}

func (v *Verifier) verify(ctx context.Context, set *crlSet, now time.Time, der []byte) Result {
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return Result{Reason: ReasonMalformed, Detail: redactQuoted(err.Error())}
	}
	r := Result{Leaf: leaf}
	dpNames, detail := checkLeafProfile(leaf)
	if detail != "" {
		r.Reason, r.Detail = ReasonMalformed, detail
		return r
	}
	if detail := checkPurpose(leaf, v.purpose); detail != "" {
		r.Reason, r.Detail = ReasonWrongPurpose, detail
		return r
	}
	if !v.allowTest && (isTestName(leaf.Issuer.Organization) || isTestName(leaf.Subject.Organization)) {
		r.Reason, r.Detail = ReasonTestCard, "certificate belongs to the "+TestOrganization+" hierarchy and test mode is off"
		return r
	}
	a, detail := v.issuer(leaf)
	if a == nil {
		r.Reason, r.Detail = ReasonUntrusted, detail
		return r
	}
	r.Anchor = a.cert
	if now.Before(a.cert.NotBefore) || now.After(a.cert.NotAfter) {
		r.Reason = ReasonUntrusted
		r.Detail = fmt.Sprintf("anchor %s is valid %s..%s, not at %s", a.id, stamp(a.cert.NotBefore), stamp(a.cert.NotAfter), stamp(now))
		return r
	}
	if now.Before(leaf.NotBefore) {
		r.Reason, r.Detail = ReasonNotYetValid, fmt.Sprintf("valid from %s, now %s", stamp(leaf.NotBefore), stamp(now))
		return r
	}
	if now.After(leaf.NotAfter) {
		r.Reason, r.Detail = ReasonExpired, fmt.Sprintf("expired %s, now %s", stamp(leaf.NotAfter), stamp(now))
		return r
	}
	r.Reason, r.Detail = set.status(ctx, a, leaf.SerialNumber, dpNames, now)
	return r
}

// issuer returns the anchor whose name equals the leaf's issuer and whose
// key verifies the leaf's signature. Anchors whose subject key identifier
// matches the leaf's authority key identifier are tried first.
func (v *Verifier) issuer(leaf *x509.Certificate) (*anchor, string) {
	cands := v.byName[string(leaf.RawIssuer)]
	if len(cands) == 0 {
		return nil, "no trust anchor has the issuer's name"
	}
	a, err := bySignature(cands, leaf.AuthorityKeyId, leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature)
	if err != nil {
		return nil, fmt.Sprintf("signature verifies under none of the %d anchors with the issuer's name: %v", len(cands), err)
	}
	return a, ""
}

// bySignature returns the first candidate whose key verifies signature
// over signed, trying key-identifier matches first.
func bySignature(cands []*anchor, aki []byte, algo x509.SignatureAlgorithm, signed, signature []byte) (*anchor, error) {
	if !acceptedAlgorithm(algo) {
		return nil, fmt.Errorf("signature algorithm %v not accepted", algo)
	}
	var last error
	for _, keyIDMatch := range []bool{true, false} {
		for _, a := range cands {
			ski := a.cert.SubjectKeyId
			if match := len(aki) == 0 || len(ski) == 0 || bytes.Equal(aki, ski); match != keyIDMatch {
				continue
			}
			if last = a.cert.CheckSignature(algo, signed, signature); last == nil {
				return a, nil
			}
		}
	}
	return nil, last
}

// acceptedAlgorithm allows the RSA and ECDSA algorithms with SHA-2 and
// Ed25519; SHA-1 and MD5 are refused (x509.Certificate.CheckSignature
// would accept SHA-1).
func acceptedAlgorithm(a x509.SignatureAlgorithm) bool {
	switch a {
	case x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA,
		x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS,
		x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512,
		x509.PureEd25519:
		return true
	}
	return false
}

// Extensions a leaf may mark critical. Go's parser fully handles all of
// them; nameConstraints and the policy-processing extensions are CA-only
// and not allowed critical here.
var leafCritical = []asn1.ObjectIdentifier{
	{2, 5, 29, 15}, // keyUsage: checked below
	{2, 5, 29, 19}, // basicConstraints: checked below
	{2, 5, 29, 17}, // subjectAltName: names are informational here
	{2, 5, 29, 31}, // cRLDistributionPoints: matched against CRL scopes
	{2, 5, 29, 32}, // certificatePolicies: no policy is required
	{2, 5, 29, 37}, // extKeyUsage: not restricted (the JPKI profile is not pinned yet)
}

var oidCRLDistributionPoints = asn1.ObjectIdentifier{2, 5, 29, 31}

// checkLeafProfile returns the leaf's CRL distribution point names, or a
// detail saying why the leaf is malformed.
func checkLeafProfile(leaf *x509.Certificate) (dpNames [][]byte, detail string) {
	if leaf.Version != 3 {
		return nil, fmt.Sprintf("X.509 version %d, want 3", leaf.Version)
	}
	if leaf.BasicConstraintsValid && leaf.IsCA {
		return nil, "leaf is a CA certificate"
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, "keyUsage lacks digitalSignature"
	}
	if leaf.NotAfter.Before(leaf.NotBefore) {
		return nil, "notAfter precedes notBefore"
	}
	if len(leaf.UnhandledCriticalExtensions) > 0 {
		return nil, fmt.Sprintf("critical extension %v not understood", leaf.UnhandledCriticalExtensions[0])
	}
	for _, e := range leaf.Extensions {
		if e.Critical && !slices.ContainsFunc(leafCritical, e.Id.Equal) {
			return nil, fmt.Sprintf("critical extension %v not allowed in a user-authentication certificate", e.Id)
		}
		if e.Id.Equal(oidCRLDistributionPoints) {
			var err error
			if dpNames, err = parseCRLDistributionPoints(e.Value); err != nil {
				return nil, err.Error()
			}
		}
	}
	return dpNames, ""
}

// checkPurpose tells the two JPKI end-entity profiles apart by key usage:
// user authentication has digitalSignature only, the signature certificate
// adds nonRepudiation (shared/docs/mynumbercard.md §2.5, from soltia48's
// tests on real certificates).
func checkPurpose(leaf *x509.Certificate, p Purpose) string {
	nr := leaf.KeyUsage&x509.KeyUsageContentCommitment != 0
	switch {
	case p == PurposeAuth && nr:
		return "keyUsage has nonRepudiation: a signature certificate, not a user-authentication certificate"
	case p == PurposeSign && !nr:
		return "keyUsage lacks nonRepudiation: not a signature certificate"
	}
	return ""
}

func isTestName(orgs []string) bool { return slices.Contains(orgs, TestOrganization) }

// shortFingerprint abbreviates a SHA-256 fingerprint as the fact sheet
// does: first four and last three octets.
func shortFingerprint(der []byte) string {
	s := sha256.Sum256(der)
	return fmt.Sprintf("%X…%X", s[:4], s[len(s)-3:])
}

// redactQuoted drops quoted parts of a parser message: x509 quotes
// certificate content (URIs, names) in some errors.
func redactQuoted(msg string) string {
	var b strings.Builder
	for i, part := range strings.Split(msg, `"`) {
		if i%2 == 1 {
			part = "[redacted]"
		}
		b.WriteString(part)
	}
	return b.String()
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
