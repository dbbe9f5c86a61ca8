package verify

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/kazashi/kazashi/firmware/crl"
)

var oidNameConstraints = asn1.ObjectIdentifier{2, 5, 29, 30}

func hasExtension(c *x509.Certificate, oid asn1.ObjectIdentifier) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return true
		}
	}
	return false
}

// distributionPoint is one DistributionPoint of a certificate's
// cRLDistributionPoints (RFC 5280 §4.2.1.13):
//
//	DistributionPoint ::= SEQUENCE {
//	     distributionPoint       [0]     DistributionPointName OPTIONAL,
//	     reasons                 [1]     ReasonFlags OPTIONAL,
//	     cRLIssuer               [2]     GeneralNames OPTIONAL }
type distributionPoint struct {
	// fullName holds the DER GeneralNames of distributionPoint fullName.
	fullName [][]byte
	// relative is the DER RelativeDistinguishedName (a SET) of
	// nameRelativeToCRLIssuer.
	relative []byte
	// reasons is the ReasonFlags; 0 when absent, meaning all reasons.
	reasons crl.ReasonFlags
	// crlIssuer holds the DER Names of the directoryName entries of
	// cRLIssuer; crlIssuerNames all its GeneralNames, DER.
	crlIssuer      [][]byte
	crlIssuerNames [][]byte
}

// parseCRLDistributionPoints parses the value of a cRLDistributionPoints
// extension.
func parseCRLDistributionPoints(value []byte) ([]distributionPoint, error) {
	dps, err := sequence(value)
	if err != nil {
		return nil, fmt.Errorf("cRLDistributionPoints: %w", err)
	}
	if len(dps) == 0 {
		return nil, errors.New("cRLDistributionPoints: empty")
	}
	out := make([]distributionPoint, 0, len(dps))
	for _, raw := range dps {
		if raw.Class != asn1.ClassUniversal || raw.Tag != asn1.TagSequence {
			return nil, errors.New("cRLDistributionPoints: distribution point is not a SEQUENCE")
		}
		fields, err := sequence(raw.FullBytes)
		if err != nil {
			return nil, fmt.Errorf("cRLDistributionPoints: %w", err)
		}
		var dp distributionPoint
		last := -1
		for _, f := range fields {
			if f.Class != asn1.ClassContextSpecific || f.Tag <= last || f.Tag > 2 {
				return nil, errors.New("cRLDistributionPoints: unexpected or out-of-order field")
			}
			last = f.Tag
			switch f.Tag {
			case 0:
				if dp.fullName, dp.relative, err = distributionPointName(f); err != nil {
					return nil, fmt.Errorf("cRLDistributionPoints: %w", err)
				}
			case 1:
				if dp.reasons, err = reasonFlags(f); err != nil {
					return nil, fmt.Errorf("cRLDistributionPoints: %w", err)
				}
			case 2:
				if !f.IsCompound {
					return nil, errors.New("cRLDistributionPoints: cRLIssuer is not constructed")
				}
				if dp.crlIssuerNames, err = generalNames(f.Bytes); err != nil {
					return nil, fmt.Errorf("cRLDistributionPoints: cRLIssuer: %w", err)
				}
				for _, gn := range dp.crlIssuerNames {
					if name, ok := directoryName(gn); ok {
						dp.crlIssuer = append(dp.crlIssuer, name)
					}
				}
			}
		}
		out = append(out, dp)
	}
	return out, nil
}

// distributionPointName unwraps a [0] DistributionPointName field: the
// fullName GeneralNames as DER elements, or the nameRelativeToCRLIssuer
// as a DER SET.
func distributionPointName(f asn1.RawValue) (full [][]byte, relative []byte, err error) {
	if !f.IsCompound {
		return nil, nil, errors.New("distributionPoint is not constructed")
	}
	var choice asn1.RawValue
	rest, err := asn1.Unmarshal(f.Bytes, &choice)
	if err != nil || len(rest) > 0 || choice.Class != asn1.ClassContextSpecific || !choice.IsCompound {
		return nil, nil, errors.New("malformed DistributionPointName")
	}
	switch choice.Tag {
	case 0:
		if full, err = generalNames(choice.Bytes); err != nil {
			return nil, nil, err
		}
		return full, nil, nil
	case 1:
		if len(choice.Bytes) == 0 {
			return nil, nil, errors.New("empty nameRelativeToCRLIssuer")
		}
		rdn, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: choice.Bytes})
		if err != nil {
			return nil, nil, err
		}
		return nil, rdn, nil
	}
	return nil, nil, errors.New("malformed DistributionPointName")
}

// generalNames splits the contents of a GeneralNames SEQUENCE into DER
// GeneralName elements; there must be at least one.
func generalNames(in []byte) ([][]byte, error) {
	var names [][]byte
	for len(in) > 0 {
		var gn asn1.RawValue
		var err error
		if in, err = asn1.Unmarshal(in, &gn); err != nil || gn.Class != asn1.ClassContextSpecific {
			return nil, errors.New("malformed GeneralName")
		}
		names = append(names, gn.FullBytes)
	}
	if len(names) == 0 {
		return nil, errors.New("empty GeneralNames")
	}
	return names, nil
}

// directoryName returns the DER Name inside a directoryName [4]
// GeneralName.
func directoryName(gn []byte) ([]byte, bool) {
	var v asn1.RawValue
	if rest, err := asn1.Unmarshal(gn, &v); err != nil || len(rest) > 0 ||
		v.Class != asn1.ClassContextSpecific || v.Tag != 4 || !v.IsCompound {
		return nil, false
	}
	var name asn1.RawValue
	if rest, err := asn1.Unmarshal(v.Bytes, &name); err != nil || len(rest) > 0 || name.Tag != asn1.TagSequence {
		return nil, false
	}
	return v.Bytes, true
}

// directoryGeneralName wraps a DER Name as a directoryName GeneralName.
func directoryGeneralName(name []byte) []byte {
	b, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: name})
	if err != nil {
		return nil
	}
	return b
}

// appendRDN returns the DER Name of name with the DER RDN (a SET, or the
// [1] IMPLICIT form of nameRelativeToCRLIssuer) appended (RFC 5280
// §4.2.1.13: a relative distribution point name is appended to the CRL
// issuer's name).
func appendRDN(name, rdn []byte) ([]byte, bool) {
	var seq asn1.RawValue
	if rest, err := asn1.Unmarshal(name, &seq); err != nil || len(rest) > 0 || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return nil, false
	}
	var set asn1.RawValue
	if rest, err := asn1.Unmarshal(rdn, &set); err != nil || len(rest) > 0 || !set.IsCompound ||
		!(set.Class == asn1.ClassUniversal && set.Tag == asn1.TagSet || set.Class == asn1.ClassContextSpecific && set.Tag == 1) {
		return nil, false
	}
	setDER, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: set.Bytes})
	if err != nil {
		return nil, false
	}
	out, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true,
		Bytes: append(append([]byte(nil), seq.Bytes...), setDER...)})
	if err != nil {
		return nil, false
	}
	return out, true
}

// reasonFlags decodes an implicitly tagged ReasonFlags BIT STRING: bit i
// of the string is bit i of the result (RFC 5280 §4.2.1.13). Bits past
// aACompromise are ignored; an empty set is an error, since 0 means "all
// reasons" here.
func reasonFlags(f asn1.RawValue) (crl.ReasonFlags, error) {
	if f.IsCompound || len(f.Bytes) == 0 || f.Bytes[0] > 7 || (len(f.Bytes) == 1 && f.Bytes[0] != 0) {
		return 0, errors.New("malformed ReasonFlags")
	}
	var flags crl.ReasonFlags
	bits := f.Bytes[1:]
	for i := 0; i < 9 && i/8 < len(bits); i++ {
		if bits[i/8]&(0x80>>(i%8)) != 0 {
			flags |= 1 << i
		}
	}
	flags &= crl.AllReasons
	if flags == 0 {
		return 0, errors.New("ReasonFlags names no reason")
	}
	return flags, nil
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
