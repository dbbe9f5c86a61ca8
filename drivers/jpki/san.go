package jpki

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"unicode/utf8"
)

// SignAttributes are the basic 4 information in the subject alternative
// name of the JPKI signature certificate (doc mynumbercard.md §2.5; myna Go
// jpki_ap.go GetAttributes; J-LIS certificate profile
// j-lis.go.jp/file/13_profile_genkou.pdf). All are personal data: never log
// them.
type SignAttributes struct {
	Name         string // .1 氏名 (characters outside JIS level 1/2 and 補助漢字 substituted)
	NameSubst    string // .2 substitution positions in Name ("0"/"1" string)
	Sex          string // .3 "1" male, "2" female, "3" unknown
	BirthDate    string // .4 "EYYYYMMDD", see ParseEraBirthDate
	Address      string // .5 住所
	AddressSubst string // .6 substitution positions in Address
}

var (
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidJPKIAttribute  = asn1.ObjectIdentifier{1, 2, 392, 200149, 8, 5, 5} // .1 … .6
)

// ErrNoSignAttributes: the certificate has no subject alternative name with
// the JPKI basic 4 information (e.g. an authentication certificate).
var ErrNoSignAttributes = errors.New("jpki: certificate carries no basic 4 information")

// ParseSignAttributes reads the basic 4 information from the raw subject
// alternative name extension of cert (cert.Extensions; crypto/x509 skips
// otherName). Each is an otherName
//
//	[0] { OID 1.2.392.200149.8.5.5.N, [0] { UTF8String / PrintableString / IA5String } }
//
// Other GeneralNames and otherNames with other OIDs are skipped. Strict:
// DER, each JPKI OID at most once, name, sex, birth date and address
// present; the substitution strings may be absent. The values are not
// interpreted (ParseEraBirthDate reads the birth date). Errors never contain
// the values.
func ParseSignAttributes(cert *x509.Certificate) (*SignAttributes, error) {
	if cert == nil {
		return nil, errors.New("jpki: sign attributes: no certificate")
	}
	var raw []byte
	found := false
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidSubjectAltName) {
			if found {
				return nil, fmt.Errorf("%w: sign attributes: two subjectAltName extensions", ErrMalformed)
			}
			raw, found = e.Value, true
		}
	}
	if !found {
		return nil, ErrNoSignAttributes
	}
	return parseSignSAN(raw)
}

// parseSignSAN parses the value of a subjectAltName extension.
func parseSignSAN(raw []byte) (*SignAttributes, error) {
	a, err := parseSAN(raw)
	if errors.Is(err, ErrNoSignAttributes) {
		return nil, err
	}
	if err != nil {
		return nil, malformed("sign attributes", err)
	}
	return a, nil
}

func parseSAN(raw []byte) (*SignAttributes, error) {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(raw, &seq)
	if err != nil {
		return nil, errors.New("subjectAltName is not DER")
	}
	if len(rest) != 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence || !seq.IsCompound {
		return nil, errors.New("subjectAltName is not one SEQUENCE")
	}
	var a SignAttributes
	fields := [...]*string{&a.Name, &a.NameSubst, &a.Sex, &a.BirthDate, &a.Address, &a.AddressSubst}
	var seen [len(fields)]bool
	for i, names := 0, seq.Bytes; len(names) > 0; i++ {
		var gn asn1.RawValue
		if names, err = asn1.Unmarshal(names, &gn); err != nil {
			return nil, fmt.Errorf("GeneralName %d is not DER", i)
		}
		if gn.Class != asn1.ClassContextSpecific || gn.Tag != 0 {
			continue // not an otherName
		}
		if !gn.IsCompound {
			return nil, fmt.Errorf("otherName %d is not constructed", i)
		}
		var oid asn1.ObjectIdentifier
		body, err := asn1.Unmarshal(gn.Bytes, &oid)
		if err != nil {
			return nil, fmt.Errorf("otherName %d: type-id is not an OID", i)
		}
		n := jpkiAttribute(oid)
		if n == 0 {
			continue // another otherName
		}
		var explicit asn1.RawValue
		if rest, err := asn1.Unmarshal(body, &explicit); err != nil || len(rest) != 0 ||
			explicit.Class != asn1.ClassContextSpecific || explicit.Tag != 0 || !explicit.IsCompound {
			return nil, fmt.Errorf("otherName %d (.%d): value is not one [0] EXPLICIT", i, n)
		}
		s, err := sanString(explicit.Bytes)
		if err != nil {
			return nil, fmt.Errorf("otherName %d (.%d): %v", i, n, err)
		}
		if seen[n-1] {
			return nil, fmt.Errorf("attribute .%d twice", n)
		}
		seen[n-1] = true
		*fields[n-1] = s
	}
	if !seen[0] && !seen[2] && !seen[3] && !seen[4] {
		return nil, ErrNoSignAttributes
	}
	for _, n := range []int{1, 3, 4, 5} {
		if !seen[n-1] {
			return nil, fmt.Errorf("attribute .%d missing", n)
		}
	}
	return &a, nil
}

// jpkiAttribute returns N for OID 1.2.392.200149.8.5.5.N with N in 1..6,
// else 0.
func jpkiAttribute(oid asn1.ObjectIdentifier) int {
	if len(oid) != len(oidJPKIAttribute)+1 || !oid[:len(oidJPKIAttribute)].Equal(oidJPKIAttribute) {
		return 0
	}
	if n := oid[len(oid)-1]; n >= 1 && n <= 6 {
		return n
	}
	return 0
}

// sanString decodes exactly one UTF8String, PrintableString or IA5String.
func sanString(b []byte) (string, error) {
	var v asn1.RawValue
	rest, err := asn1.Unmarshal(b, &v)
	if err != nil || len(rest) != 0 || v.Class != asn1.ClassUniversal || v.IsCompound {
		return "", errors.New("not one primitive string")
	}
	switch v.Tag {
	case asn1.TagUTF8String:
		if !utf8.Valid(v.Bytes) {
			return "", errors.New("UTF8String is not UTF-8")
		}
	case asn1.TagPrintableString, asn1.TagIA5String:
		for _, c := range v.Bytes {
			if c >= 0x80 {
				return "", fmt.Errorf("string tag %d is not ASCII", v.Tag)
			}
		}
	default:
		return "", fmt.Errorf("string tag %d not supported", v.Tag)
	}
	return string(v.Bytes), nil
}
