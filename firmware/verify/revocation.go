package verify

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"github.com/kazashi/kazashi/firmware/crl"
)

// maxSignerDepth bounds the recursion of CRL signer validation
// (RFC 5280 §6.3.3 (f)): a CRL signer's path may need a CRL whose signer
// needs a path, and so on.
const maxSignerDepth = 3

// revChecker holds the state of one verification's revocation checks.
type revChecker struct {
	ctx  context.Context
	v    *Verifier
	at   time.Time
	snap crl.Snapshot // taken on first use; nil until then or without a Source
	sigs sigCache
	// signers memoises signer validations by anchor and certificate.
	signers map[[2]string]certStatus
	// active holds the certificates whose status is being determined,
	// so a CRL that only a certificate's own key vouches for is skipped.
	active []*x509.Certificate
}

func newRevChecker(ctx context.Context, v *Verifier, at time.Time) *revChecker {
	return &revChecker{ctx: ctx, v: v, at: at, sigs: make(sigCache), signers: make(map[[2]string]certStatus)}
}

func (rc *revChecker) snapshot() crl.Snapshot {
	if rc.snap == nil && rc.v.src != nil {
		rc.snap = rc.v.src.Snapshot()
	}
	return rc.snap
}

func (rc *revChecker) release() {
	if rc.snap != nil {
		rc.snap.Release()
		rc.snap = nil
	}
}

// certStatus is the revocation status of a certificate or a path.
type certStatus struct {
	reason Reason // ok, revoked, crl-unavailable or crl-stale
	detail string
	// leafCRL is the CRL that decided the target's status, if any.
	leafCRL *crl.Info
	// grace: a CRL past its nextUpdate, within Options.Grace, was used.
	grace bool
}

// checkPath checks the status of every certificate of p but the anchor.
// A revoked certificate anywhere decides; otherwise the first failure,
// from the anchor down, does. dps are the target's distribution points.
func (rc *revChecker) checkPath(p path, dps []distributionPoint, depth int) certStatus {
	var bad *certStatus
	var out certStatus
	for i := len(p.chain) - 1; i >= 0; i-- {
		var st certStatus
		if i == 0 {
			st = rc.checkCert(p, 0, dps, depth)
			out.leafCRL = st.leafCRL
		} else if cdps, err := certDistributionPoints(p.chain[i]); err != nil {
			st = certStatus{reason: ReasonCRLUnavailable, detail: fmt.Sprintf("intermediate %s: %v", shortFingerprint(p.chain[i].Raw), err)}
		} else {
			st = rc.checkCert(p, i, cdps, depth)
		}
		if st.reason == ReasonRevoked {
			if i != 0 {
				st.leafCRL = nil // the target's status was not decided
			}
			return st
		}
		out.grace = out.grace || st.grace
		if st.reason != ReasonOK && bad == nil {
			bad = &st
		}
		if i == 0 {
			out.detail = st.detail
		}
	}
	if bad != nil {
		bad.leafCRL = out.leafCRL
		bad.grace = out.grace
		return *bad
	}
	out.reason = ReasonOK
	return out
}

// label names certificate i of a path in details, without personal data.
func label(p path, i, depth int) string {
	switch {
	case i > 0:
		return "intermediate " + shortFingerprint(p.chain[i].Raw)
	case depth > 0:
		return "CRL signer " + shortFingerprint(p.chain[0].Raw)
	}
	return "certificate"
}

// checkCert runs RFC 5280 §6.3.3 for certificate i of p, issued by
// certificate i+1 (or the anchor), over its distribution points dps.
func (rc *revChecker) checkCert(p path, i int, dps []distributionPoint, depth int) certStatus {
	cert := p.chain[i]
	who := label(p, i, depth)
	unavailable := func(format string, args ...any) certStatus {
		return certStatus{reason: ReasonCRLUnavailable, detail: who + ": " + fmt.Sprintf(format, args...)}
	}
	if err := rc.ctx.Err(); err != nil {
		return unavailable("%v", err)
	}
	snap := rc.snapshot()
	if snap == nil {
		return unavailable("no revocation source configured")
	}
	rc.active = append(rc.active, cert)
	defer func() { rc.active = rc.active[:len(rc.active)-1] }()

	if len(dps) == 0 {
		dps = []distributionPoint{{}} // one implicit distribution point: the issuer's complete CRL
	}
	var (
		mask       crl.ReasonFlags
		used       []*crl.Info
		grace      bool
		candidates int
		why        string    // why the first unusable CRL was skipped
		stale      *crl.Info // a CRL skipped as stale
	)
	skip := func(info *crl.Info, format string, args ...any) {
		if why == "" {
			why = "CRL " + crlName(info) + ": " + fmt.Sprintf(format, args...)
		}
	}
	for _, dp := range dps {
		indirect := len(dp.crlIssuerNames) > 0
		issuers := dp.crlIssuer
		if !indirect {
			issuers = [][]byte{cert.RawIssuer}
		}
		for _, issuerName := range issuers {
			for _, u := range snap.ByIssuer(issuerName) {
				candidates++
				info := u.Info()
				interim, reason := applicable(cert, &dp, indirect, issuerName, info)
				if reason != "" {
					skip(info, "%s", reason)
					continue
				}
				// (d): a CRL adding no reason still missing is not needed;
				// it is still consulted, conservatively, and a listing in it
				// counts (RFC 5280 stops once all reasons are covered).
				extra := interim&^mask == 0
				// RFC 5280 §6.3.3 (a)(1): the CRL is current.
				switch {
				case info.NextUpdate.IsZero():
					skip(info, "no nextUpdate: freshness cannot be judged")
					continue
				case rc.at.Before(info.ThisUpdate):
					skip(info, "thisUpdate %s is after the verification time", stamp(info.ThisUpdate))
					continue
				case rc.at.After(info.NextUpdate.Add(rc.v.grace)):
					if stale == nil {
						stale = info
					}
					continue
				}
				inGrace := rc.at.After(info.NextUpdate)
				// (f): the CRL's signer is authorised.
				auth := rc.authorised(p, i, u, info, depth)
				if auth.reason != ReasonOK {
					if extra {
						continue
					}
					skip(info, "%s", auth.detail)
					continue
				}
				// (g): look the certificate up.
				rev, listed, err := u.Lookup(rc.ctx, cert.RawIssuer, cert.SerialNumber)
				if err != nil {
					return unavailable("CRL %s lookup: %v", crlName(info), err)
				}
				if listed && rev.Reason == crl.ReasonRemoveFromCRL {
					// Only a delta CRL may say removeFromCRL, and the Source
					// merges deltas: the CRL is inconsistent, do not rely on it.
					skip(info, "lists the certificate as removeFromCRL, which only a delta CRL may")
					continue
				}
				if listed {
					return certStatus{
						reason:  ReasonRevoked,
						detail:  fmt.Sprintf("%s listed in CRL %s: %s since %s", who, crlName(info), crl.ReasonName(rev.Reason), stamp(rev.RevokedAt)),
						leafCRL: info,
						grace:   inGrace || auth.grace,
					}
				}
				if extra {
					continue
				}
				// (j): accumulate the reasons covered.
				mask |= interim
				used = append(used, info)
				grace = grace || inGrace || auth.grace
			}
		}
	}
	if mask == crl.AllReasons {
		oldest := used[0]
		for _, info := range used[1:] {
			if info.ThisUpdate.Before(oldest.ThisUpdate) {
				oldest = info
			}
		}
		st := certStatus{reason: ReasonOK, leafCRL: oldest, grace: grace}
		names := make([]string, len(used))
		for k, info := range used {
			names[k] = crlName(info)
		}
		st.detail = fmt.Sprintf("not listed in CRL %s (nextUpdate %s)", joinNames(names), stamp(oldest.NextUpdate))
		if grace {
			st.detail += "; a CRL past its nextUpdate was used within the grace period"
		}
		return st
	}
	if stale != nil {
		return certStatus{reason: ReasonCRLStale, detail: fmt.Sprintf("%s: CRL %s is current %s..%s, not at %s",
			who, crlName(stale), stamp(stale.ThisUpdate), stamp(stale.NextUpdate), stamp(rc.at))}
	}
	switch {
	case candidates == 0:
		return unavailable("no CRL of its issuer is loaded")
	case mask != 0:
		return unavailable("the usable CRLs cover only some revocation reasons (%#x of %#x)", uint16(mask), uint16(crl.AllReasons))
	case why == "":
		return unavailable("none of %d CRLs is usable", candidates)
	}
	return unavailable("none of %d CRLs is usable; %s", candidates, why)
}

func joinNames(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	out := names[0]
	for _, n := range names[1:] {
		out += " and " + n
	}
	return out
}

// applicable runs RFC 5280 §6.3.3 (b)-(c) for a CRL of issuer issuerName
// found for cert through dp: it returns the interim reasons mask, or why
// the CRL does not apply.
func applicable(cert *x509.Certificate, dp *distributionPoint, indirect bool, issuerName []byte, info *crl.Info) (crl.ReasonFlags, string) {
	switch {
	case !bytes.Equal(info.RawIssuer, issuerName):
		return 0, "issuer name differs from the one asked for"
	case len(info.UnknownCritical) > 0:
		return 0, fmt.Sprintf("critical extension %v not understood", info.UnknownCritical[0])
	case info.EntryUnknownCritical > 0:
		return 0, fmt.Sprintf("%d entries with a critical extension not understood", info.EntryUnknownCritical)
	case info.BaseNumber != nil:
		return 0, "a delta CRL, not merged with its base"
	}
	idp := info.IDP
	// (b)(1): a CRL found through cRLIssuer must be an indirect CRL.
	if indirect && (idp == nil || !idp.Indirect) {
		return 0, "the distribution point names a cRLIssuer but the CRL is not indirect"
	}
	if idp != nil {
		// (b)(2)(i): the distribution point names match.
		if idp.FullName != nil || idp.RelativeName != nil {
			idpNames := idp.FullName
			if idp.RelativeName != nil {
				if n, ok := appendRDN(info.RawIssuer, idp.RelativeName); ok {
					idpNames = append(slices.Clip(idpNames), directoryGeneralName(n))
				}
			}
			var dpNames [][]byte
			switch {
			case dp.fullName != nil:
				dpNames = dp.fullName
			case dp.relative != nil:
				// Relative to the cRLIssuer, or to the certificate's issuer.
				if n, ok := appendRDN(issuerName, dp.relative); ok {
					dpNames = [][]byte{directoryGeneralName(n)}
				}
			default:
				dpNames = dp.crlIssuerNames
			}
			if !intersects(idpNames, dpNames) {
				return 0, "issuingDistributionPoint names another distribution point"
			}
		}
		isCA := cert.BasicConstraintsValid && cert.IsCA
		switch {
		case idp.OnlyUser && isCA: // (b)(2)(ii)
			return 0, "covers end-entity certificates only"
		case idp.OnlyCA && !isCA: // (b)(2)(iii)
			return 0, "covers CA certificates only"
		case idp.OnlyAttr: // (b)(2)(iv)
			return 0, "covers attribute certificates only"
		}
	}
	// (c): the reasons this CRL covers for this distribution point.
	interim := crl.AllReasons
	if idp != nil && idp.OnlySomeReasons != 0 {
		interim &= idp.OnlySomeReasons
	}
	if dp.reasons != 0 {
		interim &= dp.reasons
	}
	if interim == 0 {
		return 0, "covers none of the distribution point's reasons"
	}
	return interim, ""
}

func intersects(a, b [][]byte) bool {
	for _, x := range a {
		if slices.ContainsFunc(b, func(y []byte) bool { return bytes.Equal(x, y) }) {
			return true
		}
	}
	return false
}

func hasCRLSign(c *x509.Certificate) bool {
	return c.KeyUsage == 0 || c.KeyUsage&x509.KeyUsageCRLSign != 0
}

// sameKey reports whether a and b have the same subject name and key.
func sameKey(a, b *x509.Certificate) bool {
	return bytes.Equal(a.RawSubject, b.RawSubject) && bytes.Equal(a.RawSubjectPublicKeyInfo, b.RawSubjectPublicKeyInfo)
}

// authorised is RFC 5280 §6.3.3 (f) for a CRL u used for certificate i of
// p: the signer's subject is the CRL issuer, and a certificate with the
// signer's name and key, with cRLSign, is either certificate i itself (a
// CRL issuer's status in the indirect CRL it signs, PKITS 4.14.30) or a
// certificate of p above i (validated with p, its status checked with p),
// or has a valid, unrevoked path of its own to p's anchor. The result is
// ok or crl-unavailable: a CRL whose signer is revoked does not count
// (PKITS 4.4.21).
func (rc *revChecker) authorised(p path, i int, u crl.Usable, info *crl.Info, depth int) certStatus {
	no := func(format string, args ...any) certStatus {
		return certStatus{reason: ReasonCRLUnavailable, detail: fmt.Sprintf(format, args...)}
	}
	signer := u.Signer()
	switch {
	case signer == nil:
		return no("no signer")
	case !bytes.Equal(signer.RawSubject, info.RawIssuer):
		return no("the signer's subject is not the CRL issuer")
	}
	why := ""
	for j := i; j <= len(p.chain); j++ {
		if c := p.at(j); sameKey(c, signer) {
			if hasCRLSign(c) {
				return certStatus{reason: ReasonOK}
			}
			why = "the issuing certificate lacks cRLSign"
		}
	}
	// Another certificate of the signer's name and key.
	cands := []*x509.Certificate{signer}
	for _, c := range rc.v.inter[string(signer.RawSubject)] {
		if !bytes.Equal(c.Raw, signer.Raw) && sameKey(c, signer) {
			cands = append(cands, c)
		}
	}
	for _, c := range cands {
		id := shortFingerprint(c.Raw)
		switch {
		case !hasCRLSign(c):
			why = "signer " + id + " lacks cRLSign"
			continue
		case slices.ContainsFunc(rc.active, func(a *x509.Certificate) bool { return bytes.Equal(a.Raw, c.Raw) }):
			why = "signer " + id + " is a certificate whose status this CRL would decide"
			continue
		case depth+1 > maxSignerDepth:
			why = "signer " + id + ": too many nested CRL signers"
			continue
		}
		st := rc.validateSigner(c, p.anchor, depth+1)
		if st.reason == ReasonOK {
			return certStatus{reason: ReasonOK, grace: st.grace}
		}
		why = "signer " + id + ": " + st.detail
	}
	return no("%s", why)
}

// validateSigner validates a CRL signer's certificate as the target of a
// path to anchor a (RFC 5280 §6.3.3 (f)): validity, a path, the path's
// checks, and the revocation status of every certificate of it.
func (rc *revChecker) validateSigner(c *x509.Certificate, a *anchor, depth int) certStatus {
	key := [2]string{string(a.cert.Raw), string(c.Raw)}
	if st, ok := rc.signers[key]; ok {
		return st
	}
	st := rc.validateSignerUncached(c, a, depth)
	rc.signers[key] = st
	return st
}

func (rc *revChecker) validateSignerUncached(c *x509.Certificate, a *anchor, depth int) certStatus {
	no := func(format string, args ...any) certStatus {
		return certStatus{reason: ReasonCRLUnavailable, detail: fmt.Sprintf(format, args...)}
	}
	switch {
	case rc.at.Before(c.NotBefore) || rc.at.After(c.NotAfter):
		return no("valid %s..%s, not at %s", stamp(c.NotBefore), stamp(c.NotAfter), stamp(rc.at))
	case len(c.UnhandledCriticalExtensions) > 0:
		return no("critical extension %v not understood", c.UnhandledCriticalExtensions[0])
	}
	dps, err := certDistributionPoints(c)
	if err != nil {
		return no("%v", err)
	}
	paths, detail := rc.v.buildPaths(rc.sigs, c, a)
	if len(paths) == 0 {
		return no("no path to the anchor: %s", detail)
	}
	var best *certStatus
	for _, p := range paths {
		if detail := validatePath(p, rc.at); detail != "" {
			if best == nil {
				best = &certStatus{reason: ReasonCRLUnavailable, detail: detail}
			}
			continue
		}
		st := rc.checkPath(p, dps, depth)
		if st.reason == ReasonOK {
			return st
		}
		if best == nil || best.reason != ReasonRevoked {
			best = &st
		}
	}
	return *best
}

func crlName(info *crl.Info) string {
	if info.Number == nil {
		return "without number"
	}
	return "#" + info.Number.String()
}
