package crl

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	_ "crypto/md5" // MD5 is computed for md5WithRSAEncryption CRLs so they can be inspected
	"crypto/rsa"
	_ "crypto/sha1" // likewise SHA-1
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
)

// paramRule says what AlgorithmIdentifier parameters an algorithm allows.
type paramRule int

const (
	paramsNullOrAbsent paramRule = iota // RSA PKCS#1 v1.5 (RFC 4055 §5 says NULL; absent is common)
	paramsAbsent                        // ECDSA (RFC 5758 §3.2), DSA (RFC 3279 §2.2.2), Ed25519 (RFC 8410 §3)
	paramsPSS                           // RSASSA-PSS-params (RFC 4055 §3.1)
)

type sigAlgInfo struct {
	oid    []byte // DER contents of the OBJECT IDENTIFIER
	alg    x509.SignatureAlgorithm
	hash   crypto.Hash
	params paramRule
}

var sigAlgs = []sigAlgInfo{
	{[]byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b}, x509.SHA256WithRSA, crypto.SHA256, paramsNullOrAbsent},
	{[]byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c}, x509.SHA384WithRSA, crypto.SHA384, paramsNullOrAbsent},
	{[]byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d}, x509.SHA512WithRSA, crypto.SHA512, paramsNullOrAbsent},
	{[]byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a}, 0, 0, paramsPSS},
	{[]byte{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02}, x509.ECDSAWithSHA256, crypto.SHA256, paramsAbsent},
	{[]byte{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03}, x509.ECDSAWithSHA384, crypto.SHA384, paramsAbsent},
	{[]byte{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04}, x509.ECDSAWithSHA512, crypto.SHA512, paramsAbsent},
	// Parsed for inspection; CheckSignature refuses them.
	{[]byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05}, x509.SHA1WithRSA, crypto.SHA1, paramsNullOrAbsent},
	{[]byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04}, x509.MD5WithRSA, crypto.MD5, paramsNullOrAbsent},
	{[]byte{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01}, x509.ECDSAWithSHA1, crypto.SHA1, paramsAbsent},
	{[]byte{0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03}, x509.DSAWithSHA1, crypto.SHA1, paramsAbsent},
	{[]byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x02}, x509.DSAWithSHA256, crypto.SHA256, paramsAbsent},
	{[]byte{0x2b, 0x65, 0x70}, x509.PureEd25519, 0, paramsAbsent},
}

var (
	oidMGF1   = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08}
	oidSHA256 = []byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}
	oidSHA384 = []byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02}
	oidSHA512 = []byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03}
)

// parseSigAlg maps a signature AlgorithmIdentifier (its contents) to an
// algorithm, hash and PSS salt length.
func parseSigAlg(c cur) (x509.SignatureAlgorithm, crypto.Hash, int, error) {
	off := c.off
	_, oid, err := c.expect(tagOID, "signature algorithm")
	if err != nil {
		return 0, 0, 0, err
	}
	if !validOID(oid.b) {
		return 0, 0, 0, malformed(oid.off, "signature algorithm: invalid OBJECT IDENTIFIER")
	}
	var info *sigAlgInfo
	for i := range sigAlgs {
		if bytes.Equal(sigAlgs[i].oid, oid.b) {
			info = &sigAlgs[i]
			break
		}
	}
	if info == nil {
		return 0, 0, 0, unsupported(off, "unknown signature algorithm")
	}
	switch info.params {
	case paramsNullOrAbsent:
		if !c.empty() && !(len(c.b) == 2 && c.b[0] == tagNull && c.b[1] == 0) {
			return 0, 0, 0, malformed(c.off, "signature algorithm: parameters must be NULL or absent")
		}
	case paramsAbsent:
		if !c.empty() {
			return 0, 0, 0, malformed(c.off, "signature algorithm: parameters must be absent")
		}
	case paramsPSS:
		return parsePSS(c)
	}
	return info.alg, info.hash, 0, nil
}

// parsePSS reads RSASSA-PSS-params (RFC 4055 §3.1). Accepted: SHA-256/384/512
// with MGF1 over the same hash, trailerField 1. The hash AlgorithmIdentifiers
// may carry NULL or no parameters (RFC 4055 §2.1).
func parsePSS(c cur) (x509.SignatureAlgorithm, crypto.Hash, int, error) {
	off := c.off
	_, params, err := c.expect(tagSequence, "RSASSA-PSS parameters")
	if err != nil {
		return 0, 0, 0, err
	}
	if !c.empty() {
		return 0, 0, 0, malformed(c.off, "RSASSA-PSS: data after parameters")
	}
	var hashOID, mgfHashOID []byte
	salt, trailer := 20, 1
	last := -1
	for !params.empty() {
		eoff := params.off
		tag, _, body, err := params.next()
		if err != nil {
			return 0, 0, 0, err
		}
		n := int(tag) - 0xa0
		if n < 0 || n > 3 || n <= last {
			return 0, 0, 0, malformed(eoff, "RSASSA-PSS: unexpected element")
		}
		last = n
		_, in, err := body.expect([]byte{tagSequence, tagSequence, tagInteger, tagInteger}[n], "RSASSA-PSS field")
		if err != nil {
			return 0, 0, 0, err
		}
		if !body.empty() {
			return 0, 0, 0, malformed(body.off, "RSASSA-PSS: data after field")
		}
		switch n {
		case 0:
			if hashOID, err = hashAlgID(in); err != nil {
				return 0, 0, 0, err
			}
		case 1:
			_, mgf, err := in.expect(tagOID, "RSASSA-PSS maskGenAlgorithm")
			if err != nil {
				return 0, 0, 0, err
			}
			if !bytes.Equal(mgf.b, oidMGF1) {
				return 0, 0, 0, unsupported(mgf.off, "RSASSA-PSS: mask generation function is not MGF1")
			}
			_, hp, err := in.expect(tagSequence, "RSASSA-PSS MGF1 parameters")
			if err != nil {
				return 0, 0, 0, err
			}
			if !in.empty() {
				return 0, 0, 0, malformed(in.off, "RSASSA-PSS: data after MGF1 parameters")
			}
			if mgfHashOID, err = hashAlgID(hp); err != nil {
				return 0, 0, 0, err
			}
		case 2, 3:
			v, ok := smallUint(in.b)
			if !ok || v > 4096 {
				return 0, 0, 0, malformed(in.off, "RSASSA-PSS: bad integer")
			}
			if n == 2 {
				salt = v
			} else {
				trailer = v
			}
		}
	}
	if trailer != 1 {
		return 0, 0, 0, unsupported(off, "RSASSA-PSS: trailerField must be 1")
	}
	if hashOID == nil || !bytes.Equal(hashOID, mgfHashOID) {
		return 0, 0, 0, unsupported(off, "RSASSA-PSS: hash must be SHA-256/384/512 and match MGF1's")
	}
	switch {
	case bytes.Equal(hashOID, oidSHA256):
		return x509.SHA256WithRSAPSS, crypto.SHA256, salt, nil
	case bytes.Equal(hashOID, oidSHA384):
		return x509.SHA384WithRSAPSS, crypto.SHA384, salt, nil
	case bytes.Equal(hashOID, oidSHA512):
		return x509.SHA512WithRSAPSS, crypto.SHA512, salt, nil
	}
	return 0, 0, 0, unsupported(off, "RSASSA-PSS: hash must be SHA-256/384/512")
}

// hashAlgID reads the contents of a hash AlgorithmIdentifier and returns
// its OID contents (nil for hashes other than SHA-2).
func hashAlgID(c cur) ([]byte, error) {
	_, oid, err := c.expect(tagOID, "hash algorithm")
	if err != nil {
		return nil, err
	}
	if !c.empty() && !(len(c.b) == 2 && c.b[0] == tagNull && c.b[1] == 0) {
		return nil, malformed(c.off, "hash algorithm: parameters must be NULL or absent")
	}
	return oid.b, nil
}

// smallUint decodes a minimal non-negative INTEGER that fits in 31 bits.
func smallUint(b []byte) (int, bool) {
	if !minimalInt(b) || b[0]&0x80 != 0 || len(b) > 4 {
		return 0, false
	}
	v := 0
	for _, c := range b {
		v = v<<8 | int(c)
	}
	return v, true
}

// minimalInt reports whether b is the contents of a DER INTEGER (X.690
// §8.3.2: at least one octet, no redundant leading octet).
func minimalInt(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	if len(b) > 1 && ((b[0] == 0 && b[1]&0x80 == 0) || (b[0] == 0xff && b[1]&0x80 != 0)) {
		return false
	}
	return true
}

// validOID reports whether b is the contents of a DER OBJECT IDENTIFIER
// (X.690 §8.19: minimal base-128 subidentifiers, last octet ends one).
func validOID(b []byte) bool {
	if len(b) == 0 || b[len(b)-1]&0x80 != 0 {
		return false
	}
	start := true
	for _, c := range b {
		if start && c == 0x80 {
			return false
		}
		start = c&0x80 == 0
	}
	return true
}

// decodeOID turns valid OID contents into an asn1.ObjectIdentifier.
func decodeOID(b []byte) (asn1.ObjectIdentifier, bool) {
	if len(b) >= 0x80 {
		return nil, false
	}
	full := append([]byte{tagOID, byte(len(b))}, b...)
	var oid asn1.ObjectIdentifier
	rest, err := asn1.Unmarshal(full, &oid)
	if err != nil || len(rest) != 0 {
		return nil, false
	}
	return oid, true
}

// CheckSignature verifies p.Signature over p.Digest with pub: RSA PKCS#1
// v1.5 and RSASSA-PSS (*rsa.PublicKey), ECDSA (*ecdsa.PublicKey, any curve
// crypto/ecdsa supports). MD5, SHA-1, DSA and Ed25519 (which needs the whole
// message, not a pre-hash) are refused with ErrUnsupported; a mismatch, or
// a key of the wrong type, gives ErrBadSignature.
func (p *Parsed) CheckSignature(pub crypto.PublicKey) error {
	switch p.SignatureAlgorithm {
	case x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA,
		x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS,
		x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512:
	default:
		return fmt.Errorf("%w: signature algorithm %v not accepted", ErrUnsupported, p.SignatureAlgorithm)
	}
	if p.sigUnused != 0 {
		return fmt.Errorf("%w: signatureValue is not a whole number of octets", ErrBadSignature)
	}
	switch p.SignatureAlgorithm {
	case x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return keyMismatch(pub)
		}
		if err := rsa.VerifyPKCS1v15(k, p.Hash, p.Digest, p.Signature); err != nil {
			return fmt.Errorf("%w: %v", ErrBadSignature, err)
		}
		return nil
	case x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return keyMismatch(pub)
		}
		if err := rsa.VerifyPSS(k, p.Hash, p.Digest, p.Signature, &rsa.PSSOptions{SaltLength: p.pssSalt, Hash: p.Hash}); err != nil {
			return fmt.Errorf("%w: %v", ErrBadSignature, err)
		}
		return nil
	case x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return keyMismatch(pub)
		}
		if !ecdsa.VerifyASN1(k, p.Digest, p.Signature) {
			return fmt.Errorf("%w: ECDSA verification failed", ErrBadSignature)
		}
		return nil
	}
	return fmt.Errorf("%w: signature algorithm %v not accepted", ErrUnsupported, p.SignatureAlgorithm)
}

func keyMismatch(pub crypto.PublicKey) error {
	return fmt.Errorf("%w: public key type %T does not match the signature algorithm", ErrBadSignature, pub)
}

var oidKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 15}

// CheckSignatureFrom checks that issuer issued the CRL: its RawSubject is
// byte-equal to RawIssuer (else ErrNotIssuer; RFC 5280 §6.3.3 (f)), its
// keyUsage, if it has the extension, includes cRLSign (else ErrNoCRLSign;
// §4.2.1.3), and the signature verifies with its key (CheckSignature).
func (p *Parsed) CheckSignatureFrom(issuer *x509.Certificate) error {
	if issuer == nil || !bytes.Equal(issuer.RawSubject, p.RawIssuer) {
		return ErrNotIssuer
	}
	for _, e := range issuer.Extensions {
		if e.Id.Equal(oidKeyUsage) {
			if issuer.KeyUsage&x509.KeyUsageCRLSign == 0 {
				return ErrNoCRLSign
			}
			break
		}
	}
	return p.CheckSignature(issuer.PublicKey)
}
