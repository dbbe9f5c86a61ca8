package verify

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"slices"
)

// oidStandIn is what ParseCertificate renames cRLDistributionPoints to
// for crypto/x509: 2.5.29.0, an extension it does not know.
var oidStandIn = asn1.ObjectIdentifier{2, 5, 29, 0}

// ParseCertificate parses one DER certificate like x509.ParseCertificate,
// and also accepts a cRLDistributionPoints extension whose
// distributionPoint is a nameRelativeToCRLIssuer, which crypto/x509
// refuses ("x509: invalid CRL distribution point") although RFC 5280
// §4.2.1.13 allows it (NIST PKITS 4.14.4-6 and 4.14.29 use it). Such an
// extension must then parse with this package's own parser; the returned
// certificate's CRLDistributionPoints (URIs) is empty. Use it for leaves,
// intermediates and anchors alike; VerifyAt uses it for the leaf.
func ParseCertificate(der []byte) (*x509.Certificate, error) {
	c, err := x509.ParseCertificate(der)
	if err == nil || err.Error() != "x509: invalid CRL distribution point" {
		return c, err
	}
	var outer asn1.RawValue
	if _, e := asn1.Unmarshal(der, &outer); e != nil {
		return nil, err
	}
	tbsStart := len(outer.FullBytes) - len(outer.Bytes)
	oid := []byte{0x06, 0x03, 0x55, 0x1D, 0x1F} // 2.5.29.31
	// Try every occurrence of the OID's encoding: the one in the
	// extensions is the one that makes the certificate parse.
	for from := 0; ; {
		k := bytes.Index(der[from:], oid)
		if k < 0 {
			return nil, err
		}
		pos := from + k + len(oid) - 1
		from = pos
		patched := bytes.Clone(der)
		patched[pos] = 0
		p, e := x509.ParseCertificate(patched)
		if e != nil || len(p.RawTBSCertificate) > len(der)-tbsStart {
			continue
		}
		i := slices.IndexFunc(p.Extensions, func(x pkix.Extension) bool { return x.Id.Equal(oidStandIn) })
		if i < 0 {
			continue
		}
		if _, e := parseCRLDistributionPoints(p.Extensions[i].Value); e != nil {
			return nil, err
		}
		p.Extensions[i].Id = oidCRLDistributionPoints
		p.UnhandledCriticalExtensions = slices.DeleteFunc(p.UnhandledCriticalExtensions, oidStandIn.Equal)
		p.Raw = der
		p.RawTBSCertificate = der[tbsStart : tbsStart+len(p.RawTBSCertificate)]
		return p, nil
	}
}
