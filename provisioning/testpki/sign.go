package testpki

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"strings"
	"unicode/utf8"
)

// OIDs of the basic 4 information in a JPKI signature certificate's
// subjectAltName: 1.2.392.200149.8.5.5.N (doc §2.5).
var (
	oidSANName         = asn1.ObjectIdentifier{1, 2, 392, 200149, 8, 5, 5, 1} // 氏名
	oidSANNameSubst    = asn1.ObjectIdentifier{1, 2, 392, 200149, 8, 5, 5, 2} // substitution positions in 氏名
	oidSANSex          = asn1.ObjectIdentifier{1, 2, 392, 200149, 8, 5, 5, 3} // 性別 1/2/3
	oidSANBirthDate    = asn1.ObjectIdentifier{1, 2, 392, 200149, 8, 5, 5, 4} // 生年月日 EYYYYMMDD
	oidSANAddress      = asn1.ObjectIdentifier{1, 2, 392, 200149, 8, 5, 5, 5} // 住所
	oidSANAddressSubst = asn1.ObjectIdentifier{1, 2, 392, 200149, 8, 5, 5, 6} // substitution positions in 住所
	oidSubjectAltName  = asn1.ObjectIdentifier{2, 5, 29, 17}
)

// signSAN encodes the subjectAltName extension of a signature certificate:
//
//	SEQUENCE OF GeneralName, each
//	  [0] IMPLICIT OtherName {           A0 len
//	    type-id OBJECT IDENTIFIER,        06 len 2A 83 08 8C 9B 55 08 05 05 N
//	    value   [0] EXPLICIT UTF8String   A0 len 0C len <UTF-8>
//	  }
//
// in the order N = 1..6. The person's characters are all within JIS X 0208,
// so nothing is substituted: the position strings are one "0" per
// character of the name and the address.
func signSAN(p Person) (pkix.Extension, error) {
	birth, err := eraBirthDate(p.BirthDate)
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("SAN birth date: %w", err)
	}
	values := []struct {
		oid asn1.ObjectIdentifier
		s   string
	}{
		{oidSANName, p.Name},
		{oidSANNameSubst, strings.Repeat("0", utf8.RuneCountInString(p.Name))},
		{oidSANSex, p.Sex},
		{oidSANBirthDate, birth},
		{oidSANAddress, p.Address},
		{oidSANAddressSubst, strings.Repeat("0", utf8.RuneCountInString(p.Address))},
	}
	var names []byte
	for _, v := range values {
		str, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagUTF8String, Bytes: []byte(v.s)})
		if err != nil {
			return pkix.Extension{}, err
		}
		explicit, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: str})
		if err != nil {
			return pkix.Extension{}, err
		}
		oid, err := asn1.Marshal(v.oid)
		if err != nil {
			return pkix.Extension{}, err
		}
		otherName, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, explicit...)})
		if err != nil {
			return pkix.Extension{}, err
		}
		names = append(names, otherName...)
	}
	value, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: names})
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: oidSubjectAltName, Value: value}, nil
}
