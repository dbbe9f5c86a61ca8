package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"time"
)

// BigCRL describes a large synthetic CRL (RFC 5280 §5) for benchmarks and
// tests of revocation at national scale. WriteBigCRL streams it: the
// entries are computed from their index, never held in memory, and the
// signed part is hashed while it is written.
//
// # Entries
//
// Entry k (0 ≤ k < Entries) is the revoked certificate of index i = First+k:
//
//	userCertificate  Serial(i): exactly SerialBytes magnitude bytes, the
//	                 first in 0x01..0x7F (so every DER INTEGER is positive,
//	                 minimal and SerialBytes long), unique for all i < 2^56
//	revocationDate   RevokedAt(i): ThisUpdate − 1 h − a pseudo-random
//	                 whole number of seconds below 365 days; UTCTime for the
//	                 years 1950–2049, GeneralizedTime otherwise (§5.1.2.6)
//	crlEntryExtensions  reasonCode (§5.3.1, not critical) as Reason(i):
//	                 i%7 == 6  certificateHold (6)
//	                 else i%3 == 2  keyCompromise (1)
//	                 else i%5 == 4  cessationOfOperation (5)
//	                 else no extension (reason absent)
//
// A delta CRL (Delta set) may also list Remove: indices whose entries come
// first, with reason removeFromCRL (8) and the revocationDate of the base.
//
// # Serials
//
// Serial(i) is a bijection of i < 2^56, seeded: a 4-round Feistel network
// on two 28-bit halves (a Feistel network is a permutation whatever its
// round function; here a SplitMix64 finaliser of the half and a round key
// derived from Seed) gives v = P(i), 56 bits. The serial is
//
//	byte 0                 0x01 + (bigMix(v) mod 127), in 0x01..0x7F
//	bytes 1..SerialBytes−8 bigMix(v, j) filler bytes (none for 8)
//	last 7 bytes           v, big-endian
//
// The leading bytes are functions of v, and the last 7 bytes are v itself,
// so distinct indices always give distinct serials.
//
// # CRL
//
// Version v2, signature sha256WithRSAEncryption for an RSA key or
// ecdsa-with-SHA256 for an ECDSA key, issuer = Issuer.RawSubject,
// thisUpdate and nextUpdate (omitted when zero), revokedCertificates
// (omitted when empty, §5.1.2.6), and crlExtensions in this order:
// authorityKeyIdentifier (keyIdentifier = Issuer.SubjectKeyId, omitted when
// the issuer has none), cRLNumber = Number, deltaCRLIndicator = Delta
// (critical), issuingDistributionPoint = IDP (critical, the raw extension
// value).
type BigCRL struct {
	Issuer      *x509.Certificate
	Key         crypto.Signer // RSA (one pass) or ECDSA (two passes: the signature length is known only after signing)
	Entries     int
	SerialBytes int // magnitude bytes of every serial, 8..20 (0: 8)
	Seed        int64
	Number      *big.Int // cRLNumber, required
	ThisUpdate  time.Time
	NextUpdate  time.Time // zero: omitted
	IDP         []byte    // optional issuingDistributionPoint extension value (DER)
	Delta       *big.Int  // BaseCRLNumber: non-nil makes a delta CRL
	// First is the index of the first entry (a delta CRL adds new indices
	// after those of its base).
	First int
	// Remove lists indices written first with reason removeFromCRL; only
	// in a delta CRL (RFC 5280 §5.3.1), and outside First..First+Entries−1.
	Remove []int
}

// Reason codes BigCRL uses (RFC 5280 §5.3.1); ReasonAbsent means no
// reasonCode extension.
const (
	BigReasonAbsent               = -1
	BigReasonKeyCompromise        = 1
	BigReasonCessationOfOperation = 5
	BigReasonCertificateHold      = 6
	BigReasonRemoveFromCRL        = 8
)

// maxIndex bounds the indices: the permutation is over 56 bits.
const maxIndex = 1 << 56

var (
	oidAKI               = []byte{0x06, 0x03, 0x55, 0x1D, 0x23}
	oidCRLNumber         = []byte{0x06, 0x03, 0x55, 0x1D, 0x14}
	oidDeltaCRLIndicator = []byte{0x06, 0x03, 0x55, 0x1D, 0x1B}
	oidIDP               = []byte{0x06, 0x03, 0x55, 0x1D, 0x1C}
	oidReasonCode        = []byte{0x06, 0x03, 0x55, 0x1D, 0x15}
	derCritical          = []byte{0x01, 0x01, 0xFF}
	// sha256WithRSAEncryption with NULL parameters (RFC 4055 §5).
	algSHA256WithRSA = []byte{0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B, 0x05, 0x00}
	// ecdsa-with-SHA256, parameters absent (RFC 5758 §3.2).
	algECDSAWithSHA256 = []byte{0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02}
)

// bigMix is the SplitMix64 finaliser.
func bigMix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 27
	x *= 0x94D049BB133111EB
	x ^= x >> 31
	return x
}

// keys derives the round keys and salts from the seed.
type bigKeys struct {
	round            [4]uint64
	prefix, fill, at uint64
}

func (c *BigCRL) keys() bigKeys {
	s := uint64(c.Seed)
	next := func() uint64 { s += 0x9E3779B97F4A7C15; return bigMix(s) }
	var k bigKeys
	for r := range k.round {
		k.round[r] = next()
	}
	k.prefix, k.fill, k.at = next(), next(), next()
	return k
}

// perm is the 56-bit Feistel permutation of i.
func (k *bigKeys) perm(i uint64) uint64 {
	const mask = 1<<28 - 1
	l, r := i>>28&mask, i&mask
	for _, rk := range k.round {
		l, r = r, l^(bigMix(r^rk)&mask)
	}
	return l<<28 | r
}

func (c *BigCRL) serialBytes() int {
	if c.SerialBytes == 0 {
		return 8
	}
	return c.SerialBytes
}

// appendSerial appends the magnitude of serial i (n bytes).
func (k *bigKeys) appendSerial(dst []byte, i uint64, n int) []byte {
	v := k.perm(i)
	dst = append(dst, byte(1+bigMix(v^k.prefix)%127))
	for j := 0; j < n-8; j++ {
		dst = append(dst, byte(bigMix(v^k.fill^uint64(j)<<56)))
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return append(dst, b[1:]...)
}

// AppendSerial appends the magnitude bytes of Serial(i) to dst, without
// allocating when dst has room: for lookups in benchmarks.
func (c BigCRL) AppendSerial(dst []byte, i int) []byte {
	k := c.keys()
	return k.appendSerial(dst, uint64(i), c.serialBytes())
}

// Serial returns the serial number of entry index i (see BigCRL).
func (c BigCRL) Serial(i int) *big.Int {
	return new(big.Int).SetBytes(c.AppendSerial(nil, i))
}

// Reason returns the reason code of index i, BigReasonAbsent for none (see
// BigCRL). Indices in Remove are listed with BigReasonRemoveFromCRL instead.
func (c BigCRL) Reason(i int) int {
	switch {
	case i%7 == 6:
		return BigReasonCertificateHold
	case i%3 == 2:
		return BigReasonKeyCompromise
	case i%5 == 4:
		return BigReasonCessationOfOperation
	}
	return BigReasonAbsent
}

// RevokedAt returns the revocationDate of index i (whole seconds, UTC).
func (c BigCRL) RevokedAt(i int) time.Time {
	k := c.keys()
	return time.Unix(revokedUnix(c.ThisUpdate.Unix(), &k, uint64(i)), 0).UTC()
}

func revokedUnix(thisUpdate int64, k *bigKeys, i uint64) int64 {
	return thisUpdate - 3600 - int64(bigMix(i^k.at)%(365*86400))
}

// Unix seconds of 1950-01-01 and 2050-01-01: UTCTime covers [lo, hi).
const (
	utcTimeLo = -631152000
	utcTimeHi = 2524608000
	// 0001-01-01 and 10000-01-01: the range GeneralizedTime YYYY covers.
	genTimeLo = -62135596800
	genTimeHi = 253402300800
)

// timeLen is the DER TLV length of the Time for unix seconds s.
func timeLen(s int64) int {
	if s >= utcTimeLo && s < utcTimeHi {
		return 2 + 13
	}
	return 2 + 15
}

// appendTime appends the DER Time (RFC 5280 §4.1.2.5: UTCTime through 2049,
// GeneralizedTime from 2050) for unix seconds s, which must be in years
// 1..9999.
func appendTime(dst []byte, s int64) []byte {
	days, secs := s/86400, s%86400
	if secs < 0 {
		days, secs = days-1, secs+86400
	}
	y, m, d := civilFromDays(days)
	utc := s >= utcTimeLo && s < utcTimeHi
	if utc {
		dst = append(dst, 0x17, 13)
		dst = append2(dst, y%100)
	} else {
		dst = append(dst, 0x18, 15)
		dst = append2(dst, y/100)
		dst = append2(dst, y%100)
	}
	dst = append2(dst, m)
	dst = append2(dst, d)
	dst = append2(dst, int(secs/3600))
	dst = append2(dst, int(secs/60%60))
	dst = append2(dst, int(secs%60))
	return append(dst, 'Z')
}

func append2(dst []byte, v int) []byte { return append(dst, byte('0'+v/10), byte('0'+v%10)) }

// civilFromDays converts days since 1970-01-01 to a proleptic Gregorian date
// (H. Hinnant's civil_from_days).
func civilFromDays(z int64) (year, month, day int) {
	z += 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return int(y), int(m), int(d)
}

// lenLen is the size of a DER length field for n.
func lenLen(n int64) int {
	l := 1
	if n >= 0x80 {
		for ; n > 0; n >>= 8 {
			l++
		}
	}
	return l
}

func appendLen(dst []byte, n int64) []byte {
	if n < 0x80 {
		return append(dst, byte(n))
	}
	k := lenLen(n) - 1
	dst = append(dst, 0x80|byte(k))
	for j := k - 1; j >= 0; j-- {
		dst = append(dst, byte(n>>(8*j)))
	}
	return dst
}

func tlvLen(content int64) int64 { return 1 + int64(lenLen(content)) + content }

func derTLV(tag byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := appendLen([]byte{tag}, int64(n))
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// bigPlan is a validated BigCRL with everything but the entries encoded.
type bigPlan struct {
	c           *BigCRL
	k           bigKeys
	sb          int
	this        int64 // ThisUpdate, unix seconds
	removeEpoch int64 // ThisUpdate of the base, for the revocationDate of removed entries
	head        []byte
	exts        []byte // [0] EXPLICIT Extensions, or nil
	alg         []byte
	entriesLen  int64 // content of revokedCertificates
	tbsLen      int64 // content of TBSCertList
	hash        crypto.Hash
	rsaLen      int // RSA signature length; 0 for ECDSA
}

func newPlan(c *BigCRL, removeEpoch time.Time) (*bigPlan, error) {
	switch {
	case c.Issuer == nil || c.Key == nil:
		return nil, errors.New("testpki: BigCRL needs Issuer and Key")
	case c.Entries < 0 || c.First < 0 || uint64(c.First)+uint64(c.Entries) > maxIndex:
		return nil, errors.New("testpki: BigCRL entry indices out of range")
	case c.serialBytes() < 8 || c.serialBytes() > 20:
		return nil, errors.New("testpki: BigCRL SerialBytes must be 8..20 (RFC 5280 §4.1.2.2)")
	case c.Number == nil || c.Number.Sign() < 0:
		return nil, errors.New("testpki: BigCRL needs a non-negative Number (cRLNumber)")
	case c.Delta != nil && c.Delta.Sign() < 0:
		return nil, errors.New("testpki: BigCRL Delta must be non-negative")
	case c.ThisUpdate.IsZero():
		return nil, errors.New("testpki: BigCRL needs ThisUpdate")
	case len(c.Remove) > 0 && c.Delta == nil:
		return nil, errors.New("testpki: removeFromCRL entries belong in a delta CRL only (RFC 5280 §5.3.1)")
	}
	p := &bigPlan{c: c, k: c.keys(), sb: c.serialBytes(), this: c.ThisUpdate.Unix(), removeEpoch: removeEpoch.Unix(), hash: crypto.SHA256}
	inRange := func(t int64) bool { return t >= genTimeLo && t < genTimeHi }
	if !inRange(p.this-3600-365*86400) || !inRange(p.this) || !inRange(p.removeEpoch-3600-365*86400) || !inRange(p.removeEpoch) ||
		(!c.NextUpdate.IsZero() && !inRange(c.NextUpdate.Unix())) {
		return nil, errors.New("testpki: BigCRL times out of the years 1..9999")
	}
	seen := make(map[int]bool, len(c.Remove))
	for _, i := range c.Remove {
		if i < 0 || uint64(i) >= maxIndex || (i >= c.First && i < c.First+c.Entries) || seen[i] {
			return nil, fmt.Errorf("testpki: BigCRL Remove: index %d is out of range, duplicated or also added", i)
		}
		seen[i] = true
	}
	switch pub := c.Key.Public().(type) {
	case *rsa.PublicKey:
		p.alg, p.rsaLen = algSHA256WithRSA, pub.Size()
	case *ecdsa.PublicKey:
		p.alg = algECDSAWithSHA256
	default:
		return nil, fmt.Errorf("testpki: BigCRL: unsupported key type %T (RSA or ECDSA)", pub)
	}

	// TBSCertList up to revokedCertificates (RFC 5280 §5.1).
	head := []byte{0x02, 0x01, 0x01} // version v2
	head = append(head, p.alg...)
	head = append(head, c.Issuer.RawSubject...)
	head = appendTime(head, p.this)
	if !c.NextUpdate.IsZero() {
		head = appendTime(head, c.NextUpdate.Unix())
	}
	p.head = head

	// crlExtensions (§5.2).
	var exts [][]byte
	if len(c.Issuer.SubjectKeyId) > 0 {
		aki := derTLV(0x30, derTLV(0x80, c.Issuer.SubjectKeyId))
		exts = append(exts, derTLV(0x30, oidAKI, derTLV(0x04, aki)))
	}
	num, err := asn1.Marshal(c.Number)
	if err != nil {
		return nil, err
	}
	exts = append(exts, derTLV(0x30, oidCRLNumber, derTLV(0x04, num)))
	if c.Delta != nil {
		base, err := asn1.Marshal(c.Delta)
		if err != nil {
			return nil, err
		}
		exts = append(exts, derTLV(0x30, oidDeltaCRLIndicator, derCritical, derTLV(0x04, base)))
	}
	if len(c.IDP) > 0 {
		exts = append(exts, derTLV(0x30, oidIDP, derCritical, derTLV(0x04, c.IDP)))
	}
	p.exts = derTLV(0xA0, derTLV(0x30, exts...))

	// Entry sizes: serial TLV + Time TLV [+ reasonCode Extensions TLV].
	for k := range len(c.Remove) {
		p.entriesLen += p.entryLen(revokedUnix(p.removeEpoch, &p.k, uint64(c.Remove[k])), true)
	}
	for k := range c.Entries {
		i := c.First + k
		p.entriesLen += p.entryLen(revokedUnix(p.this, &p.k, uint64(i)), c.Reason(i) != BigReasonAbsent)
	}
	p.tbsLen = int64(len(p.head)) + int64(len(p.exts))
	if p.entriesLen > 0 {
		p.tbsLen += tlvLen(p.entriesLen)
	}
	return p, nil
}

// reasonExtLen is the TLV length of Extensions holding one reasonCode:
// 30 0C 30 0A 06 03 55 1D 15 04 03 0A 01 rr.
const reasonExtLen = 14

func (p *bigPlan) entryLen(at int64, reason bool) int64 {
	n := 2 + p.sb + timeLen(at)
	if reason {
		n += reasonExtLen
	}
	return int64(2 + n) // content < 128 (SerialBytes ≤ 20)
}

func (p *bigPlan) appendEntry(dst []byte, i uint64, at int64, reason int) []byte {
	n := 2 + p.sb + timeLen(at)
	if reason != BigReasonAbsent {
		n += reasonExtLen
	}
	dst = append(dst, 0x30, byte(n), 0x02, byte(p.sb))
	dst = p.k.appendSerial(dst, i, p.sb)
	dst = appendTime(dst, at)
	if reason != BigReasonAbsent {
		dst = append(dst, 0x30, 0x0C, 0x30, 0x0A)
		dst = append(dst, oidReasonCode...)
		dst = append(dst, 0x04, 0x03, 0x0A, 0x01, byte(reason))
	}
	return dst
}

// content is the length of the CertificateList's content for a signature
// of sigLen bytes.
func (p *bigPlan) content(sigLen int) int64 {
	return tlvLen(p.tbsLen) + int64(len(p.alg)) + tlvLen(int64(1+sigLen))
}

// hashWriter buffers writes to w and, while h is set, hashes them.
type hashWriter struct {
	w   io.Writer
	h   hash.Hash
	buf []byte
	n   int64
	err error
}

func (hw *hashWriter) flush() {
	if hw.err != nil || len(hw.buf) == 0 {
		hw.buf = hw.buf[:0]
		return
	}
	if hw.h != nil {
		hw.h.Write(hw.buf)
	}
	var n int
	n, hw.err = hw.w.Write(hw.buf)
	hw.n += int64(n)
	hw.buf = hw.buf[:0]
}

const flushAt = 128 << 10

// writeTBS writes the TBSCertList TLV.
func (p *bigPlan) writeTBS(hw *hashWriter) error {
	hw.buf = appendLen(append(hw.buf, 0x30), p.tbsLen)
	hw.buf = append(hw.buf, p.head...)
	if p.entriesLen > 0 {
		hw.buf = appendLen(append(hw.buf, 0x30), p.entriesLen)
	}
	for _, i := range p.c.Remove {
		hw.buf = p.appendEntry(hw.buf, uint64(i), revokedUnix(p.removeEpoch, &p.k, uint64(i)), BigReasonRemoveFromCRL)
	}
	for k := range p.c.Entries {
		i := p.c.First + k
		hw.buf = p.appendEntry(hw.buf, uint64(i), revokedUnix(p.this, &p.k, uint64(i)), p.c.Reason(i))
		if len(hw.buf) >= flushAt {
			if hw.flush(); hw.err != nil {
				return hw.err
			}
		}
	}
	hw.buf = append(hw.buf, p.exts...)
	hw.flush()
	return hw.err
}

func newHashWriter(w io.Writer) *hashWriter {
	return &hashWriter{w: w, buf: make([]byte, 0, flushAt+256)}
}

func (p *bigPlan) sign(h hash.Hash) ([]byte, error) {
	sig, err := p.c.Key.Sign(rand.Reader, h.Sum(nil), p.hash)
	if err != nil {
		return nil, fmt.Errorf("testpki: BigCRL: signing: %w", err)
	}
	if p.rsaLen > 0 && len(sig) != p.rsaLen {
		return nil, fmt.Errorf("testpki: BigCRL: signature of %d bytes, expected %d", len(sig), p.rsaLen)
	}
	return sig, nil
}

// emit writes the CRL to w: in one pass for an RSA key (the signature
// length is the modulus length); for an ECDSA key it first hashes the TBS
// without writing it, since a DER ECDSA signature's length (which the outer
// SEQUENCE's length needs) is known only after signing.
func (p *bigPlan) emit(w io.Writer) error {
	var sig []byte
	if p.rsaLen == 0 {
		h := sha256.New()
		pass := newHashWriter(io.Discard)
		pass.h = h
		if err := p.writeTBS(pass); err != nil {
			return err
		}
		var err error
		if sig, err = p.sign(h); err != nil {
			return err
		}
	}
	sigLen := p.rsaLen
	if sig != nil {
		sigLen = len(sig)
	}
	hw := newHashWriter(w)
	hw.buf = appendLen(append(hw.buf, 0x30), p.content(sigLen))
	hw.flush()
	h := sha256.New()
	if sig == nil {
		hw.h = h
	}
	if err := p.writeTBS(hw); err != nil {
		return err
	}
	hw.h = nil
	if sig == nil {
		var err error
		if sig, err = p.sign(h); err != nil {
			return err
		}
	}
	hw.buf = append(hw.buf, p.alg...)
	hw.buf = appendLen(append(hw.buf, 0x03), int64(1+len(sig)))
	hw.buf = append(hw.buf, 0x00)
	hw.buf = append(hw.buf, sig...)
	hw.flush()
	return hw.err
}

// Size returns the length in bytes of the DER WriteBigCRL writes for c. It
// needs an RSA key (an ECDSA signature's length is known only after
// signing).
func (c BigCRL) Size() (int64, error) {
	p, err := newPlan(&c, c.ThisUpdate)
	if err != nil {
		return 0, err
	}
	if p.rsaLen == 0 {
		return 0, errors.New("testpki: BigCRL.Size needs an RSA key")
	}
	return tlvLen(p.content(p.rsaLen)), nil
}

// WriteBigCRL streams the DER CRL described by c to w (see BigCRL): lengths
// are computed up front, the entries generated one by one and the signed
// part hashed while it is written, so memory stays constant whatever
// c.Entries is. Removed entries (a delta CRL's Remove) get the
// revocationDate derived from c.ThisUpdate.
func WriteBigCRL(w io.Writer, c BigCRL) error {
	p, err := newPlan(&c, c.ThisUpdate)
	if err != nil {
		return err
	}
	return p.emit(w)
}

// WriteDeltaCRL streams a delta CRL (RFC 5280 §5.2.4) for base: cRLNumber
// number, deltaCRLIndicator base.Number, the base's IDP, listing first the
// indices removed (each with reason removeFromCRL and the revocationDate it
// has in base; they must be entries of base) and then `added` new entries,
// indices base.First+base.Entries onwards of the same permutation, with
// their usual reasons and revocation dates relative to thisUpdate.
func WriteDeltaCRL(w io.Writer, base BigCRL, number *big.Int, thisUpdate, nextUpdate time.Time, added int, removed []int) error {
	if base.Number == nil {
		return errors.New("testpki: WriteDeltaCRL needs base.Number")
	}
	for _, i := range removed {
		if i < base.First || i >= base.First+base.Entries {
			return fmt.Errorf("testpki: WriteDeltaCRL: removed index %d is not in the base", i)
		}
	}
	d := base
	d.Number, d.ThisUpdate, d.NextUpdate = number, thisUpdate, nextUpdate
	d.Delta = base.Number
	d.First, d.Entries = base.First+base.Entries, added
	d.Remove = removed
	p, err := newPlan(&d, base.ThisUpdate)
	if err != nil {
		return err
	}
	return p.emit(w)
}
