package crl

import (
	"bytes"
	"context"
	"encoding/asn1"
	"errors"
	"io"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"
)

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestStrictDERRejects(t *testing.T) {
	okEntry := entryDER(raw(0x01, 0x02))
	okEntryBody := okEntry[2:]
	ecdsaAlg := tlv(0x30, tlv(0x06, raw(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02)))
	ecdsaNull := tlv(0x30, tlv(0x06, raw(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02)), tlv(0x05))
	unknownAlg := tlv(0x30, tlv(0x06, raw(0x2a, 0x03, 0x04)), tlv(0x05))
	rsaParams := tlv(0x30, tlv(0x06, oidSHA256RSA), tlv(0x02, raw(1)))
	algNoNull := tlv(0x30, tlv(0x06, oidSHA256RSA))
	sha384Alg := tlv(0x30, tlv(0x06, raw(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c)), tlv(0x05))
	idp := func(fields ...[]byte) []byte { return ext(oidIDPExt, true, tlv(0x30, fields...)) }
	withSig := func(sig []byte) []byte {
		return tlv(0x30, tlv(0x30, handVersion, algSHA256RSA, handIssuer, handThis), algSHA256RSA, sig)
	}
	big := func(n int) []byte { return []byte{0x83, byte(n >> 16), byte(n >> 8), byte(n)} }

	cases := []struct {
		name string
		der  []byte
		kind error
		msg  string
	}{
		{"empty input", nil, ErrMalformed, "truncated input"},
		{"outer not a SEQUENCE", tlv(0x31, tlv(0x30)), ErrMalformed, "CertificateList: not a SEQUENCE"},
		{"indefinite length", handCRL([][]byte{cat(raw(0x30, 0x80), okEntryBody, raw(0, 0))}), ErrMalformed, "indefinite length"},
		{"non-minimal long form", handCRL([][]byte{cat(raw(0x30, 0x81, byte(len(okEntryBody))), okEntryBody)}), ErrMalformed, "non-minimal length (long form"},
		{"non-minimal leading zero", handCRL([][]byte{cat(raw(0x30, 0x82, 0x00, byte(len(okEntryBody))), okEntryBody)}), ErrMalformed, "leading zero"},
		{"length of length 9", handCRL([][]byte{cat(raw(0x30, 0x89, 1, 0, 0, 0, 0, 0, 0, 0, 0), okEntryBody)}), ErrMalformed, "length of length"},
		{"length beyond enclosing", handCRL([][]byte{cat(raw(0x30, byte(len(okEntryBody)+3)), okEntryBody)}), ErrMalformed, "length exceeds enclosing element"},
		{"inner length beyond entry", handCRL([][]byte{tlv(0x30, raw(0x02, 0x05, 0x01), handTime)}), ErrMalformed, "length exceeds enclosing element"},
		{"high tag number", handCRL([][]byte{raw(0x3f, 0x81, 0x01, 0x00)}), ErrMalformed, "high tag number"},
		{"trailing zero byte", append(handCRL(nil), 0), ErrMalformed, "trailing data"},
		{"two CRLs", append(handCRL(nil), handCRL(nil)...), ErrMalformed, "trailing data"},
		{"version 0 explicit", hand(algSHA256RSA, tlv(0x02, raw(0)), algSHA256RSA, handIssuer, handThis), ErrMalformed, "version"},
		{"version 3", hand(algSHA256RSA, tlv(0x02, raw(2)), algSHA256RSA, handIssuer, handThis), ErrMalformed, "version"},
		{"version non-minimal", hand(algSHA256RSA, tlv(0x02, raw(0, 1)), algSHA256RSA, handIssuer, handThis), ErrMalformed, "version"},
		{"unknown signature algorithm", hand(unknownAlg, handVersion, unknownAlg, handIssuer, handThis), ErrUnsupported, "unknown signature algorithm"},
		{"RSA with INTEGER params", hand(rsaParams, handVersion, rsaParams, handIssuer, handThis), ErrMalformed, "parameters must be NULL or absent"},
		{"ECDSA with NULL params", hand(ecdsaNull, handVersion, ecdsaNull, handIssuer, handThis), ErrMalformed, "parameters must be absent"},
		{"outer algorithm differs", hand(sha384Alg, handVersion, algSHA256RSA, handIssuer, handThis), ErrMalformed, "signatureAlgorithm differs"},
		{"outer algorithm NULL vs absent", hand(algNoNull, handVersion, algSHA256RSA, handIssuer, handThis), ErrMalformed, "signatureAlgorithm differs"},
		{"ecdsa outer differs", hand(algSHA256RSA, handVersion, ecdsaAlg, handIssuer, handThis), ErrMalformed, "signatureAlgorithm differs"},
		{"issuer not a SEQUENCE", hand(algSHA256RSA, handVersion, algSHA256RSA, tlv(0x31), handThis), ErrMalformed, "issuer: unexpected tag"},
		{"issuer empty RDN", hand(algSHA256RSA, handVersion, algSHA256RSA, tlv(0x30, tlv(0x31)), handThis), ErrMalformed, "empty RelativeDistinguishedName"},
		{"issuer bad attribute OID", hand(algSHA256RSA, handVersion, algSHA256RSA, tlv(0x30, tlv(0x31, tlv(0x30, tlv(0x06, raw(0x80, 0x01)), tlv(0x0c)))), handThis), ErrMalformed, "invalid attribute type"},
		{"missing thisUpdate", hand(algSHA256RSA, handVersion, algSHA256RSA, handIssuer), ErrMalformed, "thisUpdate"},
		{"thisUpdate fraction", hand(algSHA256RSA, handVersion, algSHA256RSA, handIssuer, tlv(0x18, []byte("20250102030405.5Z"))), ErrMalformed, "thisUpdate"},
		{"thisUpdate local time", hand(algSHA256RSA, handVersion, algSHA256RSA, handIssuer, tlv(0x18, []byte("20250102030405"))), ErrMalformed, "thisUpdate"},
		{"thisUpdate month 13", hand(algSHA256RSA, handVersion, algSHA256RSA, handIssuer, tlv(0x17, []byte("251301000000Z"))), ErrMalformed, "thisUpdate"},
		{"thisUpdate OCTET STRING", hand(algSHA256RSA, handVersion, algSHA256RSA, handIssuer, tlv(0x04, []byte("250101000000Z"))), ErrMalformed, "thisUpdate"},
		{"revocationDate no seconds", handCRL([][]byte{tlv(0x30, tlv(0x02, raw(1)), tlv(0x17, []byte("2402292359Z")))}), ErrMalformed, "revocationDate"},
		{"revocationDate offset", handCRL([][]byte{tlv(0x30, tlv(0x02, raw(1)), tlv(0x17, []byte("240229235959+0000")))}), ErrMalformed, "revocationDate"},
		{"revocationDate Feb 30", handCRL([][]byte{tlv(0x30, tlv(0x02, raw(1)), tlv(0x17, []byte("240230000000Z")))}), ErrMalformed, "revocationDate"},
		{"revocationDate Feb 29 2023", handCRL([][]byte{tlv(0x30, tlv(0x02, raw(1)), tlv(0x17, []byte("230229000000Z")))}), ErrMalformed, "revocationDate"},
		{"revocationDate hour 24", handCRL([][]byte{tlv(0x30, tlv(0x02, raw(1)), tlv(0x17, []byte("240228240000Z")))}), ErrMalformed, "revocationDate"},
		{"revocationDate second 60", handCRL([][]byte{tlv(0x30, tlv(0x02, raw(1)), tlv(0x17, []byte("240228235960Z")))}), ErrMalformed, "revocationDate"},
		{"revocationDate non-digit", handCRL([][]byte{tlv(0x30, tlv(0x02, raw(1)), tlv(0x17, []byte("24022823595aZ")))}), ErrMalformed, "revocationDate"},
		{"missing revocationDate", handCRL([][]byte{tlv(0x30, tlv(0x02, raw(1)))}), ErrMalformed, "truncated element header"},
		{"entry not a SEQUENCE", handCRL([][]byte{tlv(0x31, tlv(0x02, raw(1)), handTime)}), ErrMalformed, "entry: not a SEQUENCE"},
		{"serial non-minimal 00", handCRL([][]byte{entryDER(raw(0x00, 0x01))}), ErrMalformed, "serialNumber: not a minimal INTEGER"},
		{"serial non-minimal ff", handCRL([][]byte{entryDER(raw(0xff, 0x80))}), ErrMalformed, "serialNumber: not a minimal INTEGER"},
		{"serial empty", handCRL([][]byte{entryDER(nil)}), ErrMalformed, "serialNumber: not a minimal INTEGER"},
		{"serial too long", handCRL([][]byte{entryDER(bytes.Repeat(raw(0x11), 65))}), ErrUnsupported, "serialNumber: too long"},
		{"serial not INTEGER", handCRL([][]byte{tlv(0x30, tlv(0x04, raw(1)), handTime)}), ErrMalformed, "serialNumber: unexpected tag"},
		{"data after entry extensions", handCRL([][]byte{tlv(0x30, tlv(0x02, raw(1)), handTime, tlv(0x30, reasonExt(1)), tlv(0x05))}), ErrMalformed, "data after crlEntryExtensions"},
		{"critical BOOLEAN 0x01", handCRL(nil, tlv(0x30, tlv(0x06, oidCRLNumber), tlv(0x01, raw(0x01)), tlv(0x04, tlv(0x02, raw(1))))), ErrMalformed, "not a DER BOOLEAN"},
		{"critical BOOLEAN two octets", handCRL(nil, tlv(0x30, tlv(0x06, oidCRLNumber), tlv(0x01, raw(0xff, 0xff)), tlv(0x04, tlv(0x02, raw(1))))), ErrMalformed, "not a DER BOOLEAN"},
		{"extnValue not OCTET STRING", handCRL(nil, tlv(0x30, tlv(0x06, oidCRLNumber), tlv(0x02, raw(1)))), ErrMalformed, "extnValue: unexpected tag"},
		{"data after extnValue", handCRL(nil, tlv(0x30, tlv(0x06, oidCRLNumber), tlv(0x04, tlv(0x02, raw(1))), tlv(0x05))), ErrMalformed, "data after extnValue"},
		{"extnID invalid OID", handCRL(nil, ext(raw(0x55, 0x80, 0x1d), false, tlv(0x05))), ErrMalformed, "extnID: invalid OBJECT IDENTIFIER"},
		{"extnID empty OID", handCRL(nil, ext(nil, false, tlv(0x05))), ErrMalformed, "extnID: invalid OBJECT IDENTIFIER"},
		{"extnID truncated OID", handCRL(nil, ext(raw(0x55, 0x9d), false, tlv(0x05))), ErrMalformed, "extnID: invalid OBJECT IDENTIFIER"},
		{"duplicate CRL extension", handCRL(nil, ext(oidCRLNumber, false, tlv(0x02, raw(1))), ext(oidCRLNumber, false, tlv(0x02, raw(2)))), ErrMalformed, "duplicate extension"},
		{"duplicate unknown CRL extension", handCRL(nil, ext(oidUnknownPriv, false, tlv(0x05)), ext(oidUnknownPriv, false, tlv(0x05))), ErrMalformed, "duplicate extension"},
		{"duplicate entry extension", handCRL([][]byte{entryDER(raw(1), reasonExt(1), reasonExt(2))}), ErrMalformed, "duplicate extension"},
		{"cRLNumber negative", handCRL(nil, ext(oidCRLNumber, false, tlv(0x02, raw(0x80)))), ErrMalformed, "cRLNumber: not a minimal non-negative INTEGER"},
		{"cRLNumber non-minimal", handCRL(nil, ext(oidCRLNumber, false, tlv(0x02, raw(0, 1)))), ErrMalformed, "cRLNumber: not a minimal non-negative INTEGER"},
		{"cRLNumber trailing", handCRL(nil, ext(oidCRLNumber, false, cat(tlv(0x02, raw(1)), tlv(0x05)))), ErrMalformed, "cRLNumber: not a minimal"},
		{"deltaCRLIndicator negative", handCRL(nil, ext(oidDelta, true, tlv(0x02, raw(0xff)))), ErrMalformed, "deltaCRLIndicator: not a minimal non-negative INTEGER"},
		{"AKI out of order", handCRL(nil, ext(oidAKIExt, false, tlv(0x30, tlv(0x82, raw(1)), tlv(0x80, raw(1))))), ErrMalformed, "authorityKeyIdentifier: elements out of order"},
		{"AKI unexpected tag", handCRL(nil, ext(oidAKIExt, false, tlv(0x30, tlv(0x04, raw(1))))), ErrMalformed, "authorityKeyIdentifier: unexpected element"},
		{"freshestCRL empty", handCRL(nil, ext(oidFreshest, false, tlv(0x30))), ErrMalformed, "freshestCRL"},
		{"reasonCode 7", handCRL([][]byte{entryDER(raw(1), reasonExt(7))}), ErrMalformed, "reasonCode: not a defined CRLReason"},
		{"reasonCode 11", handCRL([][]byte{entryDER(raw(1), reasonExt(11))}), ErrMalformed, "reasonCode: not a defined CRLReason"},
		{"reasonCode non-minimal", handCRL([][]byte{entryDER(raw(1), ext(oidReasonCode, false, tlv(0x0a, raw(0, 1))))}), ErrMalformed, "reasonCode: not a defined CRLReason"},
		{"reasonCode INTEGER", handCRL([][]byte{entryDER(raw(1), ext(oidReasonCode, false, tlv(0x02, raw(1))))}), ErrMalformed, "reasonCode: unexpected tag"},
		{"invalidityDate UTCTime", handCRL([][]byte{entryDER(raw(1), ext(oidInvalidity, false, handTime))}), ErrMalformed, "invalidityDate: unexpected tag"},
		{"certificateIssuer empty", handCRL([][]byte{entryDER(raw(1), ext(oidCertIssuer, true, tlv(0x30)))}), ErrMalformed, "certificateIssuer: not a non-empty GeneralNames"},
		{"certificateIssuer bad GeneralName", handCRL([][]byte{entryDER(raw(1), ext(oidCertIssuer, true, tlv(0x30, tlv(0x89, raw(1)))))}), ErrMalformed, "certificateIssuer: invalid GeneralName"},
		{"certificateIssuer directoryName not Name", handCRL([][]byte{entryDER(raw(1), ext(oidCertIssuer, true, tlv(0x30, tlv(0xa4, tlv(0x31)))))}), ErrMalformed, "directoryName: unexpected tag"},
		{"v1 with crlExtensions", hand(algSHA256RSA, algSHA256RSA, handIssuer, handThis, tlv(0xa0, tlv(0x30, ext(oidCRLNumber, false, tlv(0x02, raw(1)))))), ErrMalformed, "crlExtensions in a v1 CRL"},
		{"v1 with entry extensions", hand(algSHA256RSA, algSHA256RSA, handIssuer, handThis, tlv(0x30, entryDER(raw(1), reasonExt(1)))), ErrMalformed, "crlEntryExtensions in a v1 CRL"},
		{"crlExtensions [1]", hand(algSHA256RSA, handVersion, algSHA256RSA, handIssuer, handThis, tlv(0xa1, tlv(0x30))), ErrMalformed, "TBSCertList: unexpected tag 0xa1"},
		{"crlExtensions not wrapping a SEQUENCE", hand(algSHA256RSA, handVersion, algSHA256RSA, handIssuer, handThis, tlv(0xa0, tlv(0x31))), ErrMalformed, "crlExtensions: unexpected tag"},
		{"element after crlExtensions", hand(algSHA256RSA, handVersion, algSHA256RSA, handIssuer, handThis, tlv(0xa0, tlv(0x30)), tlv(0xa0, tlv(0x30))), ErrMalformed, "TBSCertList: unexpected"},
		{"IDP BOOLEAN 0x01", handCRL(nil, idp(tlv(0x81, raw(0x01)))), ErrMalformed, "issuingDistributionPoint: not a DER BOOLEAN"},
		{"IDP out of order", handCRL(nil, idp(tlv(0x82, raw(0xff)), tlv(0x81, raw(0xff)))), ErrMalformed, "issuingDistributionPoint: unexpected element"},
		{"IDP repeated field", handCRL(nil, idp(tlv(0x84, raw(0xff)), tlv(0x84, raw(0xff)))), ErrMalformed, "issuingDistributionPoint: unexpected element"},
		{"IDP [6]", handCRL(nil, idp(tlv(0x86, raw(0xff)))), ErrMalformed, "issuingDistributionPoint: unexpected element"},
		{"IDP constructed boolean", handCRL(nil, idp(tlv(0xa1, raw(0xff)))), ErrMalformed, "issuingDistributionPoint: unexpected element"},
		{"IDP bad DistributionPointName", handCRL(nil, idp(tlv(0xa0, tlv(0xa2)))), ErrMalformed, "invalid DistributionPointName"},
		{"IDP empty fullName", handCRL(nil, idp(tlv(0xa0, tlv(0xa0)))), ErrMalformed, "empty fullName"},
		{"IDP onlySomeReasons pad bits", handCRL(nil, idp(tlv(0x83, raw(0x05, 0x61)))), ErrMalformed, "ReasonFlags: unused bits not zero"},
		{"IDP onlySomeReasons unused 8", handCRL(nil, idp(tlv(0x83, raw(0x08, 0x00)))), ErrMalformed, "ReasonFlags: malformed BIT STRING"},
		{"IDP onlySomeReasons no reasons", handCRL(nil, idp(tlv(0x83, raw(0x00)))), ErrUnsupported, "onlySomeReasons without reasons"},
		{"IDP trailing data", handCRL(nil, ext(oidIDPExt, true, cat(tlv(0x30), tlv(0x05)))), ErrMalformed, "issuingDistributionPoint: data after value"},
		{"signature unused bits 8", withSig(tlv(0x03, raw(8, 0))), ErrMalformed, "signatureValue: malformed BIT STRING"},
		{"signature pad bits set", withSig(tlv(0x03, raw(1, 0xff))), ErrMalformed, "signatureValue: malformed BIT STRING"},
		{"signature empty", withSig(tlv(0x03)), ErrMalformed, "signatureValue: malformed BIT STRING"},
		{"signature OCTET STRING", withSig(tlv(0x04, raw(0, 1))), ErrMalformed, "signatureValue: unexpected tag"},
		{"missing signature", tlv(0x30, tlv(0x30, handVersion, algSHA256RSA, handIssuer, handThis), algSHA256RSA), ErrMalformed, "signatureValue"},
		{"data after signature", tlv(0x30, tlv(0x30, handVersion, algSHA256RSA, handIssuer, handThis), algSHA256RSA, handSig, tlv(0x05)), ErrMalformed, "CertificateList: unexpected element"},
		{"issuer too large to buffer", cat(raw(0x30), big(3<<20), raw(0x30), big(3<<20-5), handVersion, algSHA256RSA, raw(0x30), big(2<<20), raw(0x31)), ErrUnsupported, "element too large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := parseAll(t, c.der)
			if !errors.Is(err, c.kind) {
				t.Fatalf("err = %v, want %v", err, c.kind)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %q, want it to contain %q", err, c.msg)
			}
			if !strings.Contains(err.Error(), "offset ") {
				t.Errorf("err = %q has no offset", err)
			}
		})
	}
}

// TestHandCRL checks the decoded values of a hand-built CRL that exercises
// the corners of RFC 5280 §5 (and the accepted leniencies).
func TestHandCRL(t *testing.T) {
	dirA := tlv(0x30, tlv(0x31, tlv(0x30, tlv(0x06, raw(0x55, 0x04, 0x03)), tlv(0x0c, []byte("A")))))
	dirB := tlv(0x30, tlv(0x31, tlv(0x30, tlv(0x06, raw(0x55, 0x04, 0x03)), tlv(0x0c, []byte("B")))))
	uri := tlv(0x86, []byte("http://x/"))
	ci := func(gns ...[]byte) []byte { return ext(oidCertIssuer, true, tlv(0x30, gns...)) }
	explicitFalse := tlv(0x30, tlv(0x06, oidInvalidity), tlv(0x01, raw(0x00)), tlv(0x04, tlv(0x18, []byte("20240101000000Z"))))
	entries := [][]byte{
		entryDER(raw(0x00)),                                                             // 0: serial 0
		entryDER(raw(0x00, 0x80), reasonExt(0)),                                         // 1: 128, unspecified
		entryDER(raw(0xff), reasonExt(6), explicitFalse),                                // 2: -1, certificateHold
		entryDER(raw(0x80), ci(uri, tlv(0xa4, dirA), tlv(0xa4, dirB))),                  // 3: -128, issuer A (first directoryName)
		entryDER(raw(0xff, 0x00), reasonExt(8)),                                         // 4: -256, removeFromCRL, issuer A carried
		entryDER(raw(0x01, 0x02, 0x03), ci(uri)),                                        // 5: non-directory issuer
		entryDER(raw(0x7f), ext(oidUnknownPriv, true, tlv(0x05))),                       // 6: unknown critical, carried non-directory
		entryDER(raw(0x05), ci(tlv(0xa4, dirB)), ext(oidUnknownPriv, false, tlv(0x05))), // 7: B, unknown non-critical
		tlv(0x30, tlv(0x02, raw(0x06)), handTime, tlv(0x30)),                            // 8: B carried; empty Extensions accepted
	}
	rdn := tlv(0xa1, tlv(0x30, tlv(0x06, raw(0x55, 0x04, 0x0b)), tlv(0x0c, []byte("OU"))))
	idpFull := tlv(0x30, tlv(0xa0, tlv(0xa0, tlv(0xa4, dirA), uri)), tlv(0x81, raw(0x00)), tlv(0x83, raw(0x07, 0x60, 0x80)), tlv(0x84, raw(0xff)))
	der := handCRL(entries,
		ext(oidAKIExt, false, tlv(0x30, tlv(0x80, raw(9, 8, 7)), tlv(0xa1, tlv(0xa4, dirA)), tlv(0x82, raw(1)))),
		ext(oidCRLNumber, false, tlv(0x02, raw(0x00, 0xff))),
		ext(oidDelta, true, tlv(0x02, raw(0x05))),
		ext(oidIDPExt, true, idpFull),
		ext(oidFreshest, false, tlv(0x30, tlv(0x30))),
		ext(oidUnknownPriv, true, tlv(0x05)),
		ext(raw(0x2a, 0x03), false, tlv(0x05)),
	)
	p, es, err := parseAll(t, der)
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 2 || !bytes.Equal(p.RawIssuer, handIssuer) || p.Number.Cmp(big.NewInt(255)) != 0 ||
		p.BaseNumber.Cmp(big.NewInt(5)) != 0 || !bytes.Equal(p.AuthorityKeyID, raw(9, 8, 7)) || !p.FreshestCRL ||
		p.Entries != int64(len(entries)) || p.EntryUnknownCritical != 1 || !p.HasCertificateIssuer || p.Size != int64(len(der)) {
		t.Errorf("info = %+v", p.Info)
	}
	if want := []asn1.ObjectIdentifier{{1, 3, 6, 1, 4, 1, 311, 21, 1}}; !reflect.DeepEqual(p.UnknownCritical, want) {
		t.Errorf("UnknownCritical = %v, want %v", p.UnknownCritical, want)
	}
	wantThis := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	wantNext := time.Date(2050, 1, 2, 3, 4, 5, 0, time.UTC)
	if !p.ThisUpdate.Equal(wantThis) || !p.NextUpdate.Equal(wantNext) {
		t.Errorf("times %v %v", p.ThisUpdate, p.NextUpdate)
	}
	if !bytes.Equal(p.Signature, raw(1, 2, 3, 4)) {
		t.Errorf("signature %x", p.Signature)
	}
	idp := p.IDP
	if idp == nil || !bytes.Equal(idp.Raw, idpFull) || len(idp.FullName) != 2 || !bytes.Equal(idp.FullName[0], tlv(0xa4, dirA)) ||
		!bytes.Equal(idp.FullName[1], uri) || idp.RelativeName != nil || idp.OnlyUser || idp.OnlyCA || idp.OnlyAttr || !idp.Indirect ||
		idp.OnlySomeReasons != 1<<1|1<<2|1<<8 {
		t.Errorf("IDP = %+v", idp)
	}
	revoked := time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC)
	want := []gotEntry{
		{0, []byte{}, false, revoked, ReasonAbsent, nil, false, false},
		{1, raw(0x80), false, revoked, ReasonUnspecified, nil, false, false},
		{2, raw(1), true, revoked, ReasonCertificateHold, nil, false, false},
		{3, raw(0x80), true, revoked, ReasonAbsent, dirA, false, false},
		{4, raw(1, 0), true, revoked, ReasonRemoveFromCRL, dirA, false, false},
		{5, raw(1, 2, 3), false, revoked, ReasonAbsent, nil, true, false},
		{6, raw(0x7f), false, revoked, ReasonAbsent, nil, true, true},
		{7, raw(5), false, revoked, ReasonAbsent, dirB, false, false},
		{8, raw(6), false, revoked, ReasonAbsent, dirB, false, false},
	}
	if len(es) != len(want) {
		t.Fatalf("%d entries, want %d", len(es), len(want))
	}
	for i := range want {
		g, w := es[i], want[i]
		if w.CertificateIssuer == nil {
			w.CertificateIssuer = nil
		}
		if g.Index != w.Index || !bytes.Equal(g.Serial, w.Serial) || g.Negative != w.Negative || !g.RevokedAt.Equal(w.RevokedAt) ||
			g.Reason != w.Reason || !bytes.Equal(g.CertificateIssuer, w.CertificateIssuer) || g.NonDirectory != w.NonDirectory ||
			g.UnknownCritical != w.UnknownCritical {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
	}

	// nameRelativeToCRLIssuer comes back re-tagged as a SET.
	p, _, err = parseAll(t, handCRL(nil, ext(oidIDPExt, true, tlv(0x30, tlv(0xa0, rdn), tlv(0x82, raw(0xff)), tlv(0x85, raw(0xff))))))
	if err != nil {
		t.Fatal(err)
	}
	if wantRDN := append([]byte{0x31}, rdn[1:]...); p.IDP == nil || !bytes.Equal(p.IDP.RelativeName, wantRDN) || p.IDP.FullName != nil ||
		!p.IDP.OnlyCA || !p.IDP.OnlyAttr || p.IDP.OnlyUser || p.IDP.OnlySomeReasons != 0 {
		t.Errorf("IDP = %+v", p.IDP)
	}
}

func TestLenient(t *testing.T) {
	cases := []struct {
		name string
		der  []byte
		n    int64
	}{
		{"v1 CRL", hand(algSHA256RSA, algSHA256RSA, handIssuer, handThis, tlv(0x30, entryDER(raw(1)))), 1},
		{"no nextUpdate, no entries", hand(algSHA256RSA, handVersion, algSHA256RSA, handIssuer, handThis), 0},
		{"empty revokedCertificates", handCRL([][]byte{}), 0},
		{"empty crlExtensions", hand(algSHA256RSA, handVersion, algSHA256RSA, handIssuer, handThis, tlv(0xa0, tlv(0x30))), 0},
		{"explicit FALSE critical", handCRL(nil, tlv(0x30, tlv(0x06, oidCRLNumber), tlv(0x01, raw(0)), tlv(0x04, tlv(0x02, raw(1))))), 0},
		{"IDP explicit FALSE", handCRL(nil, ext(oidIDPExt, true, tlv(0x30, tlv(0x81, raw(0)), tlv(0x84, raw(0))))), 0},
		{"GeneralizedTime before 2050", hand(algSHA256RSA, handVersion, algSHA256RSA, handIssuer, tlv(0x18, []byte("20200229120000Z"))), 0},
		{"empty issuer Name", hand(algSHA256RSA, handVersion, algSHA256RSA, tlv(0x30), handThis), 0},
		{"signature with unused bits", tlv(0x30, tlv(0x30, handVersion, algSHA256RSA, handIssuer, handThis), algSHA256RSA, tlv(0x03, raw(1, 0xfe))), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, es, err := parseAll(t, c.der)
			if err != nil {
				t.Fatal(err)
			}
			if p.Entries != c.n || int64(len(es)) != c.n {
				t.Errorf("entries %d/%d, want %d", p.Entries, len(es), c.n)
			}
		})
	}
	p, _, _ := parseAll(t, cases[0].der)
	if p.Version != 1 {
		t.Errorf("version %d", p.Version)
	}
	p, _, _ = parseAll(t, cases[6].der)
	if !p.ThisUpdate.Equal(time.Date(2020, 2, 29, 12, 0, 0, 0, time.UTC)) || !p.NextUpdate.IsZero() {
		t.Errorf("times %v %v", p.ThisUpdate, p.NextUpdate)
	}
	// UTCTime years 50..99 are 19YY (RFC 5280 §4.1.2.5.1).
	p, _, _ = parseAll(t, hand(algSHA256RSA, handVersion, algSHA256RSA, handIssuer, tlv(0x17, []byte("500101000000Z")), tlv(0x17, []byte("491231235959Z"))))
	if p == nil || p.ThisUpdate.Year() != 1950 || p.NextUpdate.Year() != 2049 {
		t.Errorf("UTCTime century: %+v", p)
	}
}

// TestTruncation: every proper prefix of a CRL is ErrMalformed.
func TestTruncation(t *testing.T) {
	der := handCRL([][]byte{entryDER(raw(1), reasonExt(1)), entryDER(raw(2), ext(oidCertIssuer, true, tlv(0x30, tlv(0xa4, handIssuer))))},
		ext(oidCRLNumber, false, tlv(0x02, raw(3))), ext(oidIDPExt, true, tlv(0x30, tlv(0x84, raw(0xff)))))
	if _, _, err := parseAll(t, der); err != nil {
		t.Fatal(err)
	}
	for _, src := range [][]byte{der, rsaCRL(t)} {
		for i := range src {
			_, _, err := parseAll(t, src[:i])
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("prefix %d/%d: err = %v", i, len(src), err)
			}
		}
	}
}

// TestErrorsHideData: errors locate by entry index and offset, never by
// serial number or name.
func TestErrorsHideData(t *testing.T) {
	der := handCRL([][]byte{entryDER(raw(0x4b, 0x5a)), tlv(0x30, tlv(0x02, raw(0x7a, 0x7b)), tlv(0x17, []byte("2402292359Z")))})
	_, _, err := parseAll(t, der)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.Contains(msg, "entry 1 at offset ") {
		t.Errorf("err = %q", msg)
	}
	for _, leak := range []string{"7a7b", "7A7B", "31355", "Hand CA"} {
		if strings.Contains(msg, leak) {
			t.Errorf("err %q contains %q", msg, leak)
		}
	}
}

func TestCallbackErrorAndContext(t *testing.T) {
	der := handCRL([][]byte{entryDER(raw(1)), entryDER(raw(2)), entryDER(raw(3))})
	stop := errors.New("stop")
	var seen int
	_, err := Parse(context.Background(), bytes.NewReader(der), func(e *Entry) error {
		seen++
		if e.Index == 1 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || seen != 2 || !strings.Contains(err.Error(), "entry 1") {
		t.Errorf("err = %v, seen %d", err, seen)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Parse(ctx, bytes.NewReader(der), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	// nil callback is allowed
	p, err := Parse(context.Background(), bytes.NewReader(der), nil)
	if err != nil || p.Entries != 3 {
		t.Errorf("nil fn: %v %v", p, err)
	}
}

// oneByteReader returns one byte per Read, to exercise buffer refills.
type oneByteReader struct{ b []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}

func TestReasonName(t *testing.T) {
	for r, want := range map[int]string{ReasonAbsent: "absent", 0: "unspecified", 1: "keyCompromise", 6: "certificateHold",
		8: "removeFromCRL", 10: "aACompromise", 7: "reason(7)", 11: "reason(11)"} {
		if got := ReasonName(r); got != want {
			t.Errorf("ReasonName(%d) = %q, want %q", r, got, want)
		}
	}
}

// TestSerialEncodings: serial magnitudes and signs agree with math/big for
// edge encodings (RFC 5280 §4.1.2.2; negative ones are non-conforming but
// exist, PKITS 4.4.14/15).
func TestSerialEncodings(t *testing.T) {
	encs := [][]byte{raw(0), raw(1), raw(0x7f), raw(0, 0x80), raw(0, 0xff, 0xff), raw(0xff), raw(0x80), raw(0xff, 0x01),
		raw(0xff, 0x00), raw(0x80, 0x00), raw(0xfe, 0x00, 0x00), raw(0xff, 0x7f, 0xff), bytes.Repeat(raw(0x11), 64)}
	var entries [][]byte
	for _, e := range encs {
		entries = append(entries, entryDER(e))
	}
	_, es, err := parseAll(t, handCRL(entries))
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range encs {
		var want *big.Int
		if _, err := asn1.Unmarshal(tlv(0x02, e), &want); err != nil {
			t.Fatal(err)
		}
		got := new(big.Int).SetBytes(es[i].Serial)
		if es[i].Negative {
			got.Neg(got)
		}
		if got.Cmp(want) != 0 || (len(es[i].Serial) > 0 && es[i].Serial[0] == 0) || es[i].Negative != (want.Sign() < 0) {
			t.Errorf("%x: got %x neg %v, want %v", e, es[i].Serial, es[i].Negative, want)
		}
	}
}
