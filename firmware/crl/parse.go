package crl

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"math/big"
	"time"
)

// maxSerial bounds a serial number's encoding. RFC 5280 §4.1.2.2 allows 20
// octets and asks users to handle somewhat longer ones gracefully.
const maxSerial = 64

// ctxEvery: the context is checked every ctxEvery entries.
const ctxEvery = 1 << 16

type parser struct {
	s      stream
	p      *Parsed
	e      Entry
	serial []byte
	ci     []byte    // current certificateIssuer Name (carried forward)
	seen   [][]byte  // extension OIDs of the current Extensions, for duplicates
	times  timeCache // revocation dates
}

// Parse reads exactly one DER CertificateList (RFC 5280 §5.1) from r in a
// single pass, never holding the entry list, calls fn (which may be nil)
// for every entry in order, and returns the rest.
//
// Strict DER (see the package comment); nothing may follow the
// CertificateList. The context is checked every 65536 entries. If fn
// returns an error, Parse stops and returns it wrapped. Errors: ErrMalformed
// (with an offset, and the entry index inside an entry), ErrUnsupported
// (unknown signature algorithm, element too large to buffer), read errors
// from r, ctx.Err().
func Parse(ctx context.Context, r io.Reader, fn func(*Entry) error) (*Parsed, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ps := &parser{p: &Parsed{}}
	ps.s = stream{r: r, buf: make([]byte, bufSize), file: sha256.New()}
	ps.serial = make([]byte, 0, 32)
	defer ps.s.finish()
	if err := ps.run(ctx, fn); err != nil {
		return nil, err
	}
	return ps.p, nil
}

func (ps *parser) run(ctx context.Context, fn func(*Entry) error) error {
	s, p := &ps.s, ps.p
	// CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue }
	tag, hl, n, err := s.header(math.MaxInt64, "CertificateList")
	if err != nil {
		return err
	}
	if tag != tagSequence {
		return malformed(0, "CertificateList: not a SEQUENCE")
	}
	outerEnd := int64(hl) + n
	s.pos += hl

	// TBSCertList ::= SEQUENCE (RFC 5280 §5.1.2)
	tbsStart := s.off()
	tag, hl, n, err = s.header(outerEnd, "TBSCertList")
	if err != nil {
		return err
	}
	if tag != tagSequence {
		return malformed(tbsStart, "TBSCertList: not a SEQUENCE")
	}
	tbsEnd := tbsStart + int64(hl) + n
	s.startTBS(tbsStart, tbsEnd)
	s.pos += hl

	// version Version OPTIONAL -- if present, MUST be v2 (§5.1.2.1)
	p.Version = 1
	t, err := ps.peekIn(tbsEnd, "TBSCertList: version or signature")
	if err != nil {
		return err
	}
	if t == tagInteger {
		off := s.off()
		_, v, err := s.expectElem(tbsEnd, tagInteger, "version")
		if err != nil {
			return err
		}
		if len(v.b) != 1 || v.b[0] != 1 {
			return malformed(off, "version: must be v2 (1) when present")
		}
		p.Version = 2
	}

	// signature AlgorithmIdentifier (§5.1.2.2)
	sigFull, sigAI, err := s.expectElem(tbsEnd, tagSequence, "signature")
	if err != nil {
		return err
	}
	if len(sigFull) > 1024 {
		return unsupported(sigAI.off, "signature algorithm identifier too large")
	}
	sigRaw := append([]byte(nil), sigFull...)
	alg, h, salt, err := parseSigAlg(sigAI)
	if err != nil {
		return err
	}
	p.SignatureAlgorithm, p.Hash, p.pssSalt = alg, h, salt
	if h != 0 {
		s.setTBSHash(h.New())
	} else {
		s.setTBSHash(nil)
	}

	// issuer Name (§5.1.2.3)
	nameFull, name, err := s.expectElem(tbsEnd, tagSequence, "issuer")
	if err != nil {
		return err
	}
	if err := validateName(name); err != nil {
		return err
	}
	p.RawIssuer = append([]byte(nil), nameFull...)

	// thisUpdate Time, nextUpdate Time OPTIONAL (§5.1.2.4, §5.1.2.5)
	if p.ThisUpdate, err = ps.readTime(tbsEnd, "thisUpdate"); err != nil {
		return err
	}
	if s.off() < tbsEnd {
		if t, err = s.peek(); err != nil {
			return err
		}
		if t == tagUTCTime || t == tagGenTime {
			if p.NextUpdate, err = ps.readTime(tbsEnd, "nextUpdate"); err != nil {
				return err
			}
		}
	}

	// revokedCertificates SEQUENCE OF SEQUENCE OPTIONAL (§5.1.2.6)
	if s.off() < tbsEnd {
		if t, err = s.peek(); err != nil {
			return err
		}
		if t == tagSequence {
			if err := ps.entries(ctx, tbsEnd, fn); err != nil {
				return err
			}
		}
	}

	// crlExtensions [0] EXPLICIT Extensions OPTIONAL (§5.1.2.7)
	if s.off() < tbsEnd {
		off := s.off()
		tag, _, body, err := s.elem(tbsEnd, "crlExtensions")
		if err != nil {
			return err
		}
		if tag != 0xa0 {
			return malformed(off, fmt.Sprintf("TBSCertList: unexpected tag 0x%02x", tag))
		}
		if p.Version != 2 {
			return malformed(off, "crlExtensions in a v1 CRL")
		}
		_, exts, err := body.expect(tagSequence, "crlExtensions")
		if err != nil {
			return err
		}
		if !body.empty() {
			return malformed(body.off, "crlExtensions: data after Extensions")
		}
		if err := ps.crlExtensions(exts); err != nil {
			return err
		}
	}
	if s.off() != tbsEnd {
		return malformed(s.off(), "TBSCertList: unexpected element")
	}
	s.flushTBS(tbsEnd)

	// signatureAlgorithm: MUST equal tbsCertList.signature (§5.1.1.2)
	off := s.off()
	outerAlg, _, err := s.expectElem(outerEnd, tagSequence, "signatureAlgorithm")
	if err != nil {
		return err
	}
	if !bytes.Equal(outerAlg, sigRaw) {
		return malformed(off, "signatureAlgorithm differs from the TBSCertList signature field")
	}
	// signatureValue BIT STRING (§5.1.1.3)
	_, sig, err := s.expectElem(outerEnd, tagBitString, "signatureValue")
	if err != nil {
		return err
	}
	// X.690 §8.6.2, §11.2: initial octet 0..7 (0 if empty), unused bits zero.
	if len(sig.b) < 2 || sig.b[0] > 7 || sig.b[len(sig.b)-1]&(1<<sig.b[0]-1) != 0 {
		return malformed(sig.off, "signatureValue: malformed BIT STRING")
	}
	// A signature that is not a whole number of octets parses (PKITS
	// 4.4.4's BadCRLSignatureCACRL is one) but never verifies.
	p.sigUnused = int(sig.b[0])
	p.Signature = append([]byte(nil), sig.b[1:]...)
	if s.off() != outerEnd {
		return malformed(s.off(), "CertificateList: unexpected element")
	}
	eof, err := s.atEOF()
	if err != nil {
		return err
	}
	if !eof {
		return malformed(outerEnd, "trailing data after the CertificateList")
	}
	p.Size = outerEnd
	s.finish()
	if s.tbs != nil {
		p.Digest = s.tbs.Sum(nil)
	}
	s.file.Sum(p.SHA256[:0])
	return ctx.Err()
}

// peekIn returns the next tag, which must lie before limit.
func (ps *parser) peekIn(limit int64, what string) (byte, error) {
	if ps.s.off() >= limit {
		return 0, malformed(ps.s.off(), what+": missing")
	}
	return ps.s.peek()
}

func (ps *parser) readTime(limit int64, what string) (t time.Time, err error) {
	off := ps.s.off()
	tag, _, body, err := ps.s.elem(limit, what)
	if err != nil {
		return t, err
	}
	t, ok := parseTime(tag, body.b)
	if !ok {
		return t, malformed(off, what+": not a DER UTCTime or GeneralizedTime")
	}
	return t, nil
}

// entries streams revokedCertificates.
func (ps *parser) entries(ctx context.Context, tbsEnd int64, fn func(*Entry) error) error {
	s, p := &ps.s, ps.p
	_, hl, n, err := s.header(tbsEnd, "revokedCertificates")
	if err != nil {
		return err
	}
	s.pos += hl
	end := s.off() + n
	e := &ps.e
	var idx int64
	for s.off() < end {
		if idx%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		off := s.off()
		tag, _, body, err := s.elem(end, "revokedCertificates entry")
		if err == nil && tag != tagSequence {
			err = malformed(off, "revokedCertificates entry: not a SEQUENCE")
		}
		if err == nil {
			e.Index = idx
			e.Reason = ReasonAbsent
			e.UnknownCritical = false
			err = ps.entry(body)
		}
		if err != nil {
			if pe, ok := err.(*posError); ok {
				pe.entry = idx
			}
			return err
		}
		if e.UnknownCritical {
			p.EntryUnknownCritical++
		}
		if fn != nil {
			if err := fn(e); err != nil {
				return fmt.Errorf("crl: entry %d: %w", idx, err)
			}
		}
		idx++
	}
	p.Entries = idx
	return nil
}

// entry parses one entry: SEQUENCE { userCertificate CertificateSerialNumber,
// revocationDate Time, crlEntryExtensions Extensions OPTIONAL } (§5.1.2.6).
func (ps *parser) entry(c cur) error {
	e := &ps.e
	_, v, err := c.expect(tagInteger, "serialNumber")
	if err != nil {
		return err
	}
	b := v.b
	if !minimalInt(b) {
		return malformed(v.off, "serialNumber: not a minimal INTEGER")
	}
	if len(b) > maxSerial {
		return unsupported(v.off, "serialNumber: too long")
	}
	if b[0]&0x80 == 0 {
		e.Negative = false
		if b[0] == 0 {
			b = b[1:]
		}
		ps.serial = append(ps.serial[:0], b...)
	} else {
		// two's complement magnitude: invert and add one
		e.Negative = true
		sb := append(ps.serial[:0], b...)
		for i := range sb {
			sb[i] = ^sb[i]
		}
		for i := len(sb) - 1; i >= 0; i-- {
			sb[i]++
			if sb[i] != 0 {
				break
			}
		}
		k := 0
		for k < len(sb) && sb[k] == 0 {
			k++
		}
		ps.serial = sb[:copy(sb, sb[k:])] // keep the buffer's start (and capacity)
	}
	e.Serial = ps.serial

	off := c.off
	tag, _, tv, err := c.next()
	if err != nil {
		return err
	}
	t, ok := ps.times.parse(tag, tv.b)
	if !ok {
		return malformed(off, "revocationDate: not a DER UTCTime or GeneralizedTime")
	}
	e.RevokedAt = t
	if c.empty() {
		return nil
	}
	off = c.off
	_, exts, err := c.expect(tagSequence, "crlEntryExtensions")
	if err != nil {
		return err
	}
	if !c.empty() {
		return malformed(c.off, "entry: data after crlEntryExtensions")
	}
	if ps.p.Version != 2 {
		return malformed(off, "crlEntryExtensions in a v1 CRL")
	}
	return ps.entryExtensions(exts)
}

// extension is one Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT
// FALSE, extnValue OCTET STRING } (§4.1, §4.2).
type extension struct {
	off      int64
	oid      []byte
	critical bool
	value    cur
}

func (ps *parser) nextExt(c *cur) (x extension, err error) {
	x.off = c.off
	_, body, err := c.expect(tagSequence, "Extension")
	if err != nil {
		return x, err
	}
	_, oid, err := body.expect(tagOID, "extnID")
	if err != nil {
		return x, err
	}
	if !validOID(oid.b) {
		return x, malformed(oid.off, "extnID: invalid OBJECT IDENTIFIER")
	}
	x.oid = oid.b
	if t, _ := body.peek(); t == tagBoolean {
		_, bv, err := body.expect(tagBoolean, "critical")
		if err != nil {
			return x, err
		}
		if len(bv.b) != 1 || (bv.b[0] != 0 && bv.b[0] != 0xff) {
			return x, malformed(bv.off, "critical: not a DER BOOLEAN")
		}
		// An explicit FALSE violates DER (X.690 §11.5) but is accepted.
		x.critical = bv.b[0] == 0xff
	}
	_, val, err := body.expect(tagOctetString, "extnValue")
	if err != nil {
		return x, err
	}
	if !body.empty() {
		return x, malformed(body.off, "Extension: data after extnValue")
	}
	x.value = val
	for _, o := range ps.seen {
		if bytes.Equal(o, x.oid) {
			return x, malformed(x.off, "duplicate extension")
		}
	}
	ps.seen = append(ps.seen, x.oid)
	return x, nil
}

// id-ce arcs (2.5.29.x) of the extensions understood here.
const (
	ceCRLNumber         = 20
	ceReasonCode        = 21
	ceInvalidityDate    = 24
	ceDeltaCRLIndicator = 27
	ceIDP               = 28
	ceCertIssuer        = 29
	ceAKI               = 35
	ceFreshestCRL       = 46
)

// idCE returns x for an OID 2.5.29.x (x < 128), else -1.
func idCE(oid []byte) int {
	if len(oid) == 3 && oid[0] == 0x55 && oid[1] == 0x1d && oid[2] < 0x80 {
		return int(oid[2])
	}
	return -1
}

// reasonExtDER is the usual encoding of a non-critical reasonCode extension
// up to its one-octet value.
const reasonExtDER = "\x30\x0a\x06\x03\x55\x1d\x15\x04\x03\x0a\x01"

func (ps *parser) entryExtensions(c cur) error {
	e := &ps.e
	ps.seen = ps.seen[:0]
	for !c.empty() {
		if len(c.b) >= len(reasonExtDER)+1 && string(c.b[:len(reasonExtDER)]) == reasonExtDER {
			// fast path for the common case; same checks as below
			r := int(c.b[len(reasonExtDER)])
			oid := c.b[4:7]
			for _, o := range ps.seen {
				if bytes.Equal(o, oid) {
					return malformed(c.off, "duplicate extension")
				}
			}
			if r > ReasonAACompromise || r == 7 {
				return malformed(c.off, "reasonCode: not a defined CRLReason")
			}
			ps.seen = append(ps.seen, oid)
			e.Reason = r
			c.b, c.off = c.b[len(reasonExtDER)+1:], c.off+int64(len(reasonExtDER)+1)
			continue
		}
		x, err := ps.nextExt(&c)
		if err != nil {
			return err
		}
		v := x.value
		switch idCE(x.oid) {
		case ceReasonCode:
			// CRLReason ::= ENUMERATED (§5.3.1)
			_, rv, err := v.expect(tagEnumerated, "reasonCode")
			if err != nil {
				return err
			}
			r, ok := smallUint(rv.b)
			if !ok || !v.empty() || r > ReasonAACompromise || r == 7 {
				return malformed(x.off, "reasonCode: not a defined CRLReason")
			}
			e.Reason = r
		case ceInvalidityDate:
			// InvalidityDate ::= GeneralizedTime (§5.3.2); value not used.
			if _, _, err := v.expect(tagGenTime, "invalidityDate"); err != nil {
				return err
			}
			if !v.empty() {
				return malformed(x.off, "invalidityDate: data after value")
			}
		case ceCertIssuer:
			if err := ps.certIssuer(x.off, v); err != nil {
				return err
			}
		default:
			if x.critical {
				e.UnknownCritical = true
			}
		}
	}
	return nil
}

// certIssuer handles certificateIssuer ::= GeneralNames (§5.3.3).
func (ps *parser) certIssuer(off int64, v cur) error {
	e := &ps.e
	_, gns, err := v.expect(tagSequence, "certificateIssuer")
	if err != nil {
		return err
	}
	if !v.empty() || gns.empty() {
		return malformed(off, "certificateIssuer: not a non-empty GeneralNames")
	}
	found := false
	for !gns.empty() {
		goff := gns.off
		tag, _, body, err := gns.next()
		if err != nil {
			return err
		}
		if !validGeneralNameTag(tag) {
			return malformed(goff, "certificateIssuer: invalid GeneralName")
		}
		if tag == 0xa4 && !found {
			// directoryName [4] Name: EXPLICIT, because Name is a CHOICE
			nameFull, name, err := body.expect(tagSequence, "certificateIssuer directoryName")
			if err != nil {
				return err
			}
			if !body.empty() {
				return malformed(body.off, "certificateIssuer: data after Name")
			}
			if err := validateName(name); err != nil {
				return err
			}
			ps.ci = append(ps.ci[:0], nameFull...)
			found = true
		}
	}
	if found {
		e.CertificateIssuer, e.NonDirectoryIssuer = ps.ci, false
	} else {
		e.CertificateIssuer, e.NonDirectoryIssuer = nil, true
	}
	ps.p.HasCertificateIssuer = true
	return nil
}

// validGeneralNameTag: GeneralName (§4.2.1.6) CHOICE tags, IMPLICIT except
// the CHOICE-typed directoryName; constructed for otherName, x400Address,
// directoryName, ediPartyName.
func validGeneralNameTag(t byte) bool {
	switch t {
	case 0xa0, 0x81, 0x82, 0xa3, 0xa4, 0xa5, 0x86, 0x87, 0x88:
		return true
	}
	return false
}

// validateName checks the structure of a Name's contents: SEQUENCE OF
// RelativeDistinguishedName (SET SIZE (1..MAX) OF AttributeTypeAndValue),
// §4.1.2.4.
func validateName(c cur) error {
	for !c.empty() {
		_, rdn, err := c.expect(tagSet, "Name: RelativeDistinguishedName")
		if err != nil {
			return err
		}
		if err := validateRDN(rdn); err != nil {
			return err
		}
	}
	return nil
}

func validateRDN(rdn cur) error {
	if rdn.empty() {
		return malformed(rdn.off, "Name: empty RelativeDistinguishedName")
	}
	for !rdn.empty() {
		_, atv, err := rdn.expect(tagSequence, "Name: AttributeTypeAndValue")
		if err != nil {
			return err
		}
		_, oid, err := atv.expect(tagOID, "Name: attribute type")
		if err != nil {
			return err
		}
		if !validOID(oid.b) {
			return malformed(oid.off, "Name: invalid attribute type")
		}
		if _, _, _, err := atv.next(); err != nil {
			return err
		}
		if !atv.empty() {
			return malformed(atv.off, "Name: data after attribute value")
		}
	}
	return nil
}

func (ps *parser) crlExtensions(c cur) error {
	p := ps.p
	ps.seen = ps.seen[:0]
	for !c.empty() {
		x, err := ps.nextExt(&c)
		if err != nil {
			return err
		}
		v := x.value
		switch idCE(x.oid) {
		case ceAKI:
			if err := ps.aki(x.off, v); err != nil {
				return err
			}
		case ceCRLNumber:
			if p.Number, err = crlNumber(x.off, v, "cRLNumber"); err != nil {
				return err
			}
		case ceDeltaCRLIndicator:
			if p.BaseNumber, err = crlNumber(x.off, v, "deltaCRLIndicator"); err != nil {
				return err
			}
		case ceIDP:
			if p.IDP, err = parseIDP(v); err != nil {
				return err
			}
		case ceFreshestCRL:
			// FreshestCRL ::= CRLDistributionPoints (§5.2.6); only its presence is reported.
			_, dps, err := v.expect(tagSequence, "freshestCRL")
			if err != nil {
				return err
			}
			if !v.empty() || dps.empty() {
				return malformed(x.off, "freshestCRL: not a non-empty SEQUENCE")
			}
			p.FreshestCRL = true
		default:
			if x.critical {
				oid, ok := decodeOID(x.oid)
				if !ok {
					return unsupported(x.off, "critical extension with an unrepresentable OID")
				}
				p.UnknownCritical = append(p.UnknownCritical, oid)
			}
		}
	}
	return nil
}

// aki reads AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0]
// OPTIONAL, authorityCertIssuer [1] OPTIONAL, authorityCertSerialNumber [2]
// OPTIONAL } (§4.2.1.1, §5.2.1).
func (ps *parser) aki(off int64, v cur) error {
	_, body, err := v.expect(tagSequence, "authorityKeyIdentifier")
	if err != nil {
		return err
	}
	if !v.empty() {
		return malformed(off, "authorityKeyIdentifier: data after value")
	}
	last := -1
	for !body.empty() {
		eoff := body.off
		tag, _, f, err := body.next()
		if err != nil {
			return err
		}
		var n int
		switch tag {
		case 0x80:
			n = 0
			ps.p.AuthorityKeyID = append([]byte{}, f.b...)
		case 0xa1:
			n = 1
		case 0x82:
			n = 2
		default:
			return malformed(eoff, "authorityKeyIdentifier: unexpected element")
		}
		if n <= last {
			return malformed(eoff, "authorityKeyIdentifier: elements out of order")
		}
		last = n
	}
	return nil
}

// crlNumber reads CRLNumber ::= INTEGER (0..MAX) (§5.2.3, §5.2.4).
func crlNumber(off int64, v cur, what string) (*big.Int, error) {
	_, n, err := v.expect(tagInteger, what)
	if err != nil {
		return nil, err
	}
	if !v.empty() || !minimalInt(n.b) || n.b[0]&0x80 != 0 {
		return nil, malformed(off, what+": not a minimal non-negative INTEGER")
	}
	return new(big.Int).SetBytes(n.b), nil
}

// parseIDP reads IssuingDistributionPoint (§5.2.5).
func parseIDP(v cur) (*IDP, error) {
	full, body, err := v.expect(tagSequence, "issuingDistributionPoint")
	if err != nil {
		return nil, err
	}
	if !v.empty() {
		return nil, malformed(v.off, "issuingDistributionPoint: data after value")
	}
	idp := &IDP{Raw: append([]byte(nil), full...)}
	// re-point body into the copy so FullName can share it
	body = cur{b: idp.Raw[len(full)-len(body.b):], off: body.off}
	last := -1
	for !body.empty() {
		eoff := body.off
		tag, _, f, err := body.next()
		if err != nil {
			return nil, err
		}
		n := int(tag & 0x1f)
		if tag&0xc0 != 0x80 || n > 5 || n <= last || (n == 0) != (tag&0x20 != 0) {
			return nil, malformed(eoff, "issuingDistributionPoint: unexpected element")
		}
		last = n
		switch n {
		case 0:
			// distributionPoint [0] DistributionPointName (a CHOICE, so EXPLICIT)
			dtag, dfull, dn, err := f.next()
			if err != nil {
				return nil, err
			}
			if !f.empty() {
				return nil, malformed(f.off, "issuingDistributionPoint: data after distributionPoint")
			}
			switch dtag {
			case 0xa0: // fullName [0] GeneralNames
				if dn.empty() {
					return nil, malformed(dn.off, "issuingDistributionPoint: empty fullName")
				}
				idp.FullName = [][]byte{}
				for !dn.empty() {
					goff := dn.off
					gtag, gfull, _, err := dn.next()
					if err != nil {
						return nil, err
					}
					if !validGeneralNameTag(gtag) {
						return nil, malformed(goff, "issuingDistributionPoint: invalid GeneralName")
					}
					idp.FullName = append(idp.FullName, gfull)
				}
			case 0xa1: // nameRelativeToCRLIssuer [1] RelativeDistinguishedName
				if err := validateRDN(dn); err != nil {
					return nil, err
				}
				idp.RelativeName = append([]byte(nil), dfull...)
				idp.RelativeName[0] = tagSet
			default:
				return nil, malformed(eoff, "issuingDistributionPoint: invalid DistributionPointName")
			}
		case 3:
			// onlySomeReasons [3] ReasonFlags (BIT STRING, §4.2.1.13)
			r, err := reasonFlags(f)
			if err != nil {
				return nil, err
			}
			if r == 0 {
				return nil, unsupported(eoff, "issuingDistributionPoint: onlySomeReasons without reasons")
			}
			idp.OnlySomeReasons = r
		default:
			if len(f.b) != 1 || (f.b[0] != 0 && f.b[0] != 0xff) {
				return nil, malformed(f.off, "issuingDistributionPoint: not a DER BOOLEAN")
			}
			// An explicit FALSE (DEFAULT) is not DER but is accepted.
			b := f.b[0] == 0xff
			switch n {
			case 1:
				idp.OnlyUser = b
			case 2:
				idp.OnlyCA = b
			case 4:
				idp.Indirect = b
			case 5:
				idp.OnlyAttr = b
			}
		}
	}
	return idp, nil
}

// reasonFlags decodes a DER named-bit BIT STRING's contents into
// ReasonFlags; bit 0 (unused) and bits beyond aACompromise are dropped.
func reasonFlags(c cur) (ReasonFlags, error) {
	b := c.b
	if len(b) == 0 || b[0] > 7 || (len(b) == 1 && b[0] != 0) {
		return 0, malformed(c.off, "ReasonFlags: malformed BIT STRING")
	}
	unused := b[0]
	bits := b[1:]
	if len(bits) > 0 && bits[len(bits)-1]&(1<<unused-1) != 0 {
		return 0, malformed(c.off, "ReasonFlags: unused bits not zero")
	}
	var r ReasonFlags
	for i := 1; i <= 8; i++ {
		if i/8 < len(bits) && bits[i/8]&(0x80>>(i%8)) != 0 {
			r |= 1 << i
		}
	}
	return r, nil
}
