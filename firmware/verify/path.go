package verify

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"slices"
	"time"
)

// Limits of path building: certificates in a path besides the anchor, and
// candidate paths tried per target.
const (
	maxPathCerts = 8
	maxPaths     = 16
)

// path is one candidate certification path: chain[0] is the target, each
// chain[i] is signed by chain[i+1], the last by the anchor.
type path struct {
	chain  []*x509.Certificate
	anchor *anchor
}

// at returns certificate i of the path, the anchor being len(chain).
func (p path) at(i int) *x509.Certificate {
	if i == len(p.chain) {
		return p.anchor.cert
	}
	return p.chain[i]
}

// certs returns the path leaf first, anchor last.
func (p path) certs() []*x509.Certificate {
	return append(slices.Clone(p.chain), p.anchor.cert)
}

// sigCache remembers signature checks within one verification.
type sigCache map[[2]*x509.Certificate]error

// check verifies child's signature with parent's key (only the accepted
// algorithms).
func (s sigCache) check(child, parent *x509.Certificate) error {
	k := [2]*x509.Certificate{child, parent}
	if err, ok := s[k]; ok {
		return err
	}
	var err error
	if !acceptedAlgorithm(child.SignatureAlgorithm) {
		err = fmt.Errorf("signature algorithm %v not accepted", child.SignatureAlgorithm)
	} else {
		err = parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature)
	}
	s[k] = err
	return err
}

// keyIDOrder returns cands with those whose subject key identifier matches
// aki (or either is absent) first, each group in the given order. Key
// identifiers only order: the signature decides.
func keyIDOrder[T any](cands []T, cert func(T) *x509.Certificate, aki []byte) []T {
	out := make([]T, 0, len(cands))
	for _, want := range []bool{true, false} {
		for _, c := range cands {
			ski := cert(c).SubjectKeyId
			if match := len(aki) == 0 || len(ski) == 0 || bytes.Equal(aki, ski); match == want {
				out = append(out, c)
			}
		}
	}
	return out
}

// buildPaths returns the candidate paths from target to an anchor (only
// to only, if not nil), depth first: at each step the anchors, then the
// intermediates, whose subject equals the current certificate's issuer
// name byte for byte and whose key verifies its signature, ordered by key
// identifier. No certificate appears twice in a path. Without a path,
// detail says why.
func (v *Verifier) buildPaths(sigs sigCache, target *x509.Certificate, only *anchor) (paths []path, detail string) {
	anchorOf := func(a *anchor) *x509.Certificate { return a.cert }
	itself := func(c *x509.Certificate) *x509.Certificate { return c }
	var leafErr error
	var dfs func(chain []*x509.Certificate)
	dfs = func(chain []*x509.Certificate) {
		cur := chain[len(chain)-1]
		for _, a := range keyIDOrder(v.byName[string(cur.RawIssuer)], anchorOf, cur.AuthorityKeyId) {
			if len(paths) >= maxPaths {
				return
			}
			if (only != nil && a != only) || bytes.Equal(a.cert.Raw, cur.Raw) {
				continue
			}
			if err := sigs.check(cur, a.cert); err != nil {
				if len(chain) == 1 {
					leafErr = err
				}
				continue
			}
			paths = append(paths, path{chain: slices.Clone(chain), anchor: a})
		}
		if len(chain) >= maxPathCerts {
			return
		}
		for _, c := range keyIDOrder(v.inter[string(cur.RawIssuer)], itself, cur.AuthorityKeyId) {
			if len(paths) >= maxPaths {
				return
			}
			if slices.ContainsFunc(chain, func(d *x509.Certificate) bool { return bytes.Equal(d.Raw, c.Raw) }) {
				continue
			}
			if err := sigs.check(cur, c); err != nil {
				if len(chain) == 1 {
					leafErr = err
				}
				continue
			}
			dfs(append(chain[:len(chain):len(chain)], c))
		}
	}
	dfs([]*x509.Certificate{target})
	if len(paths) > 0 {
		return paths, ""
	}
	nA, nI := len(v.byName[string(target.RawIssuer)]), len(v.inter[string(target.RawIssuer)])
	switch {
	case nA+nI == 0 && v.interN == 0:
		return nil, "no trust anchor has the issuer's name"
	case nA+nI == 0:
		return nil, "no trust anchor or intermediate has the issuer's name"
	case leafErr != nil && nI == 0:
		return nil, fmt.Sprintf("signature verifies under none of the %d anchors with the issuer's name: %v", nA, leafErr)
	case leafErr != nil:
		return nil, fmt.Sprintf("signature verifies under none of the %d anchors and intermediates with the issuer's name, or no path continues from them: %v", nA+nI, leafErr)
	default:
		return nil, fmt.Sprintf("no path of at most %d certificates from the issuer to a trust anchor", maxPathCerts)
	}
}

func selfIssued(c *x509.Certificate) bool { return bytes.Equal(c.RawSubject, c.RawIssuer) }

// validatePath checks what path building did not (RFC 5280 §6.1.3-§6.1.4,
// without policy and name-constraint processing, which are refused
// instead): the anchor and every intermediate valid at t; every
// intermediate a CA with keyCertSign (if it has keyUsage) and no critical
// extension not understood; pathLenConstraint, self-issued certificates
// not counted (§6.1.4 (l)-(m)), the anchor's own constraint applied too.
// The target is checked by the caller. It returns "" for a valid path.
func validatePath(p path, t time.Time) string {
	a := p.anchor
	if t.Before(a.cert.NotBefore) || t.After(a.cert.NotAfter) {
		return fmt.Sprintf("anchor %s is valid %s..%s, not at %s", a.id, stamp(a.cert.NotBefore), stamp(a.cert.NotAfter), stamp(t))
	}
	maxLen := len(p.chain)
	if a.cert.MaxPathLen > 0 || a.cert.MaxPathLenZero {
		maxLen = min(maxLen, a.cert.MaxPathLen)
	}
	for j := len(p.chain) - 1; j >= 1; j-- {
		c := p.chain[j]
		id := shortFingerprint(c.Raw)
		switch {
		case t.Before(c.NotBefore) || t.After(c.NotAfter):
			return fmt.Sprintf("intermediate %s is valid %s..%s, not at %s", id, stamp(c.NotBefore), stamp(c.NotAfter), stamp(t))
		case !c.BasicConstraintsValid || !c.IsCA:
			return fmt.Sprintf("intermediate %s is not a CA (basicConstraints)", id)
		case c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0:
			return fmt.Sprintf("intermediate %s lacks keyCertSign", id)
		case len(c.UnhandledCriticalExtensions) > 0:
			return fmt.Sprintf("intermediate %s has critical extension %v not understood", id, c.UnhandledCriticalExtensions[0])
		case hasExtension(c, oidNameConstraints):
			return fmt.Sprintf("intermediate %s carries nameConstraints, which this verifier does not enforce", id)
		case c.RequireExplicitPolicy > 0 || c.RequireExplicitPolicyZero:
			return fmt.Sprintf("intermediate %s requires an explicit certificate policy, which this verifier does not process", id)
		}
		if !selfIssued(c) {
			if maxLen <= 0 {
				return fmt.Sprintf("pathLenConstraint exceeded at intermediate %s", id)
			}
			maxLen--
		}
		if (c.MaxPathLen > 0 || c.MaxPathLenZero) && c.MaxPathLen < maxLen {
			maxLen = c.MaxPathLen
		}
	}
	return ""
}
