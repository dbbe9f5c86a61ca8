package sim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/kazashi/kazashi/drivers/jpki"
)

// Default secrets of a virtual card. They are test values only.
const (
	DefaultAuthPIN      = "1234"
	DefaultSignPassword = "ABC123"
)

// DefaultProtInfo is the ATQB protocol info of a My Number Card: 256-byte
// frames, ISO/IEC 14443-4, FWI 10 (FWT ≈ 309 ms), CID supported.
var DefaultProtInfo = [3]byte{0xB3, 0x81, 0xA1}

// JPKIConfig describes a virtual My Number Card.
type JPKIConfig struct {
	Token      string          // token label, e.g. "JPKIAPICCTOKEN2"; space padded to 32 bytes
	AuthCert   []byte          // DER, EF 000A
	AuthCACert []byte          // DER, EF 000B
	AuthKey    *rsa.PrivateKey // optional: enables COMPUTE DIGITAL SIGNATURE with EF 0017
	SignCert   []byte          // optional DER, EF 0001 (readable after the signature password)
	SignCACert []byte          // optional DER, EF 0002
	// AuthPIN and SignPassword default to DefaultAuthPIN and
	// DefaultSignPassword.
	AuthPIN, SignPassword string
	// TypeB defaults to a random PUPI, AppData 00 00 00 00 and
	// DefaultProtInfo.
	TypeB *TypeB
}

// JPKICard is a virtual My Number Card answering the JPKI AP's APDUs like the
// plastic card does. It is safe for concurrent use and never logs.
//
// Status words: SELECT of an unknown AID or a missing EF → 6A82; READ BINARY
// with no EF selected → 6986, of a key or PIN EF → 6981, of EF 0001 without
// the signature password → 6982, at an offset at or past the end of the EF
// → 6B00, with fewer bytes left than Le → the bytes left and 6282 ("end of
// file reached before reading Le bytes", ISO/IEC 7816-4 §11.1.3); Le 00
// means 256. VERIFY without data on a PIN EF → 63 Cx (x tries left; 63 C0
// when blocked); a wrong PIN decrements the persistent counter; presenting a
// PIN to a blocked EF → 6984. Wrong CLA → 6E00, unknown INS → 6D00, a
// command of the wrong length → 6700.
type JPKICard struct {
	typeB TypeB

	mu       sync.Mutex
	files    map[uint16]*jpkiEF
	apSel    bool   // JPKI AP selected
	ef       uint16 // current EF, 0 = none
	verified map[uint16]bool
}

type efKind uint8

const (
	efBinary efKind = iota
	efPIN
	efKey
)

type jpkiEF struct {
	kind    efKind
	data    []byte          // binary EFs
	needs   uint16          // PIN EF that must be verified first, 0 = none
	key     *rsa.PrivateKey // key EFs
	secret  string          // PIN EFs
	tries   int             // PIN EFs: tries left (non-volatile)
	maxTry  int
	isValid func(string) bool
}

// NewJPKICard builds a virtual My Number Card.
func NewJPKICard(cfg JPKIConfig) (*JPKICard, error) {
	if len(cfg.Token) > 32 {
		return nil, fmt.Errorf("sim: token label %q longer than 32 bytes", cfg.Token)
	}
	if len(cfg.AuthCert) == 0 || len(cfg.AuthCACert) == 0 {
		return nil, errors.New("sim: JPKI card needs an authentication certificate and its CA certificate")
	}
	if cfg.AuthPIN == "" {
		cfg.AuthPIN = DefaultAuthPIN
	}
	if cfg.SignPassword == "" {
		cfg.SignPassword = DefaultSignPassword
	}
	c := &JPKICard{files: map[uint16]*jpkiEF{}, verified: map[uint16]bool{}}
	if cfg.TypeB != nil {
		c.typeB = *cfg.TypeB
	} else {
		if _, err := rand.Read(c.typeB.PUPI[:]); err != nil {
			return nil, fmt.Errorf("sim: PUPI: %w", err)
		}
		c.typeB.ProtInfo = DefaultProtInfo
	}
	token := []byte(cfg.Token + strings.Repeat(" ", 32-len(cfg.Token)))
	c.files[jpki.EFToken] = &jpkiEF{data: token}
	c.files[jpki.EFCertAvail] = &jpkiEF{data: []byte{0x8F, 0x8F, 0x00}}
	c.files[jpki.EFAuthCert] = &jpkiEF{data: bytes.Clone(cfg.AuthCert)}
	c.files[jpki.EFAuthCA] = &jpkiEF{data: bytes.Clone(cfg.AuthCACert)}
	c.files[jpki.EFSignCert] = &jpkiEF{data: bytes.Clone(cfg.SignCert), needs: jpki.EFSignPIN}
	if len(cfg.SignCACert) > 0 {
		c.files[jpki.EFSignCA] = &jpkiEF{data: bytes.Clone(cfg.SignCACert)}
	}
	c.files[jpki.EFAuthKey] = &jpkiEF{kind: efKey, key: cfg.AuthKey, needs: jpki.EFAuthPIN}
	c.files[jpki.EFSignKey] = &jpkiEF{kind: efKey, needs: jpki.EFSignPIN}
	c.files[jpki.EFAuthPIN] = &jpkiEF{kind: efPIN, secret: cfg.AuthPIN, tries: 3, maxTry: 3, isValid: validAuthPIN}
	c.files[jpki.EFSignPIN] = &jpkiEF{kind: efPIN, secret: cfg.SignPassword, tries: 5, maxTry: 5, isValid: validSignPassword}
	return c, nil
}

func validAuthPIN(s string) bool {
	if len(s) != 4 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func validSignPassword(s string) bool {
	if len(s) < 6 || len(s) > 16 {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'A' || r > 'Z') {
			return false
		}
	}
	return true
}

// TypeB implements Target.
func (c *JPKICard) TypeB() TypeB { return c.typeB }

// PowerOn implements Target: the selection and verified PINs are lost,
// retry counters are kept.
func (c *JPKICard) PowerOn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.apSel, c.ef = false, 0
	clear(c.verified)
}

// WTX implements WTXRequester: COMPUTE DIGITAL SIGNATURE (an RSA-2048
// private-key operation, longer than the card's 309 ms FWT on a real card)
// asks for one frame waiting time extension with WTXM 1.
func (c *JPKICard) WTX(apdu []byte) byte {
	if len(apdu) >= 2 && apdu[0] == 0x80 && apdu[1] == 0x2A {
		return 1
	}
	return 0
}

// Tries returns the tries left of a PIN EF (jpki.EFAuthPIN or jpki.EFSignPIN).
func (c *JPKICard) Tries(fid uint16) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.files[fid]; f != nil && f.kind == efPIN {
		return f.tries
	}
	return 0
}

// Status words the card uses.
const (
	swOK             = 0x9000
	swEOF            = 0x6282
	swWrongLength    = 0x6700
	swIncompatible   = 0x6981
	swSecurity       = 0x6982
	swBlocked        = 0x6984
	swConditions     = 0x6985
	swNoCurrentEF    = 0x6986
	swNotFound       = 0x6A82
	swWrongP1P2      = 0x6A86
	swRefNotFound    = 0x6A88
	swWrongParams    = 0x6B00
	swINSUnsupported = 0x6D00
	swCLAUnsupported = 0x6E00
)

// apdu is a parsed short command APDU.
type apdu struct {
	cla, ins, p1, p2 byte
	data             []byte
	ne               int  // expected response length, 256 for Le 00
	hasLe            bool // an Le byte was present
}

// parseAPDU splits a short APDU (ISO/IEC 7816-3 §12.1.3 cases 1–4).
func parseAPDU(b []byte) (apdu, bool) {
	if len(b) < 4 {
		return apdu{}, false
	}
	a := apdu{cla: b[0], ins: b[1], p1: b[2], p2: b[3]}
	body := b[4:]
	switch {
	case len(body) == 0: // case 1
	case len(body) == 1: // case 2
		a.ne, a.hasLe = int(body[0]), true
	default:
		lc := int(body[0])
		if lc == 0 {
			return apdu{}, false // extended APDUs are not supported by the card
		}
		switch len(body) {
		case 1 + lc: // case 3
			a.data = body[1:]
		case 2 + lc: // case 4
			a.data = body[1 : 1+lc]
			a.ne, a.hasLe = int(body[1+lc]), true
		default:
			return apdu{}, false
		}
	}
	if a.hasLe && a.ne == 0 {
		a.ne = 256
	}
	return a, true
}

func sw(code uint16) []byte { return []byte{byte(code >> 8), byte(code)} }

// Transmit implements Target.
func (c *JPKICard) Transmit(ctx context.Context, b []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := parseAPDU(b)
	if !ok {
		return sw(swWrongLength), nil
	}
	if a.cla != 0x00 && a.cla != 0x80 {
		return sw(swCLAUnsupported), nil
	}
	switch {
	case a.ins == 0xA4 && a.cla == 0x00:
		return c.selectFile(a), nil
	case a.ins == 0xB0 && a.cla == 0x00:
		return c.readBinary(a), nil
	case a.ins == 0x20 && a.cla == 0x00:
		return c.verify(a), nil
	case a.ins == 0x2A && a.cla == 0x80:
		return c.sign(a), nil
	case a.ins == 0xA4, a.ins == 0xB0, a.ins == 0x20, a.ins == 0x2A:
		return sw(swCLAUnsupported), nil
	}
	return sw(swINSUnsupported), nil
}

func (c *JPKICard) selectFile(a apdu) []byte {
	switch a.p1 {
	case 0x04: // by DF name
		if len(a.data) == 0 {
			return sw(swWrongLength)
		}
		c.ef = 0
		c.apSel = bytes.Equal(a.data, jpki.AID)
		if !c.apSel {
			return sw(swNotFound)
		}
		return sw(swOK)
	case 0x02: // EF under the current DF
		if len(a.data) != 2 {
			return sw(swWrongLength)
		}
		fid := uint16(a.data[0])<<8 | uint16(a.data[1])
		if !c.apSel || c.files[fid] == nil {
			return sw(swNotFound)
		}
		c.ef = fid
		return sw(swOK)
	}
	return sw(swWrongP1P2)
}

func (c *JPKICard) readBinary(a apdu) []byte {
	if a.p1&0x80 != 0 {
		return sw(swWrongP1P2) // short EF identifiers are not used by the JPKI AP
	}
	if !a.hasLe || len(a.data) > 0 {
		return sw(swWrongLength)
	}
	f := c.files[c.ef]
	if f == nil {
		return sw(swNoCurrentEF)
	}
	if f.kind != efBinary {
		return sw(swIncompatible)
	}
	if f.needs != 0 && !c.verified[f.needs] {
		return sw(swSecurity)
	}
	off := int(a.p1)<<8 | int(a.p2)
	if off >= len(f.data) {
		return sw(swWrongParams)
	}
	n := min(a.ne, len(f.data)-off)
	out := append(bytes.Clone(f.data[off:off+n]), 0, 0)
	code := uint16(swOK)
	if n < a.ne {
		code = swEOF
	}
	out[n], out[n+1] = byte(code>>8), byte(code)
	return out
}

func (c *JPKICard) verify(a apdu) []byte {
	if a.p1 != 0x00 || a.p2 != 0x80 {
		return sw(swWrongP1P2)
	}
	f := c.files[c.ef]
	if f == nil || f.kind != efPIN {
		return sw(swNoCurrentEF)
	}
	if len(a.data) == 0 { // retry counter query
		return sw(0x63C0 | uint16(f.tries))
	}
	if f.tries == 0 {
		return sw(swBlocked)
	}
	if !f.isValid(string(a.data)) || string(a.data) != f.secret {
		f.tries--
		c.verified[c.ef] = false
		return sw(0x63C0 | uint16(f.tries))
	}
	f.tries = f.maxTry
	c.verified[c.ef] = true
	return sw(swOK)
}

func (c *JPKICard) sign(a apdu) []byte {
	if a.p1 != 0x00 || a.p2 != 0x80 {
		return sw(swWrongP1P2)
	}
	if len(a.data) == 0 {
		return sw(swWrongLength)
	}
	f := c.files[c.ef]
	if f == nil || f.kind != efKey {
		return sw(swConditions)
	}
	if !c.verified[f.needs] {
		return sw(swSecurity)
	}
	if f.key == nil {
		return sw(swRefNotFound)
	}
	sig, err := rsa.SignPKCS1v15(nil, f.key, 0, a.data)
	if err != nil {
		return sw(swWrongLength) // DigestInfo too long for the key
	}
	return append(sig, 0x90, 0x00)
}
