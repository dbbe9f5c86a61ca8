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
)

// The behaviour below follows ../shared/docs/mynumbercard.md ("the doc";
// section numbers §n refer to it) and, through it, the upstream sources it
// cites. Where the doc marks a fact [UNCERTAIN] the simulator takes the
// choice that is stricter for a host driver and says so.

// Default secrets of a virtual card. They are test values only.
const (
	DefaultAuthPIN      = "1234"
	DefaultSignPassword = "ABC123"
	// DefaultCollationB is the doc's test card (§4.1): born 1980-02-17
	// (昭和55), card expiry 2035, security code 2285.
	DefaultCollationB = "55021720352285"
	DefaultSupportPIN = "1234"
)

// DefaultProtInfo is the ATQB protocol info of a My Number Card: 256-byte
// frames, ISO/IEC 14443-4, FWI 10 (FWT ≈ 309 ms), CID supported.
var DefaultProtInfo = [3]byte{0xB3, 0x81, 0xA1}

// Application names for TriesOf.
const (
	APJPKI    = "jpki"    // 公的個人認証AP
	APSurface = "surface" // 券面事項確認AP
	APSupport = "support" // 券面事項入力補助AP
)

// Key references (credentials) of the three APs, for TriesOf (doc §2.2,
// §3.1, §4.1).
const (
	JPKIAuthPIN       uint16 = 0x0018 // 利用者証明用暗証番号, 4 digits, 3 tries
	JPKISignPassword  uint16 = 0x001B // 署名用パスワード, 6–16 of A–Z 0–9, 5 tries
	SurfaceBirthKey   uint16 = 0x0011 // 生年月日 key, 6 digits (era YYMMDD)
	SurfaceCollationB uint16 = 0x0012 // 照合番号B, 14 digits, 10 tries
	SupportPIN        uint16 = 0x0011 // 券面事項入力補助用暗証番号, 4 digits, 3 tries
	SupportBlocked    uint16 = 0x0012 // unknown credential, blocked on every card examined
	SupportCollationB uint16 = 0x0015 // 照合番号B
)

// JPKI AP files (doc §2.1). The simulator keeps its own copy of the
// layout, taken from the doc, rather than the driver's.
const (
	efSignCert  uint16 = 0x0001
	efSignCA    uint16 = 0x0002
	efToken     uint16 = 0x0006
	efCertAvail uint16 = 0x0008
	efAuthCert  uint16 = 0x000A
	efAuthCA    uint16 = 0x000B
	efAuthKey   uint16 = 0x0017
	efSignKey   uint16 = 0x001A
)

// AIDs of the three APs (doc §1).
var (
	aidJPKI    = []byte{0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01}
	aidSurface = []byte{0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x02}
	aidSupport = []byte{0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08}
)

// JPKIConfig describes a virtual My Number Card.
type JPKIConfig struct {
	Token      string          // token label, e.g. "JPKIAPICCTOKEN2"; space padded to 32 bytes
	AuthCert   []byte          // DER, EF 000A
	AuthCACert []byte          // DER, EF 000B
	AuthKey    *rsa.PrivateKey // optional: enables COMPUTE DIGITAL SIGNATURE with EF 0017
	SignCert   []byte          // optional DER, EF 0001 (readable after the signature password)
	SignCACert []byte          // optional DER, EF 0002
	SignKey    *rsa.PrivateKey // optional: enables COMPUTE DIGITAL SIGNATURE with EF 001A
	// AuthPIN and SignPassword default to DefaultAuthPIN and
	// DefaultSignPassword.
	AuthPIN, SignPassword string
	// Surface and Support add the card surface and input support APs; nil
	// leaves the AP off the card (its SELECT answers 6A82), as on a
	// programmable clone or a phone token.
	Surface *SurfaceAP
	Support *SupportAP
	// TypeB defaults to a random PUPI, AppData 00 00 00 00 and
	// DefaultProtInfo.
	TypeB *TypeB
}

// SurfaceAP is the card surface AP (券面事項確認AP, AID D3 92 10 00 31 00 01
// 01 04 02) of a virtual card.
type SurfaceAP struct {
	// Files are the EFs by FID: 0002 card-face record (opened by
	// collation number B), 0003 and 0004 (free), 0001 (opened by the
	// birth-date key), 0005 (opened only by collation number A, which is
	// not modelled: never readable), 0006 (B). Empty entries are absent.
	Files map[uint16][]byte
	// CollationB is key 0012 (14 digits); default DefaultCollationB.
	CollationB string
	// BirthKey is key 0011 (6 digits, era YYMMDD); "" leaves it off.
	BirthKey string
	// CardKey is DF24's private half: COMPUTE SIGNATURE 80 2A 00 00 signs
	// with it. nil: that command answers 6A88.
	CardKey *rsa.PrivateKey
}

// SupportAP is the input support AP (券面事項入力補助AP, AID D3 92 10 00 31 00
// 01 01 04 08) of a virtual card.
type SupportAP struct {
	// Files are the EFs by FID: 0001 individual number, 0002 basic 4
	// information, 0003 integrity record (PIN; 0002 also B), 0004 CV
	// certificate and 0005 (free), 0007 challenge key record (PIN or B).
	// Empty entries are absent.
	Files map[uint16][]byte
	// PIN is key 0011 (4 digits); default DefaultSupportPIN. CollationB
	// is key 0015 (14 digits); default DefaultCollationB.
	PIN, CollationB string
	// ChallengeKey is the private half of EF 0007's DF51: COMPUTE
	// SIGNATURE 80 2A 00 00 signs with it. nil: 6A88.
	ChallengeKey *rsa.PrivateKey
}

// JPKICard is a virtual My Number Card: the JPKI AP and, when configured,
// the card surface and input support APs, answering APDUs like the plastic
// card does (doc §1–§4). It is safe for concurrent use and never logs.
//
// Status words (doc §2.3): SELECT of an unknown AID or a missing EF → 6A82;
// READ BINARY with no EF selected → 6986, of a key or PIN EF → 6981, of an
// EF whose credential is not verified → 6982, at an offset at or past the
// end of the EF → 6B00, with fewer bytes left than Le → the bytes left and
// 6282 ("end of file reached before reading Le bytes", ISO/IEC 7816-4
// §11.1.3); Le 00 means 256. VERIFY without data on a PIN EF → 63 Cx (x
// tries left; 63 C0 when blocked) and changes nothing; a wrong value
// decrements the persistent counter and answers 63 Cx, 63 C0 on the
// exhausting attempt; presenting a value to a blocked EF → 6984; a correct
// value resets the counter to its maximum. COMPUTE SIGNATURE without the
// credential → 6982. Wrong P1/P2 → 6A86, wrong CLA → 6E00, unknown INS →
// 6D00, a command of the wrong length → 6700.
//
// Security state (doc §2.4): a verified credential stays verified across
// SELECT EF inside its AP and is cleared by any SELECT by DF name (another
// AP or the same one again) and by power-off; retry counters are
// non-volatile and survive both.
type JPKICard struct {
	typeB TypeB

	mu       sync.Mutex
	apps     []*application
	cur      *application // selected AP, nil = none (MF after power-on)
	ef       uint16       // current EF, 0 = none
	verified map[uint16]bool
}

// application is one AP of the card.
type application struct {
	name  string
	aid   []byte
	files map[uint16]*cardEF
	// kenmen is true for the card surface and input support APs (券面AP):
	// they sign with a default key (80 2A 00 00), answer GET CHALLENGE and
	// refuse 00 88 with 6985.
	kenmen   bool
	key      *rsa.PrivateKey // 券面AP default key
	keyNeeds []uint16        // credentials any one of which unlocks key
}

type efKind uint8

const (
	efBinary efKind = iota
	efPIN
	efKey
)

type cardEF struct {
	kind     efKind
	data     []byte          // binary EFs
	needs    []uint16        // PIN EFs any one of which must be verified first; none = free
	personal bool            // binary EF with personal data: masked in the frame log (doc §7)
	key      *rsa.PrivateKey // key EFs
	secret   string          // PIN EFs
	tries    int             // PIN EFs: tries left (non-volatile)
	maxTry   int
	isValid  func(string) bool
}

// ErrConfig is wrapped by NewJPKICard for an inconsistent configuration.
var ErrConfig = errors.New("sim: bad virtual card configuration")

// NewJPKICard builds a virtual My Number Card.
func NewJPKICard(cfg JPKIConfig) (*JPKICard, error) {
	if len(cfg.Token) > 32 {
		return nil, fmt.Errorf("%w: token label %q longer than 32 bytes", ErrConfig, cfg.Token)
	}
	if len(cfg.AuthCert) == 0 || len(cfg.AuthCACert) == 0 {
		return nil, fmt.Errorf("%w: JPKI card needs an authentication certificate and its CA certificate", ErrConfig)
	}
	if cfg.AuthPIN == "" {
		cfg.AuthPIN = DefaultAuthPIN
	}
	if cfg.SignPassword == "" {
		cfg.SignPassword = DefaultSignPassword
	}
	// Secrets never appear in errors (contracts: no secrets in errors).
	if !digits(cfg.AuthPIN, 4) {
		return nil, fmt.Errorf("%w: auth PIN is not 4 digits", ErrConfig)
	}
	if !validSignPassword(cfg.SignPassword) {
		return nil, fmt.Errorf("%w: signature password is not 6–16 of A–Z 0–9", ErrConfig)
	}
	c := &JPKICard{verified: map[uint16]bool{}}
	if cfg.TypeB != nil {
		c.typeB = *cfg.TypeB
	} else {
		if _, err := rand.Read(c.typeB.PUPI[:]); err != nil {
			return nil, fmt.Errorf("sim: PUPI: %w", err)
		}
		c.typeB.ProtInfo = DefaultProtInfo
	}
	c.apps = append(c.apps, jpkiApp(cfg))
	if cfg.Surface != nil {
		app, err := surfaceApp(*cfg.Surface)
		if err != nil {
			return nil, err
		}
		c.apps = append(c.apps, app)
	}
	if cfg.Support != nil {
		app, err := supportApp(*cfg.Support)
		if err != nil {
			return nil, err
		}
		c.apps = append(c.apps, app)
	}
	return c, nil
}

// jpkiApp builds the JPKI AP (doc §2.1, §2.2).
func jpkiApp(cfg JPKIConfig) *application {
	f := map[uint16]*cardEF{}
	token := []byte(cfg.Token + strings.Repeat(" ", 32-len(cfg.Token)))
	f[efToken] = &cardEF{data: token}
	// EF 0008: byte 0 signature cert, byte 1 auth cert, byte 2 unknown;
	// 8F = present, 00 = absent (doc §2.1, "00 8F 00: no signature cert").
	avail := []byte{0x00, 0x8F, 0x00}
	if len(cfg.SignCert) > 0 {
		avail[0] = 0x8F
	}
	f[efCertAvail] = &cardEF{data: avail}
	f[efAuthCert] = &cardEF{data: bytes.Clone(cfg.AuthCert)}
	f[efAuthCA] = &cardEF{data: bytes.Clone(cfg.AuthCACert)}
	// EF 0001: signature password, else 6982 (doc §2.1, OpenSC issue
	// #3169 log); its SAN carries the basic 4 information (doc §7).
	f[efSignCert] = &cardEF{data: bytes.Clone(cfg.SignCert), needs: []uint16{JPKISignPassword}, personal: true}
	if len(cfg.SignCACert) > 0 {
		f[efSignCA] = &cardEF{data: bytes.Clone(cfg.SignCACert)}
	}
	// Keys usable after VERIFY 0018 / 001B (doc §2.1); 3 and 5 tries (§2.2).
	f[efAuthKey] = &cardEF{kind: efKey, key: cfg.AuthKey, needs: []uint16{JPKIAuthPIN}}
	f[efSignKey] = &cardEF{kind: efKey, key: cfg.SignKey, needs: []uint16{JPKISignPassword}}
	f[JPKIAuthPIN] = pinEF(cfg.AuthPIN, 3, func(s string) bool { return digits(s, 4) })
	f[JPKISignPassword] = pinEF(cfg.SignPassword, 5, validSignPassword)
	return &application{name: APJPKI, aid: aidJPKI, files: f}
}

// surfaceApp builds the card surface AP (doc §4.1, §4.3).
func surfaceApp(s SurfaceAP) (*application, error) {
	if s.CollationB == "" {
		s.CollationB = DefaultCollationB
	}
	if !digits(s.CollationB, 14) {
		return nil, fmt.Errorf("%w: surface collation number B is not 14 digits", ErrConfig)
	}
	if s.BirthKey != "" && !digits(s.BirthKey, 6) {
		return nil, fmt.Errorf("%w: surface birth-date key is not 6 digits", ErrConfig)
	}
	f := map[uint16]*cardEF{}
	// Access per doc §4.1: 0012 (B) opens 0002 (and 0006); 0011 (birth
	// key) opens 0001 only; 0003, 0004 free; 0005 needs A (0013), which
	// is not modelled, so it is never readable here. Personal data per
	// doc §7: 0001, 0002, 0005.
	access := map[uint16][]uint16{
		0x0001: {SurfaceBirthKey},
		0x0002: {SurfaceCollationB},
		0x0005: {0x0013},
		0x0006: {SurfaceCollationB},
	}
	personal := map[uint16]bool{0x0001: true, 0x0002: true, 0x0005: true}
	for fid, data := range s.Files {
		if len(data) == 0 {
			continue
		}
		if fid == SurfaceBirthKey || fid == SurfaceCollationB || fid == 0x0013 {
			return nil, fmt.Errorf("%w: surface EF %04X is a key reference", ErrConfig, fid)
		}
		f[fid] = &cardEF{data: bytes.Clone(data), needs: access[fid], personal: personal[fid]}
	}
	// B: 10 tries ([medium] in doc §4.1: soltia48 data.rs, Digital Agency).
	f[SurfaceCollationB] = pinEF(s.CollationB, 10, func(v string) bool { return digits(v, 14) })
	if s.BirthKey != "" {
		// The birth-date key's retry count is unknown (doc §4.1, §8.4):
		// modelled as 3, the smallest count of any credential on the card,
		// so a driver that spends tries carelessly shows up in tests.
		f[SurfaceBirthKey] = pinEF(s.BirthKey, 3, func(v string) bool { return digits(v, 6) })
	}
	// Challenge signing (doc §4.5): the source calls the credential
	// "none", but its only example signs after VERIFY B, and the doc marks
	// this [UNCERTAIN] (§8.3). The simulator takes the conservative
	// choice: B must be verified in the current selection, else 6982, so
	// that a driver that works here also works on a card that requires it.
	return &application{name: APSurface, aid: aidSurface, files: f, kenmen: true, key: s.CardKey, keyNeeds: []uint16{SurfaceCollationB}}, nil
}

// supportApp builds the input support AP (doc §3.1, §3.2).
func supportApp(s SupportAP) (*application, error) {
	if s.PIN == "" {
		s.PIN = DefaultSupportPIN
	}
	if s.CollationB == "" {
		s.CollationB = DefaultCollationB
	}
	if !digits(s.PIN, 4) {
		return nil, fmt.Errorf("%w: input support PIN is not 4 digits", ErrConfig)
	}
	if !digits(s.CollationB, 14) {
		return nil, fmt.Errorf("%w: input support collation number B is not 14 digits", ErrConfig)
	}
	f := map[uint16]*cardEF{}
	// Access per doc §3.1: 0011 (PIN) opens 0001, 0002, 0003, 0006, 0007;
	// 0015 (B) opens 0002, not 0001; 0007: PIN or either collation
	// number; 0004, 0005 free. EF 0003 is [UNCERTAIN] ("PIN or A" vs "PIN
	// or either collation number"): modelled as PIN only, the stricter
	// reading. Personal data per doc §7: 0001–0003.
	access := map[uint16][]uint16{
		0x0001: {SupportPIN},
		0x0002: {SupportPIN, SupportCollationB},
		0x0003: {SupportPIN},
		0x0006: {SupportPIN},
		0x0007: {SupportPIN, SupportCollationB},
	}
	personal := map[uint16]bool{0x0001: true, 0x0002: true, 0x0003: true}
	for fid, data := range s.Files {
		if len(data) == 0 {
			continue
		}
		if fid == SupportPIN || fid == SupportBlocked || fid == 0x0014 || fid == SupportCollationB {
			return nil, fmt.Errorf("%w: input support EF %04X is a key reference", ErrConfig, fid)
		}
		f[fid] = &cardEF{data: bytes.Clone(data), needs: access[fid], personal: personal[fid]}
	}
	// PIN: 3 tries (doc §3.1, kawajima). B: 10 ([UNCERTAIN] in §3.1,
	// §4.1); its counter is kept apart from the surface AP's 0012 (one
	// shared counter is [UNCERTAIN], §4.1 and §8.4; "credentials never
	// cross APs", §2.4).
	f[SupportPIN] = pinEF(s.PIN, 3, func(v string) bool { return digits(v, 4) })
	f[SupportCollationB] = pinEF(s.CollationB, 10, func(v string) bool { return digits(v, 14) })
	// 0012: present but blocked on every card examined: retry query
	// 63 C0, any value 69 84 (doc §3.1).
	f[SupportBlocked] = &cardEF{kind: efPIN, isValid: func(string) bool { return false }}
	// Challenge signing after the PIN or B (doc §3.2 "Liveness here", §6
	// step 8 "with B").
	return &application{name: APSupport, aid: aidSupport, files: f, kenmen: true, key: s.ChallengeKey, keyNeeds: []uint16{SupportPIN, SupportCollationB}}, nil
}

func pinEF(secret string, tries int, valid func(string) bool) *cardEF {
	return &cardEF{kind: efPIN, secret: secret, tries: tries, maxTry: tries, isValid: valid}
}

// digits reports whether s is exactly n ASCII digits.
func digits(s string, n int) bool {
	if len(s) != n {
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

// PowerOn implements Target: the selection and verified credentials are
// lost (volatile), retry counters are kept (doc §2.4: the card restarts
// with MF current, nothing selected; only a correct VERIFY resets a
// counter).
func (c *JPKICard) PowerOn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur, c.ef = nil, 0
	clear(c.verified)
}

// WTX implements WTXRequester: COMPUTE DIGITAL SIGNATURE (an RSA-2048
// private-key operation, longer than the card's 309 ms FWT on a real card,
// doc §1 "Signing exceeds FWT") asks for one frame waiting time extension
// with WTXM 1, in every AP.
func (c *JPKICard) WTX(apdu []byte) byte {
	if len(apdu) >= 2 && apdu[0] == 0x80 && apdu[1] == 0x2A {
		return 1
	}
	return 0
}

// Tries returns the tries left of a JPKI AP PIN EF (JPKIAuthPIN 0018 or
// JPKISignPassword 001B), 0 for any other FID.
func (c *JPKICard) Tries(fid uint16) int {
	return max(c.TriesOf(APJPKI, fid), 0)
}

// TriesOf returns the tries left of credential fid in application ap
// (APJPKI, APSurface or APSupport), or -1 when the card has no such
// application or credential.
func (c *JPKICard) TriesOf(ap string, fid uint16) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.apps {
		if a.name != ap {
			continue
		}
		if f := a.files[fid]; f != nil && f.kind == efPIN {
			return f.tries
		}
	}
	return -1
}

// HasApplication reports whether the card carries application ap (APJPKI,
// APSurface or APSupport).
func (c *JPKICard) HasApplication(ap string) bool {
	for _, a := range c.apps {
		if a.name == ap {
			return true
		}
	}
	return false
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
	swSMRefused      = 0x66F1
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
	resp, _, err := c.transmitMarked(ctx, b)
	return resp, err
}

// transmitMarked is Transmit that also reports whether the answer carries
// personal data (a READ BINARY of an EF listed in doc §7), for the frame
// log.
func (c *JPKICard) transmitMarked(ctx context.Context, b []byte) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("sim: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	kenmen := c.cur != nil && c.cur.kenmen
	if kenmen && len(b) == 7 && b[0] == 0x00 && b[1] == 0x84 && b[4] == 0x00 {
		// GET CHALLENGE with an extended Le → 6985 (doc §4.5).
		return sw(swConditions), false, nil
	}
	a, ok := parseAPDU(b)
	if !ok {
		return sw(swWrongLength), false, nil
	}
	if a.cla != 0x00 && a.cla != 0x80 {
		return sw(swCLAUnsupported), false, nil
	}
	switch {
	case a.ins == 0xA4 && a.cla == 0x00:
		return c.selectFile(a), false, nil
	case a.ins == 0xB0 && a.cla == 0x00:
		resp := c.readBinary(a)
		f := c.curEF()
		// Only answers with data are masked: a bare status word is not
		// personal data and helps debugging.
		return resp, f != nil && f.personal && len(resp) > 2, nil
	case a.ins == 0x20 && a.cla == 0x00:
		return c.verify(a), false, nil
	case a.ins == 0x2A && a.cla == 0x80:
		return c.sign(a), false, nil
	case a.ins == 0x84 && a.cla == 0x00 && kenmen:
		return c.getChallenge(a), false, nil
	case a.ins == 0x88 && a.cla == 0x00:
		// INTERNAL AUTHENTICATE is no signing path: PIN keys → 6982,
		// 券面 keys → 6985 (doc §2.2, §4.5; soltia48 card.rs).
		if kenmen {
			return sw(swConditions), false, nil
		}
		return sw(swSecurity), false, nil
	case a.ins == 0xAE && a.cla == 0x80 && c.cur != nil && c.cur.name == APSurface:
		// 80 AE (secure-messaging set-up) is refused in the surface AP
		// (doc §2.3).
		return sw(swSMRefused), false, nil
	case a.ins == 0xA4, a.ins == 0xB0, a.ins == 0x20, a.ins == 0x2A:
		return sw(swCLAUnsupported), false, nil
	}
	return sw(swINSUnsupported), false, nil
}

func (c *JPKICard) curEF() *cardEF {
	if c.cur == nil {
		return nil
	}
	return c.cur.files[c.ef]
}

func (c *JPKICard) selectFile(a apdu) []byte {
	switch a.p1 {
	case 0x04: // by DF name: the full AID (doc §1; prefix matching is not modelled)
		if len(a.data) == 0 {
			return sw(swWrongLength)
		}
		// Any SELECT by DF name clears every verified credential, for
		// the same AP too (doc §2.4 [UNCERTAIN: not measured; PIV
		// specifies it], the stricter choice). A failed SELECT leaves
		// nothing selected (not measured either; stricter too).
		c.cur, c.ef = nil, 0
		clear(c.verified)
		for _, app := range c.apps {
			if bytes.Equal(a.data, app.aid) {
				c.cur = app
				return sw(swOK)
			}
		}
		return sw(swNotFound)
	case 0x02: // EF under the current DF, 00 A4 02 0C 02 <FID> (doc §1)
		if len(a.data) != 2 {
			return sw(swWrongLength)
		}
		fid := uint16(a.data[0])<<8 | uint16(a.data[1])
		if c.cur == nil || c.cur.files[fid] == nil {
			return sw(swNotFound)
		}
		c.ef = fid
		return sw(swOK)
	case 0x00:
		// 00 A4 00 00: 6A86 after reset, 9000 without changing the DF once
		// an AP is selected (doc §1, soltia48 card.rs).
		if c.cur == nil {
			return sw(swWrongP1P2)
		}
		return sw(swOK)
	}
	return sw(swWrongP1P2)
}

// unlocked reports whether one of needs is verified (true for none).
func (c *JPKICard) unlocked(needs []uint16) bool {
	if len(needs) == 0 {
		return true
	}
	for _, n := range needs {
		if c.verified[n] {
			return true
		}
	}
	return false
}

// readBinary is READ BINARY 00 B0 <offset> <Le> on the current EF (doc §1:
// 15-bit offset, Le ≤ 256, fewer bytes possible, end of file 6B00/6282).
func (c *JPKICard) readBinary(a apdu) []byte {
	if a.p1&0x80 != 0 {
		return sw(swWrongP1P2) // short EF identifiers are not used by these APs
	}
	if !a.hasLe || len(a.data) > 0 {
		return sw(swWrongLength)
	}
	f := c.curEF()
	if f == nil {
		return sw(swNoCurrentEF)
	}
	if f.kind != efBinary {
		return sw(swIncompatible)
	}
	if !c.unlocked(f.needs) {
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

// verify is VERIFY 00 20 00 80 [Lc <value>] on the current EF, or
// 00 20 00 (80|sfi) on EF 00sfi without selecting it (doc §2.2, §4.1).
func (c *JPKICard) verify(a apdu) []byte {
	if a.p1 != 0x00 || a.p2&0x80 == 0 {
		return sw(swWrongP1P2)
	}
	fid := c.ef
	var f *cardEF
	if sfi := a.p2 & 0x1F; sfi != 0 {
		if a.p2&0x60 != 0 || c.cur == nil {
			return sw(swWrongP1P2)
		}
		fid = uint16(sfi)
		if f = c.cur.files[fid]; f == nil || f.kind != efPIN {
			return sw(swWrongP1P2)
		}
	} else if a.p2 != 0x80 {
		return sw(swWrongP1P2)
	} else if f = c.curEF(); f == nil || f.kind != efPIN {
		return sw(swNoCurrentEF)
	}
	if len(a.data) == 0 {
		// Retry query: 63 Cx, no state change (doc §2.2). The card does
		// not report the verified state (OpenSC PR #959: 63 C3 after a
		// correct VERIFY), so neither does the simulator.
		return sw(0x63C0 | uint16(f.tries))
	}
	if f.tries == 0 {
		return sw(swBlocked) // every later attempt (doc §2.3)
	}
	if !f.isValid(string(a.data)) || string(a.data) != f.secret {
		f.tries--
		c.verified[fid] = false
		return sw(0x63C0 | uint16(f.tries)) // 63 C0 on the exhausting attempt
	}
	f.tries = f.maxTry // a correct VERIFY resets the counter (doc §2.2)
	c.verified[fid] = true
	return sw(swOK)
}

// sign is COMPUTE DIGITAL SIGNATURE: 80 2A 00 80 on the selected key EF (or
// 80 2A 00 97|9A by SFI) in the JPKI AP (doc §2.2), 80 2A 00 00 with the
// AP's default key in the 券面 APs (doc §4.5). Only P1 00 (PKCS#1 v1.5 of
// the bytes given) is modelled; the other schemes are [UNCERTAIN].
func (c *JPKICard) sign(a apdu) []byte {
	if c.cur != nil && c.cur.kenmen {
		if a.p1 != 0x00 || a.p2 != 0x00 {
			return sw(swWrongP1P2)
		}
		if len(a.data) == 0 {
			return sw(swWrongLength)
		}
		if !c.unlocked(c.cur.keyNeeds) {
			return sw(swSecurity)
		}
		return rsaSign(c.cur.key, a.data)
	}
	if a.p1 != 0x00 {
		return sw(swWrongP1P2)
	}
	var f *cardEF
	switch a.p2 {
	case 0x80:
		f = c.curEF()
	case 0x97, 0x9A: // key by SFI, no SELECT (doc §2.2)
		if c.cur == nil {
			return sw(swConditions)
		}
		f = c.cur.files[uint16(a.p2&0x1F)]
	default:
		return sw(swWrongP1P2)
	}
	if len(a.data) == 0 {
		return sw(swWrongLength)
	}
	if f == nil || f.kind != efKey {
		return sw(swConditions)
	}
	if !c.unlocked(f.needs) {
		return sw(swSecurity) // signing without VERIFY (doc §2.3)
	}
	return rsaSign(f.key, a.data)
}

// rsaSign pads data as given (PKCS#1 v1.5 type 1, doc §2.2 P1 00) and
// answers the 256-byte signature and 9000.
func rsaSign(key *rsa.PrivateKey, data []byte) []byte {
	if key == nil {
		return sw(swRefNotFound)
	}
	sig, err := rsa.SignPKCS1v15(nil, key, 0, data)
	if err != nil {
		return sw(swWrongLength) // DigestInfo too long for the key
	}
	return append(sig, 0x90, 0x00)
}

// getChallenge is GET CHALLENGE 00 84 00 00 <Le> in the 券面 APs: Le
// (1–256) random bytes (doc §4.5). The challenge is optional: the
// signature covers what the host sends, not this value.
func (c *JPKICard) getChallenge(a apdu) []byte {
	if a.p1 != 0x00 || a.p2 != 0x00 {
		return sw(swWrongP1P2)
	}
	if !a.hasLe || len(a.data) > 0 {
		return sw(swWrongLength)
	}
	out := make([]byte, a.ne, a.ne+2)
	_, _ = rand.Read(out) // crypto/rand.Read never fails (Go 1.24+)
	return append(out, 0x90, 0x00)
}
