// Package verify checks an X.509 end-entity certificate offline: it builds
// certification paths to preloaded trust anchors through preloaded
// intermediates, validates them (RFC 5280 §6.1, without policy processing)
// and checks the revocation status of every certificate of the path
// against a [crl.Source] (RFC 5280 §6.3), at a time the caller supplies. A
// Verifier serves one purpose (Options.Purpose): JPKI user authentication,
// JPKI digital signature, each with its own anchors, or plain RFC 5280
// validation ([PurposeAny], for the operator CLI and the NIST PKITS suite).
//
// The JPKI CAs issue end-entity certificates directly from a self-signed
// root, and the roots of its generations (2015, 2019, 2023) share one
// subject DN. A certificate is therefore accepted only under an issuer
// whose subject equals its issuer name AND whose key verifies its
// signature; key identifiers only order the candidates.
//
// VerifyAt runs its checks in this order and stops at the first failure;
// the Reason of the failing check is the operator-facing code:
//
//	malformed        leaf does not parse, has a critical extension this
//	                 package does not understand, or its
//	                 cRLDistributionPoints do not parse; for the JPKI purposes
//	                 also: not a v3 end-entity certificate, or lacks
//	                 digitalSignature
//	wrong-purpose    key usage of the other JPKI purpose: a signature
//	                 certificate (nonRepudiation) offered for user
//	                 authentication, or a certificate without
//	                 nonRepudiation offered as a signature certificate
//	test-card        leaf names an O=JPKI-TEST issuer and Options.AllowTest is
//	                 off (JPKI purposes only)
//	untrusted        no path to an anchor: no anchor or intermediate with the
//	                 issuer's name verifies the signature, or every path found
//	                 fails RFC 5280 §6.1 (an anchor or intermediate not valid at
//	                 the verification time, an intermediate that is not a CA or
//	                 lacks keyCertSign, a pathLenConstraint exceeded, an
//	                 unsupported critical extension in an intermediate)
//	not-yet-valid    verification time before the leaf's notBefore
//	expired          verification time after the leaf's notAfter
//	crl-unavailable  no usable CRL covers the leaf or a CA of its path for
//	                 all reasons (fail closed)
//	crl-stale        as crl-unavailable, but a covering CRL was skipped only
//	                 because its nextUpdate (plus Options.Grace) has passed
//	revoked          the leaf or a CA of its path is listed in a covering CRL
//	                 (any reason, certificateHold included)
//	ok               none of the above
//
// When several candidate paths exist, each is tried and the first that
// passes every check wins; otherwise the result of the path that got
// furthest is returned (revoked before crl-stale before crl-unavailable
// before expired/not-yet-valid before untrusted).
//
// # Revocation
//
// For every certificate of the path but the anchor, RFC 5280 §6.3.3 runs
// over its distribution points (or one implicit distribution point when it
// has none): candidate CRLs come from Source.Snapshot().ByIssuer of the
// distribution point's cRLIssuer or the certificate's issuer; the CRL's
// issuingDistributionPoint scope must match (distribution point name,
// onlyContainsUserCerts/CACerts, indirectCRL when the distribution point
// names a cRLIssuer; onlyContainsAttributeCerts never matches); reason
// partitions accumulate until every reason is covered; the CRL's signer
// must be authorised: its subject is the CRL issuer, it has cRLSign, and it
// is the issuing certificate in the path (or another certificate of the
// path with the same name and key, or the certificate itself for the
// indirect CRL it signs) or has a valid, unrevoked path of its own to the
// same anchor (a CRL whose signer is revoked or unverifiable does not
// count); the CRL must be current (thisUpdate ≤ t ≤ nextUpdate +
// Options.Grace; a CRL without nextUpdate is never current) and have no
// critical extension, in the CRL or any entry, that the parser did not
// understand. Delta CRLs are the Source's business: it merges them. Once
// all reasons are covered, the remaining applicable CRLs are still
// consulted, and a listing in any of them counts (RFC 5280 would stop;
// this only ever turns ok into revoked). A complete CRL listing the
// certificate as removeFromCRL is inconsistent and not relied on.
//
// # Time
//
// Time is an input: VerifyAt judges at the given time, Verify at
// Options.Now(), which should be the trusted clock (firmware/trustclock).
//
// Not handled: certificate policies (an intermediate whose
// policyConstraints require an explicit policy is refused), name
// constraints (an intermediate carrying them is refused), RFC 5280 §7.1
// name normalisation (names compare byte for byte, which fails closed),
// extended key usage, and attribute certificates.
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
	"time"

	"github.com/kazashi/kazashi/firmware/crl"
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

// Errors returned by New and LoadAnchors; branch with errors.Is.
var (
	ErrOptions   = errors.New("verify: invalid options")
	ErrBadAnchor = errors.New("verify: unusable trust anchor")
)

// Options configure a Verifier.
type Options struct {
	// Anchors are the trust anchors: CA certificates with keyCertSign,
	// usually self-signed. Required.
	Anchors []*x509.Certificate
	// Intermediates are CA certificates that paths may go through
	// (RFC 5280 §6.1). Optional: JPKI leaves are issued by the roots.
	Intermediates []*x509.Certificate
	// Revocation supplies the checked CRLs. Nil: every certificate of a
	// path lacks revocation information, so VerifyAt fails closed with
	// crl-unavailable.
	Revocation crl.Source
	// Now returns the trusted current time for Verify. Required.
	Now func() time.Time
	// Grace lets a CRL be used up to Grace after its nextUpdate; a result
	// that relied on one says so (Result.StaleGrace). Zero, the default,
	// fails closed with crl-stale at nextUpdate. Negative is an error.
	Grace time.Duration
	// AllowTest accepts the O=JPKI-TEST hierarchy (demo and test mode).
	// When false, New refuses JPKI-TEST anchors and VerifyAt answers
	// test-card for JPKI-TEST leaves. Not consulted for PurposeAny.
	AllowTest bool
	// Purpose is what the leaves are for: PurposeAuth (the default),
	// PurposeSign or PurposeAny. Anchors are per purpose too: give a
	// Verifier only the roots of its purpose, so a signature certificate
	// never chains in an authentication Verifier.
	Purpose Purpose
}

// Purpose of the certificates a Verifier accepts.
type Purpose string

// Purposes: the JPKI user-authentication certificate (keyUsage
// digitalSignature) and the signature certificate (digitalSignature and
// nonRepudiation), per the JPKI end-entity profile; and any certificate,
// RFC 5280 path validation only, without the JPKI profile or the
// JPKI-TEST rule.
const (
	PurposeAuth Purpose = "auth"
	PurposeSign Purpose = "sign"
	PurposeAny  Purpose = "any"
)

// Result is the outcome of one Verify.
type Result struct {
	Reason Reason
	// Detail explains the reason for logs and staff. It holds no personal
	// data: no names, no serial numbers, no certificate bytes. CA
	// certificates are named by abbreviated SHA-256 fingerprints.
	Detail string
	// Time is the verification time used.
	Time time.Time
	// Leaf is the parsed certificate (nil if it did not parse). Its serial
	// number identifies a person to J-LIS: do not log or publish it.
	Leaf *x509.Certificate
	// Anchor is the trust anchor of the path, if a chain of verified
	// signatures from the leaf to an anchor was found (whether or not the
	// path then passed the other checks).
	Anchor *x509.Certificate
	// Path is that chain, leaf first, anchor last; nil without one.
	Path []*x509.Certificate
	// CRLAge is Time minus the thisUpdate of the CRL that decided the
	// leaf's revocation status (the oldest, when several were needed to
	// cover all reasons); negative when no CRL decided it.
	CRLAge time.Duration
	// CRLNumber is that CRL's cRLNumber, nil if it has none or no CRL
	// decided.
	CRLNumber *big.Int
	// StaleGrace reports that a CRL past its nextUpdate, within
	// Options.Grace, was used for the result.
	StaleGrace bool
}

// Chained reports whether the leaf's signature chain verified up to one of
// the Verifier's anchors, whatever the later checks said (validity,
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

// Verifier checks leaves against fixed anchors and intermediates and a
// revocation Source. It is safe for concurrent use.
type Verifier struct {
	anchors   []*anchor
	byName    map[string][]*anchor           // anchors by DER subject
	inter     map[string][]*x509.Certificate // intermediates by DER subject
	interN    int
	src       crl.Source
	now       func() time.Time
	grace     time.Duration
	allowTest bool
	purpose   Purpose
}

type anchor struct {
	cert *x509.Certificate
	id   string // SHA-256 fingerprint, abbreviated like the fact sheet's
}

// New validates the options and returns a Verifier.
func New(opts Options) (*Verifier, error) {
	if opts.Now == nil {
		return nil, fmt.Errorf("%w: Now is required", ErrOptions)
	}
	if len(opts.Anchors) == 0 {
		return nil, fmt.Errorf("%w: no trust anchors", ErrOptions)
	}
	if opts.Grace < 0 {
		return nil, fmt.Errorf("%w: negative Grace", ErrOptions)
	}
	v := &Verifier{
		byName:    make(map[string][]*anchor),
		inter:     make(map[string][]*x509.Certificate),
		src:       opts.Revocation,
		now:       opts.Now,
		grace:     opts.Grace,
		allowTest: opts.AllowTest,
		purpose:   opts.Purpose,
	}
	switch v.purpose {
	case "":
		v.purpose = PurposeAuth
	case PurposeAuth, PurposeSign, PurposeAny:
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
		case v.jpki() && !opts.AllowTest && isTestName(c.Subject.Organization):
			return nil, fmt.Errorf("%w: anchor %s is a %s root and test mode is off", ErrBadAnchor, a.id, TestOrganization)
		}
		if slices.ContainsFunc(v.anchors, func(b *anchor) bool { return bytes.Equal(b.cert.Raw, c.Raw) }) {
			continue
		}
		v.anchors = append(v.anchors, a)
		v.byName[string(c.RawSubject)] = append(v.byName[string(c.RawSubject)], a)
	}
	for i, c := range opts.Intermediates {
		if c == nil {
			return nil, fmt.Errorf("%w: intermediate %d is nil", ErrOptions, i)
		}
		list := v.inter[string(c.RawSubject)]
		if slices.ContainsFunc(list, func(b *x509.Certificate) bool { return bytes.Equal(b.Raw, c.Raw) }) {
			continue
		}
		v.inter[string(c.RawSubject)] = append(list, c)
		v.interN++
	}
	return v, nil
}

func (v *Verifier) jpki() bool { return v.purpose != PurposeAny }

// Verify checks the DER certificate leafDER at Options.Now(). ctx bounds
// revocation lookups.
func (v *Verifier) Verify(ctx context.Context, leafDER []byte) Result {
	return v.VerifyAt(ctx, leafDER, v.now())
}

// VerifyAt checks the DER certificate leafDER at time at. ctx bounds
// revocation lookups. The Source is consulted through one Snapshot, so
// a CRL swapped in meanwhile never mixes with the one it replaces.
func (v *Verifier) VerifyAt(ctx context.Context, leafDER []byte, at time.Time) Result {
	r := v.verify(ctx, leafDER, at)
	r.Time = at
	return r
}

func (v *Verifier) verify(ctx context.Context, der []byte, at time.Time) Result {
	r := Result{CRLAge: -1}
	leaf, err := ParseCertificate(der)
	if err != nil {
		r.Reason, r.Detail = ReasonMalformed, redactQuoted(err.Error())
		return r
	}
	r.Leaf = leaf
	dps, detail := v.checkLeafProfile(leaf)
	if detail != "" {
		r.Reason, r.Detail = ReasonMalformed, detail
		return r
	}
	if v.jpki() {
		if detail := checkPurpose(leaf, v.purpose); detail != "" {
			r.Reason, r.Detail = ReasonWrongPurpose, detail
			return r
		}
		if !v.allowTest && (isTestName(leaf.Issuer.Organization) || isTestName(leaf.Subject.Organization)) {
			r.Reason, r.Detail = ReasonTestCard, "certificate belongs to the "+TestOrganization+" hierarchy and test mode is off"
			return r
		}
	}

	rc := newRevChecker(ctx, v, at)
	defer rc.release()
	paths, detail := v.buildPaths(rc.sigs, leaf, nil)
	if len(paths) == 0 {
		r.Reason, r.Detail = ReasonUntrusted, detail
		return r
	}
	var best Result
	bestRank := -1
	for _, p := range paths {
		res, rank := v.tryPath(rc, leaf, dps, p, at)
		if res.Reason == ReasonOK {
			return res
		}
		if rank > bestRank {
			best, bestRank = res, rank
		}
	}
	if len(paths) > 1 {
		best.Detail += fmt.Sprintf(" (best of %d candidate paths)", len(paths))
	}
	return best
}

// Ranks of a failed path: how far it got.
const (
	rankUntrusted = iota
	rankValidity
	rankUnavailable
	rankStale
	rankRevoked
)

// tryPath runs the checks after path building on one candidate path.
func (v *Verifier) tryPath(rc *revChecker, leaf *x509.Certificate, dps []distributionPoint, p path, at time.Time) (Result, int) {
	r := Result{Leaf: leaf, Anchor: p.anchor.cert, Path: p.certs(), CRLAge: -1}
	if detail := validatePath(p, at); detail != "" {
		r.Reason, r.Detail = ReasonUntrusted, detail
		return r, rankUntrusted
	}
	if at.Before(leaf.NotBefore) {
		r.Reason, r.Detail = ReasonNotYetValid, fmt.Sprintf("valid from %s, now %s", stamp(leaf.NotBefore), stamp(at))
		return r, rankValidity
	}
	if at.After(leaf.NotAfter) {
		r.Reason, r.Detail = ReasonExpired, fmt.Sprintf("expired %s, now %s", stamp(leaf.NotAfter), stamp(at))
		return r, rankValidity
	}
	st := rc.checkPath(p, dps, 0)
	r.Reason, r.Detail = st.reason, st.detail
	if st.leafCRL != nil {
		r.CRLAge = at.Sub(st.leafCRL.ThisUpdate)
		r.CRLNumber = st.leafCRL.Number
	}
	r.StaleGrace = st.grace
	switch st.reason {
	case ReasonOK:
		r.Detail = fmt.Sprintf("anchor %s; %s", p.anchor.id, st.detail)
		return r, rankRevoked + 1
	case ReasonRevoked:
		return r, rankRevoked
	case ReasonCRLStale:
		return r, rankStale
	default:
		return r, rankUnavailable
	}
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

// Extensions a JPKI leaf may mark critical. Go's parser fully handles all
// of them; nameConstraints and the policy-processing extensions are
// CA-only and not allowed critical here.
var leafCritical = []asn1.ObjectIdentifier{
	{2, 5, 29, 15}, // keyUsage: checked below
	{2, 5, 29, 19}, // basicConstraints: checked below
	{2, 5, 29, 17}, // subjectAltName: names are informational here
	{2, 5, 29, 31}, // cRLDistributionPoints: matched against CRL scopes
	{2, 5, 29, 32}, // certificatePolicies: no policy is required
	{2, 5, 29, 37}, // extKeyUsage: not restricted (the JPKI profile is not pinned yet)
}

var oidCRLDistributionPoints = asn1.ObjectIdentifier{2, 5, 29, 31}

// checkLeafProfile returns the leaf's CRL distribution points, or a
// detail saying why the leaf is malformed.
func (v *Verifier) checkLeafProfile(leaf *x509.Certificate) (dps []distributionPoint, detail string) {
	if v.jpki() {
		if leaf.Version != 3 {
			return nil, fmt.Sprintf("X.509 version %d, want 3", leaf.Version)
		}
		if leaf.BasicConstraintsValid && leaf.IsCA {
			return nil, "leaf is a CA certificate"
		}
		if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
			return nil, "keyUsage lacks digitalSignature"
		}
	}
	if leaf.NotAfter.Before(leaf.NotBefore) {
		return nil, "notAfter precedes notBefore"
	}
	if len(leaf.UnhandledCriticalExtensions) > 0 {
		return nil, fmt.Sprintf("critical extension %v not understood", leaf.UnhandledCriticalExtensions[0])
	}
	if v.jpki() {
		for _, e := range leaf.Extensions {
			if e.Critical && !slices.ContainsFunc(leafCritical, e.Id.Equal) {
				return nil, fmt.Sprintf("critical extension %v not allowed in a user-authentication certificate", e.Id)
			}
		}
	}
	dps, err := certDistributionPoints(leaf)
	if err != nil {
		return nil, err.Error()
	}
	return dps, ""
}

// certDistributionPoints parses a certificate's cRLDistributionPoints;
// nil without the extension.
func certDistributionPoints(c *x509.Certificate) ([]distributionPoint, error) {
	for _, e := range c.Extensions {
		if e.Id.Equal(oidCRLDistributionPoints) {
			return parseCRLDistributionPoints(e.Value)
		}
	}
	return nil, nil
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
