// Package crl is a streaming, single-pass, strict-DER parser for X.509
// certificate revocation lists (RFC 5280 §5).
//
// Parse reads one DER CertificateList (RFC 5280 §5.1) from an io.Reader
// through a small buffer, hashing the signed TBSCertList (§5.1.1.1) and the
// whole input while it reads, and hands every revokedCertificates entry
// (§5.1.2.6) to a callback through one reused Entry, so memory stays bounded
// whatever the number of entries. The signature can then be checked with
// Parsed.CheckSignature or Parsed.CheckSignatureFrom without a second pass.
//
// Encoding rules (X.690 DER, as RFC 5280 §4.1 requires): definite lengths in
// minimal form only, every length bounded by what remains of the enclosing
// element, low tag numbers only, BOOLEAN 0x00/0xFF, minimal INTEGERs, times
// as UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ (§5.1.2.4,
// §4.1.2.5), nothing after the CertificateList. Leniencies, on purpose: a
// BOOLEAN DEFAULT FALSE encoded explicitly as FALSE is accepted (some CAs
// emit it), as are an empty revokedCertificates SEQUENCE, an empty
// Extensions SEQUENCE, and GeneralizedTime for years before 2050.
//
// Understood CRL extensions (§5.2): authorityKeyIdentifier (§5.2.1),
// cRLNumber (§5.2.3), deltaCRLIndicator (§5.2.4), issuingDistributionPoint
// (§5.2.5) and freshestCRL (§5.2.6); any other critical one is reported in
// Info.UnknownCritical, and a duplicated extension is malformed (§4.2).
// Understood entry extensions (§5.3): reasonCode (§5.3.1), invalidityDate
// (§5.3.2, value checked for form, otherwise ignored) and certificateIssuer
// (§5.3.3, carried forward to the following entries).
//
// Signature algorithms: sha256/384/512WithRSAEncryption, RSASSA-PSS with
// SHA-256/384/512 (RFC 4055), ecdsa-with-SHA256/384/512 (RFC 5758). The
// weak or pre-hash-less algorithms Go also knows (md5/sha1WithRSAEncryption,
// ecdsa-with-SHA1, dsaWithSHA1, dsa-with-sha256, Ed25519) still parse, so a
// CRL can be inspected, but CheckSignature refuses them with
// ErrUnsupported. An algorithm outside both lists makes Parse fail with
// ErrUnsupported as soon as the TBSCertList signature field is read, before
// any entry.
//
// Errors never contain serial numbers or names: they locate the problem by
// byte offset and entry index.
package crl

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Errors returned by this package, wrapped with a position or a reason;
// test with errors.Is.
var (
	// ErrMalformed: the input is not a strict-DER CRL as RFC 5280 §5 defines.
	ErrMalformed = errors.New("crl: malformed CRL")
	// ErrUnsupported: well-formed but outside what this package handles
	// (signature algorithm, an element too large to buffer, ...).
	ErrUnsupported = errors.New("crl: unsupported")
	// ErrBadSignature: the signature does not verify with the given key.
	ErrBadSignature = errors.New("crl: bad signature")
	// ErrNotIssuer: the certificate's subject is not the CRL's issuer.
	ErrNotIssuer = errors.New("crl: certificate is not the CRL issuer")
	// ErrNoCRLSign: the certificate's keyUsage does not include cRLSign.
	ErrNoCRLSign = errors.New("crl: certificate keyUsage lacks cRLSign")
)

// ReasonFlags: bit i set = ReasonFlags BIT STRING bit i (RFC 5280 §4.2.1.13):
// 1 keyCompromise 2 cACompromise 3 affiliationChanged 4 superseded
// 5 cessationOfOperation 6 certificateHold 7 privilegeWithdrawn
// 8 aACompromise. Bit 0 (unused) is never set.
type ReasonFlags uint16

// AllReasons has every defined ReasonFlags bit set.
const AllReasons ReasonFlags = 0x1FE

// CRLReason values (RFC 5280 §5.3.1). 7 is not used.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonCACompromise         = 2
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
	ReasonCertificateHold      = 6
	ReasonRemoveFromCRL        = 8
	ReasonPrivilegeWithdrawn   = 9
	ReasonAACompromise         = 10
	// ReasonAbsent: the entry has no reasonCode extension.
	ReasonAbsent = -1
)

var reasonNames = [...]string{
	"unspecified", "keyCompromise", "cACompromise", "affiliationChanged",
	"superseded", "cessationOfOperation", "certificateHold", "",
	"removeFromCRL", "privilegeWithdrawn", "aACompromise",
}

// ReasonName returns the RFC 5280 §5.3.1 name of a CRLReason ("keyCompromise",
// ...), "absent" for ReasonAbsent and "reason(N)" for anything else.
func ReasonName(r int) string {
	if r == ReasonAbsent {
		return "absent"
	}
	if r >= 0 && r < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", r)
}

// IDP is the issuingDistributionPoint extension, RFC 5280 §5.2.5.
type IDP struct {
	Raw          []byte   // extension value (the DER SEQUENCE)
	FullName     [][]byte // DER GeneralName elements of distributionPoint fullName; nil if absent
	RelativeName []byte   // DER RelativeDistinguishedName (SET) if nameRelativeToCRLIssuer, else nil

	OnlyUser, OnlyCA, OnlyAttr, Indirect bool

	OnlySomeReasons ReasonFlags // 0 when absent
}

// Info is everything about a CRL but its entries.
type Info struct {
	Version            int                     // 1 or 2
	SignatureAlgorithm x509.SignatureAlgorithm // outer; equal (byte for byte) to the TBS one
	RawIssuer          []byte                  // DER Name
	ThisUpdate         time.Time
	NextUpdate         time.Time // zero if absent
	Number             *big.Int  // cRLNumber, nil if absent
	AuthorityKeyID     []byte    // keyIdentifier of AKI, nil if absent
	BaseNumber         *big.Int  // deltaCRLIndicator BaseCRLNumber; non-nil means delta CRL
	IDP                *IDP      // nil if absent
	FreshestCRL        bool      // freshestCRL extension present
	// UnknownCritical lists critical CRL extensions other than AKI,
	// cRLNumber, deltaCRLIndicator, IDP and freshestCRL.
	UnknownCritical []asn1.ObjectIdentifier
	Entries         int64 // number of revokedCertificates
	// EntryUnknownCritical counts entries with a critical entry extension
	// other than reasonCode, invalidityDate and certificateIssuer.
	EntryUnknownCritical int64
	HasCertificateIssuer bool // some entry had certificateIssuer
}

// Entry is one revokedCertificates element. Parse reuses one Entry and its
// slices between callbacks: copy what you keep.
type Entry struct {
	Index     int64  // 0-based position
	Serial    []byte // magnitude, big-endian, no leading zero bytes (empty slice for 0)
	Negative  bool   // non-conforming negative serial (PKITS 4.4.14/15 use them)
	RevokedAt time.Time
	Reason    int // CRLReason or ReasonAbsent
	// CertificateIssuer is the effective certificate issuer (RFC 5280
	// §5.3.3: it applies to this entry and all following ones until the
	// next certificateIssuer): DER of the first directoryName's Name inside
	// the GeneralNames; nil means "the CRL issuer". If the GeneralNames hold
	// no directoryName, NonDirectoryIssuer is true and CertificateIssuer nil.
	CertificateIssuer  []byte
	NonDirectoryIssuer bool
	UnknownCritical    bool
}

// SerialBig returns the serial number as a new big.Int.
func (e *Entry) SerialBig() *big.Int {
	n := new(big.Int).SetBytes(e.Serial)
	if e.Negative {
		n.Neg(n)
	}
	return n
}

// Parsed is the result of Parse.
type Parsed struct {
	Info
	Digest    []byte      // hash of the DER TBSCertList, computed while streaming (nil for Ed25519)
	Hash      crypto.Hash // hash of SignatureAlgorithm (0 for Ed25519)
	Signature []byte      // signatureValue BIT STRING contents after the unused-bits octet
	Size      int64       // total DER bytes consumed
	SHA256    [32]byte    // SHA-256 of the whole DER file, computed while streaming

	pssSalt   int // RSASSA-PSS saltLength
	sigUnused int // unused bits of the signatureValue BIT STRING
}

// posError locates a parse error by offset (and entry index).
type posError struct {
	off   int64
	entry int64 // -1: not inside an entry
	msg   string
	kind  error
}

func (e *posError) Error() string {
	if e.entry >= 0 {
		return fmt.Sprintf("crl: entry %d at offset %d: %s", e.entry, e.off, e.msg)
	}
	return fmt.Sprintf("crl: offset %d: %s", e.off, e.msg)
}

func (e *posError) Unwrap() error { return e.kind }

func malformed(off int64, msg string) error {
	return &posError{off: off, entry: -1, msg: msg, kind: ErrMalformed}
}

func unsupported(off int64, msg string) error {
	return &posError{off: off, entry: -1, msg: msg, kind: ErrUnsupported}
}
