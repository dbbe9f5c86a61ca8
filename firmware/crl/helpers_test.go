package crl

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// tlv encodes one DER element (definite, minimal length).
func tlv(tag byte, parts ...[]byte) []byte {
	content := bytes.Join(parts, nil)
	out := []byte{tag}
	switch n := len(content); {
	case n < 0x80:
		out = append(out, byte(n))
	case n < 0x100:
		out = append(out, 0x81, byte(n))
	case n < 0x10000:
		out = append(out, 0x82, byte(n>>8), byte(n))
	default:
		out = append(out, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, content...)
}

func raw(b ...byte) []byte { return b }

// gotEntry is a copy of an Entry.
type gotEntry struct {
	Index             int64
	Serial            []byte
	Negative          bool
	RevokedAt         time.Time
	Reason            int
	CertificateIssuer []byte
	NonDirectory      bool
	UnknownCritical   bool
}

// parseAll parses b and copies every entry.
func parseAll(t testing.TB, b []byte) (*Parsed, []gotEntry, error) {
	t.Helper()
	var es []gotEntry
	p, err := Parse(context.Background(), bytes.NewReader(b), func(e *Entry) error {
		es = append(es, gotEntry{
			Index:             e.Index,
			Serial:            append([]byte{}, e.Serial...),
			Negative:          e.Negative,
			RevokedAt:         e.RevokedAt,
			Reason:            e.Reason,
			CertificateIssuer: append([]byte(nil), e.CertificateIssuer...),
			NonDirectory:      e.NonDirectoryIssuer,
			UnknownCritical:   e.UnknownCritical,
		})
		return nil
	})
	return p, es, err
}

// DER pieces for hand-built CRLs.
var (
	oidSHA256RSA = raw(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b)
	algSHA256RSA = tlv(0x30, tlv(0x06, oidSHA256RSA), tlv(0x05))
	handIssuer   = tlv(0x30, tlv(0x31, tlv(0x30, tlv(0x06, raw(0x55, 0x04, 0x03)), tlv(0x0c, []byte("Hand CA")))))
	handThis     = tlv(0x17, []byte("250102030405Z"))
	handNext     = tlv(0x18, []byte("20500102030405Z"))
	handVersion  = tlv(0x02, raw(1))
	handSig      = tlv(0x03, raw(0, 1, 2, 3, 4))
	handTime     = tlv(0x17, []byte("240229235959Z"))
)

func ext(oid []byte, critical bool, value []byte) []byte {
	var c []byte
	if critical {
		c = tlv(0x01, raw(0xff))
	}
	return tlv(0x30, tlv(0x06, oid), c, tlv(0x04, value))
}

var (
	oidCRLNumber   = raw(0x55, 0x1d, 0x14)
	oidReasonCode  = raw(0x55, 0x1d, 0x15)
	oidInvalidity  = raw(0x55, 0x1d, 0x18)
	oidDelta       = raw(0x55, 0x1d, 0x1b)
	oidIDPExt      = raw(0x55, 0x1d, 0x1c)
	oidCertIssuer  = raw(0x55, 0x1d, 0x1d)
	oidAKIExt      = raw(0x55, 0x1d, 0x23)
	oidFreshest    = raw(0x55, 0x1d, 0x2e)
	oidUnknownPriv = raw(0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x15, 0x01) // 1.3.6.1.4.1.311.21.1
)

func reasonExt(r byte) []byte { return ext(oidReasonCode, false, tlv(0x0a, raw(r))) }

func entryDER(serial []byte, exts ...[]byte) []byte {
	var e []byte
	if len(exts) > 0 {
		e = tlv(0x30, exts...)
	}
	return tlv(0x30, tlv(0x02, serial), handTime, e)
}

// hand assembles a CertificateList from TBS parts (alg is the outer
// signatureAlgorithm).
func hand(alg []byte, tbsParts ...[]byte) []byte {
	return tlv(0x30, tlv(0x30, tbsParts...), alg, handSig)
}

// handCRL: a v2 CRL with the given entries (nil: no revokedCertificates)
// and crlExtensions (none: omitted).
func handCRL(entries [][]byte, exts ...[]byte) []byte {
	var rc, ce []byte
	if entries != nil {
		rc = tlv(0x30, entries...)
	}
	if len(exts) > 0 {
		ce = tlv(0xa0, tlv(0x30, exts...))
	}
	return hand(algSHA256RSA, handVersion, algSHA256RSA, handIssuer, handThis, handNext, rc, ce)
}
