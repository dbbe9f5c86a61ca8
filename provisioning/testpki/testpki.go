// Package testpki generates a throw-away My Number Card test world for
// tests, the simulator and demo kiosks: JPKI-like certificate hierarchies,
// a CV certificate hierarchy for the card applications, and virtual cards
// with synthetic holders, secrets and card-application files.
//
// # JPKI hierarchies
//
// Two CAs mirror the real JPKI user-authentication and digital-signature
// CAs, which issue end-entity certificates directly from self-signed roots,
// but every name says O=JPKI-TEST so that a production verifier refuses it:
//
//	auth root  C=JP, O=JPKI-TEST, OU=JPKI for user authentication,
//	           OU=Japan Agency for Local Authority Information Systems
//	sign root  C=JP, O=JPKI-TEST, OU=JPKI for digital signature,
//	           OU=Japan Agency for Local Authority Information Systems
//	           both RSA-2048, sha256WithRSAEncryption, keyUsage
//	           keyCertSign|cRLSign (critical), basicConstraints CA
//	           (critical), subjectKeyIdentifier, cRLDistributionPoints =
//	           directoryName of the root; C PrintableString, the rest
//	           UTF8String, one attribute per RDN, as the real roots
//	auth cert  per card: opaque random CN, RSA-2048, keyUsage
//	           digitalSignature (critical), authorityKeyIdentifier,
//	           cRLDistributionPoints = directoryName of the root
//	sign cert  per card: the same, keyUsage digitalSignature|nonRepudiation
//	           (critical), and a subjectAltName carrying the basic 4
//	           information (below); the subject is only an opaque CN
//	CRLs       one per root: thisUpdate now-1h, nextUpdate now+47h,
//	           cRLNumber (the generation time in Unix seconds, so it grows
//	           between runs), authorityKeyIdentifier, listing the "revoked"
//	           card's certificate of that hierarchy with reason keyCompromise
//
// The signature certificate's subjectAltName (doc §2.5) is a SEQUENCE of six
// otherName entries, [0] { OID 1.2.392.200149.8.5.5.N, [0] EXPLICIT
// UTF8String }, N = 1 氏名, 2 its substitution positions (one "0" per
// character: nothing is substituted), 3 性別 ("1"/"2"), 4 生年月日 EYYYYMMDD
// (era digit 1 明治 … 5 令和, then the Gregorian date), 5 住所, 6 its
// substitution positions.
//
// # CV hierarchy
//
// J-LIS's test CV CA keys (6000023, 6000033) have no private half here, so
// the package generates its own: CA keys "6990023/001" (card surface AP) and
// "6990033/001" (input support AP), returned as PKI.CVAnchors, and one
// municipality (code 13999) whose keys "1399921/000" (surface) and
// "1399931/000" (support) are certified by them and sign every card's AP
// records. Key IDs are 16 bytes: 7 ASCII digits ‖ 08 05 ‖ 3 ASCII digits ‖
// 00 00 00 ‖ 00. EF 0004 of both APs is exactly the 568-byte CV certificate,
// with no filler:
//
//	7F 21 82 02 33
//	  5F 4E 82 01 29  issuer ID ‖ subject ID ‖ 90 03 01 00 01 91 82 01 00 <n>
//	  5F 37 82 01 00  RSASSA-PKCS1-v1_5 SHA-256 over the 297-byte 5F4E value
//
// # Cards
//
// The card kinds are:
//
//	valid       notBefore now-1y, notAfter now+4y
//	revoked     same validity, both certificates listed in their CRLs
//	expired     notAfter now-30d (both certificates; the card itself has
//	            not expired)
//	unknown-ca  both certificates issued by impostor roots: a different key
//	            under the identical subject DN and the identical subject key
//	            identifier, so only the signature tells them apart; its AP
//	            files are genuine
//	clone       a programmable card with the valid card's four certificates
//	            copied byte for byte, but keys of its own, no card surface
//	            and no input support AP, a zero Person, and the valid card's
//	            secrets (so a test can type the "right" PIN at it)
//
// Each genuine card (all but the clone) has its own synthetic holder (see
// Person; names such as 「試験　花子」, addresses in towns of 東京都千代田区 that
// do not exist, individual numbers 9999… with a valid check digit), its own
// secrets (AuthPIN, SignPassword, SupportPIN and CollationB, 照合番号B =
// era-year birth YYMMDD ‖ expiry YYYY ‖ security code) and these AP files.
// BER-TLV lengths are short below 0x80 and 82 xx xx above, as the cards
// write them.
//
// Card surface AP (券面事項確認AP):
//
//	EF 0002  FF 20 82 LL LL
//	           DF 21 12 <9 × u16 BE>   offsets of DF22 … DF2A: each is the
//	                                   position of the element's first tag
//	                                   byte (DF), counted from the file's
//	                                   first byte (the FF of FF20) = 0
//	           DF 22 08 birth YYYYMMDD (Gregorian)
//	           DF 23 01 sex "1"/"2"
//	           DF 24 82 01 09 90 03 01 00 01 91 82 01 00 <n>  card key
//	           DF 25 name image, DF 26 address image: 1-bit PNGs
//	           DF 27 photo stand-in (a real card holds a JPEG 2000; this is
//	                 JP2 signature and ftyp boxes plus per-person bytes)
//	           DF 28 82 01 00 <sig>    RSA PKCS#1 v1.5 (no hash) over
//	                                   T = 30 71 30 0D 06 09 60 86 48 01 65 03
//	                                   04 02 01 05 00 04 60 ‖ SHA-256(TLV(DF22)
//	                                   ‖ TLV(DF23) ‖ TLV(DF24)) ‖ SHA-256(TLV(DF25)
//	                                   ‖ TLV(DF26)) ‖ SHA-256(TLV(DF27)), by the
//	                                   surface municipality key
//	           DF 29 08 expiry YYYYMMDD (not signed)
//	           DF 2A security-code image, 1-bit PNG 24×12 (not signed)
//	EF 0003  FF 30 { DF31 06 03 0E 01, DF32 key ID 6990024/001, DF33 01,
//	           DF34 "13999", DF35 key ID 6990025/001 ‖ 256 random bytes }
//	EF 0004  CV certificate issued by 6990023/001
//	CardKey  the private half of DF24 (signs challenges)
//
// Input support AP (券面事項入力補助AP):
//
//	EF 0001  FF 10 0C <12 digits> FF FF (17 bytes)
//	EF 0002  FF 20 LL { DF21 08 <4 × u16 BE offsets, as above>, DF22 name
//	           UTF-8 (family U+3000 given), DF23 address UTF-8, DF24 08 birth
//	           YYYYMMDD, DF25 01 sex }
//	EF 0003  FF 30 82 01 4B { DF31 20 SHA-256(the 17 bytes of EF 0001),
//	           DF32 20 SHA-256(the FF20 value from DF22 to its end),
//	           DF33 82 01 00 RSASSA-PKCS1-v1_5 SHA-256 over TLV(DF31) ‖
//	           TLV(DF32) by the support municipality key }
//	EF 0004  CV certificate issued by 6990033/001
//	EF 0007  FF 50 82 02 13 { DF51 82 01 09 <challenge key, as DF24>,
//	           DF52 82 01 00 RSASSA-PKCS1-v1_5 SHA-256 over TLV(DF51) by the
//	           support municipality key }
//	ChallengeKey  the private half of DF51
//
// # Directory layout
//
// WriteDir and LoadDir use this layout (0600 marks private keys, secrets
// and files holding the synthetic personal data; everything else is 0644):
//
//	anchors/jpki-test-auth.pem   PEM CERTIFICATE: the auth root (AnchorFile)
//	anchors/jpki-test-sign.pem   PEM CERTIFICATE: the sign root (SignAnchorFile)
//	crl/jpki-test-auth.crl       DER CRL of the auth root (CRLFile)
//	crl/jpki-test-sign.crl       DER CRL of the sign root (SignCRLFile)
//	cv/surface-6990023.pem       PEM PUBLIC KEY (PKIX): CV CA 6990023/001
//	cv/support-6990033.pem       PEM PUBLIC KEY (PKIX): CV CA 6990033/001
//	cards/<kind>/auth-cert.der   DER auth certificate (JPKI EF 000A)
//	cards/<kind>/auth-ca.der     DER CA certificate the card carries (EF 000B)
//	cards/<kind>/auth-key.pem    PKCS#8 auth key (EF 0017), 0600
//	cards/<kind>/sign-cert.der   DER signature certificate (EF 0001), 0600
//	cards/<kind>/sign-ca.der     DER CA certificate for it (EF 0002)
//	cards/<kind>/sign-key.pem    PKCS#8 signature key (EF 001A), 0600
//	cards/<kind>/secrets.json    {"auth_pin", "sign_password", "support_pin",
//	                             "collation_b"}, 0600
//	cards/<kind>/person.json     Person as {"name", "address", "birth_date",
//	                             "sex", "individual_number", "expiry",
//	                             "security_code"}, 0600
//	cards/<kind>/surface/        absent for the clone
//	    ef0002.bin (0600), ef0003.bin, ef0004.bin, card-key.pem (PKCS#8, 0600)
//	cards/<kind>/support/        absent for the clone
//	    ef0001.bin, ef0002.bin, ef0003.bin (0600), ef0004.bin, ef0007.bin,
//	    challenge-key.pem (PKCS#8, 0600)
//
// The CA private keys (roots, CV CAs, municipality keys) are never written:
// a directory loaded with LoadDir has nil RootKey, SignRootKey, CVCAKeys and
// APKeys.
package testpki

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// Card kinds, in the order Kinds returns them.
const (
	KindValid     = "valid"
	KindRevoked   = "revoked"
	KindExpired   = "expired"
	KindUnknownCA = "unknown-ca"
	// KindClone is a programmable card loaded with the valid card's
	// certificates (copied byte for byte) but keys of its own and neither
	// card surface nor input support AP.
	KindClone = "clone"
)

// Token is the JPKI AP token label of a plastic My Number Card (EF 0006).
const Token = "JPKIAPICCTOKEN2"

// Organization is the O= value that marks every name in the test hierarchy.
const Organization = "JPKI-TEST"

// Kinds returns the card kinds: "valid", "revoked", "expired", "unknown-ca",
// "clone".
func Kinds() []string {
	return []string{KindValid, KindRevoked, KindExpired, KindUnknownCA, KindClone}
}

// Card is one virtual My Number Card: its JPKI AP material, its secrets,
// the person it belongs to and the files of its card surface and input
// support APs.
type Card struct {
	Kind   string
	Token  string          // JPKI AP token label, "JPKIAPICCTOKEN2"
	Cert   []byte          // DER user-authentication certificate (EF 000A)
	CACert []byte          // DER CA certificate the card carries (EF 000B)
	Key    *rsa.PrivateKey // the card's auth key, EF 0017 (never leaves a real card)

	SignCert   []byte          // DER signature certificate with the basic 4 information in its SAN (EF 0001)
	SignCACert []byte          // DER CA certificate the card carries for it (EF 0002)
	SignKey    *rsa.PrivateKey // the card's signature key, EF 001A

	// The card's secrets, test values (never log them outside tests).
	AuthPIN      string // 4 digits, JPKI EF 0018
	SignPassword string // 6–16 of A–Z 0–9, letters and digits mixed, JPKI EF 001B
	SupportPIN   string // 4 digits, input support AP EF 0011
	CollationB   string // 14 digits: era-year birth YYMMDD ‖ expiry YYYY ‖ security code

	// Person is what is printed on and stored in the card, so that tests can
	// assert that none of it leaks. Zero for the clone.
	Person Person

	Surface *SurfaceFiles // nil: no card surface AP (clone)
	Support *SupportFiles // nil: no input support AP (clone)
}

// Person is the synthetic holder of a card. Every value is clearly fake.
type Person struct {
	Name             string // 氏名, family name U+3000 given name
	Address          string // 住所
	BirthDate        string // YYYYMMDD, Gregorian
	Sex              string // "1" male or "2" female: the same digit in the SAN, surface DF23 and support DF25
	IndividualNumber string // 12 digits with a valid check digit (test value)
	Expiry           string // card expiry YYYYMMDD (card surface DF29)
	SecurityCode     string // 4 digits printed on the face (last 4 of CollationB)
}

// SurfaceFiles are the card surface AP (券面事項確認AP) files of a card.
type SurfaceFiles struct {
	CVCert  []byte          // EF 0004: CV certificate of the municipality key, issued by "6990023/001"
	Face    []byte          // EF 0002: FF20 card-face record
	Info    []byte          // EF 0003: FF30, unsigned
	CardKey *rsa.PrivateKey // the private half of DF24 (signs challenges)
}

// SupportFiles are the input support AP (券面事項入力補助AP) files of a card.
type SupportFiles struct {
	CVCert             []byte          // EF 0004: CV certificate of the municipality key, issued by "6990033/001"
	Number             []byte          // EF 0001: FF 10 0C <12 digits> FF FF (17 bytes)
	Basic4             []byte          // EF 0002: FF20 basic 4 information
	Integrity          []byte          // EF 0003: FF30 integrity record
	ChallengeKeyRecord []byte          // EF 0007: FF50 {DF51 key, DF52 signature}
	ChallengeKey       *rsa.PrivateKey // the private half of DF51 (signs challenges)
}

// CVAnchor is the public key of a generated CV certificate authority: the
// trust anchor for the EF 0004 certificates of one card application.
type CVAnchor struct {
	Purpose  string   // PurposeSurface | PurposeSupport
	ID       [16]byte // key ID: 7 ASCII digits ‖ 08 05 ‖ 3 ASCII digits ‖ 00 00 00 ‖ 00
	IDString string   // "6990023/001"
	Key      *rsa.PublicKey
}

// CV anchor purposes.
const (
	PurposeSurface = "surface" // card surface AP EF 0004 issuer
	PurposeSupport = "support" // input support AP EF 0004 issuer
)

// PKI is a generated test hierarchy.
type PKI struct {
	Root    []byte          // DER trust anchor: the test user-authentication root
	RootKey *rsa.PrivateKey // nil after LoadDir: the root key is never written
	CRL     []byte          // DER CRL signed by Root, listing the revoked card

	SignRoot    []byte          // DER trust anchor: the test digital-signature root
	SignRootKey *rsa.PrivateKey // nil after LoadDir
	SignCRL     []byte          // DER CRL signed by SignRoot, listing the revoked card's signature certificate

	CVAnchors []CVAnchor // surface first, then support
	// CVCAKeys are the CV CA private keys by purpose; nil after LoadDir.
	CVCAKeys map[string]*rsa.PrivateKey
	// APKeys are the municipality keys by purpose: the subjects of the
	// cards' EF 0004 CV certificates, which sign the AP records. Nil after
	// LoadDir (the cards' EF 0004 files carry their public halves).
	APKeys map[string]*rsa.PrivateKey

	Cards map[string]Card // by kind
}

// Validity offsets relative to the generation time.
const (
	day           = 24 * time.Hour
	year          = 365 * day
	rootNotBefore = -6 * year // before the oldest card (expired: now-5y-30d)
	rootNotAfter  = 10 * year
	cardNotBefore = -1 * year
	cardNotAfter  = 4 * year
	expiredAfter  = -30 * day
	expiredLife   = 5 * year // real cards expire at the 5th birthday after issue
	crlThisUpdate = -1 * time.Hour
	crlNextUpdate = 47 * time.Hour
	rsaBits       = 2048
)

// Indexes into the keys Generate creates in one parallel batch.
const (
	keyAuthRoot = iota
	keyAuthImpostor
	keySignRoot
	keySignImpostor
	keyCVSurfaceCA
	keyCVSupportCA
	keyMuniSurface
	keyMuniSupport
	keysShared
	// then per genuine card: auth, sign, card key (surface DF24), challenge key (support DF51)
	keysPerCard = 4
	// and the clone's auth and sign keys
	keysClone      = 2
	keysToGenerate = keysShared + 4*keysPerCard + keysClone
)

// Generate creates a fresh hierarchy whose validity periods are relative to
// now. It generates its 26 RSA-2048 keys in parallel.
func Generate(now time.Time) (*PKI, error) {
	now = now.UTC().Truncate(time.Second)
	keys, err := generateKeys(keysToGenerate)
	if err != nil {
		return nil, err
	}
	p := &PKI{
		RootKey:     keys[keyAuthRoot],
		SignRootKey: keys[keySignRoot],
		CVCAKeys: map[string]*rsa.PrivateKey{
			PurposeSurface: keys[keyCVSurfaceCA],
			PurposeSupport: keys[keyCVSupportCA],
		},
		APKeys: map[string]*rsa.PrivateKey{
			PurposeSurface: keys[keyMuniSurface],
			PurposeSupport: keys[keyMuniSupport],
		},
		Cards: make(map[string]Card),
	}

	auth, err := newHierarchy(authRootOU, keys[keyAuthRoot], keys[keyAuthImpostor], now)
	if err != nil {
		return nil, err
	}
	sign, err := newHierarchy(signRootOU, keys[keySignRoot], keys[keySignImpostor], now)
	if err != nil {
		return nil, err
	}
	p.Root, p.SignRoot = auth.rootDER, sign.rootDER

	cv, err := newCVHierarchy(keys[keyCVSurfaceCA], keys[keyCVSupportCA], keys[keyMuniSurface], keys[keyMuniSupport])
	if err != nil {
		return nil, err
	}
	p.CVAnchors = cv.anchors

	var revokedAuth, revokedSign *big.Int
	for i, kind := range []string{KindValid, KindRevoked, KindExpired, KindUnknownCA} {
		k := keys[keysShared+i*keysPerCard:]
		authKey, signKey, cardKey, challengeKey := k[0], k[1], k[2], k[3]
		notBefore, notAfter := now.Add(cardNotBefore), now.Add(cardNotAfter)
		a, s := auth.genuine, sign.genuine
		switch kind {
		case KindExpired:
			notAfter = now.Add(expiredAfter)
			notBefore = notAfter.Add(-expiredLife)
		case KindUnknownCA:
			a, s = auth.impostor, sign.impostor
		}
		prof := profiles[kind]
		person := prof.person(now)
		c := Card{
			Kind: kind, Token: Token,
			CACert: a.der, Key: authKey,
			SignCACert: s.der, SignKey: signKey,
			AuthPIN: prof.authPIN, SignPassword: prof.signPassword, SupportPIN: prof.supportPIN,
			Person: person,
		}
		if c.CollationB, err = CollationNumberB(person.BirthDate, person.Expiry, person.SecurityCode); err != nil {
			return nil, fmt.Errorf("testpki: card %q: %w", kind, err)
		}
		var authSerial, signSerial *big.Int
		if c.Cert, authSerial, err = issueCard(a.cert, a.key, authKey, notBefore, notAfter, nil); err != nil {
			return nil, fmt.Errorf("testpki: card %q: %w", kind, err)
		}
		san, err := signSAN(person)
		if err != nil {
			return nil, fmt.Errorf("testpki: card %q: %w", kind, err)
		}
		if c.SignCert, signSerial, err = issueCard(s.cert, s.key, signKey, notBefore, notAfter, &san); err != nil {
			return nil, fmt.Errorf("testpki: card %q: signature certificate: %w", kind, err)
		}
		if kind == KindRevoked {
			revokedAuth, revokedSign = authSerial, signSerial
		}
		if c.Surface, err = cv.surfaceFiles(person, cardKey); err != nil {
			return nil, fmt.Errorf("testpki: card %q: %w", kind, err)
		}
		if c.Support, err = cv.supportFiles(person, challengeKey); err != nil {
			return nil, fmt.Errorf("testpki: card %q: %w", kind, err)
		}
		p.Cards[kind] = c
	}

	// The clone: the valid card's certificates, byte for byte, on a
	// programmable card with keys of its own and no card applications.
	valid := p.Cards[KindValid]
	p.Cards[KindClone] = Card{
		Kind: KindClone, Token: Token,
		Cert: valid.Cert, CACert: valid.CACert, Key: keys[keysToGenerate-2],
		SignCert: valid.SignCert, SignCACert: valid.SignCACert, SignKey: keys[keysToGenerate-1],
		AuthPIN: valid.AuthPIN, SignPassword: valid.SignPassword,
		SupportPIN: valid.SupportPIN, CollationB: valid.CollationB,
	}

	if p.CRL, err = revocationList(auth.genuine, revokedAuth, now); err != nil {
		return nil, err
	}
	if p.SignCRL, err = revocationList(sign.genuine, revokedSign, now); err != nil {
		return nil, err
	}
	return p, nil
}

// Shared returns one hierarchy per process, generated at the first call
// (relative to the time of that call), for tests that do not need a fresh
// one. It is shared: treat it as read-only and copy what you change.
func Shared() (*PKI, error) {
	sharedOnce.Do(func() { sharedPKI, sharedErr = Generate(time.Now()) })
	return sharedPKI, sharedErr
}

var (
	sharedOnce sync.Once
	sharedPKI  *PKI
	sharedErr  error
)

// issuer is a CA certificate with its key.
type issuer struct {
	cert *x509.Certificate
	der  []byte
	key  *rsa.PrivateKey
}

// hierarchy is one JPKI CA (user authentication or digital signature) and
// its impostor.
type hierarchy struct {
	rootDER           []byte
	genuine, impostor issuer
}

// The OU that names each CA.
const (
	authRootOU = "JPKI for user authentication"
	signRootOU = "JPKI for digital signature"
)

func newHierarchy(ou string, rootKey, impostorKey *rsa.PrivateKey, now time.Time) (*hierarchy, error) {
	subject, err := rootSubject(ou)
	if err != nil {
		return nil, err
	}
	root, rootDER, err := selfSigned(subject, nil, rootKey, now)
	if err != nil {
		return nil, err
	}
	// The impostor copies the genuine root's name and key identifier: a
	// verifier may only tell them apart by the signature.
	impostor, impostorDER, err := selfSigned(subject, root.SubjectKeyId, impostorKey, now)
	if err != nil {
		return nil, err
	}
	return &hierarchy{
		rootDER:  rootDER,
		genuine:  issuer{root, rootDER, rootKey},
		impostor: issuer{impostor, impostorDER, impostorKey},
	}, nil
}

func revocationList(ca issuer, revoked *big.Int, now time.Time) ([]byte, error) {
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:     big.NewInt(now.Unix()),
		ThisUpdate: now.Add(crlThisUpdate),
		NextUpdate: now.Add(crlNextUpdate),
		RevokedCertificateEntries: []x509.RevocationListEntry{{
			SerialNumber:   revoked,
			RevocationTime: now.Add(-day),
			ReasonCode:     1, // keyCompromise (RFC 5280 §5.3.1)
		}},
	}, ca.cert, ca.key)
	if err != nil {
		return nil, fmt.Errorf("testpki: CRL: %w", err)
	}
	return crl, nil
}

func generateKeys(n int) ([]*rsa.PrivateKey, error) {
	keys := make([]*rsa.PrivateKey, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() { keys[i], errs[i] = rsa.GenerateKey(rand.Reader, rsaBits) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("testpki: key generation: %w", err)
	}
	return keys, nil
}

// rootSubject encodes the test root's DN the way the real root encodes
// its own: one attribute per RDN, C as PrintableString, the rest UTF8String.
func rootSubject(ou string) ([]byte, error) {
	attr := func(oid asn1.ObjectIdentifier, tag int, s string) []pkix.AttributeTypeAndValue {
		return []pkix.AttributeTypeAndValue{{Type: oid, Value: asn1.RawValue{Tag: tag, Bytes: []byte(s)}}}
	}
	var (
		oidC  = asn1.ObjectIdentifier{2, 5, 4, 6}
		oidO  = asn1.ObjectIdentifier{2, 5, 4, 10}
		oidOU = asn1.ObjectIdentifier{2, 5, 4, 11}
	)
	der, err := asn1.Marshal(pkix.RDNSequence{
		attr(oidC, asn1.TagPrintableString, "JP"),
		attr(oidO, asn1.TagUTF8String, Organization),
		attr(oidOU, asn1.TagUTF8String, ou),
		attr(oidOU, asn1.TagUTF8String, "Japan Agency for Local Authority Information Systems"),
	})
	if err != nil {
		return nil, fmt.Errorf("testpki: root name: %w", err)
	}
	return der, nil
}

// crlDistributionPoints encodes a cRLDistributionPoints extension whose only
// distribution point is the directoryName dn, as the real JPKI certificates
// carry.
func crlDistributionPoints(dn []byte) (pkix.Extension, error) {
	// DistributionPoint { distributionPoint [0] { fullName [0] { directoryName [4] Name } } }
	dirName := asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: dn}
	fullName, err := asn1.Marshal(dirName)
	if err != nil {
		return pkix.Extension{}, err
	}
	fullName, err = asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: fullName})
	if err != nil {
		return pkix.Extension{}, err
	}
	dpName, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: fullName})
	if err != nil {
		return pkix.Extension{}, err
	}
	dp, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: dpName})
	if err != nil {
		return pkix.Extension{}, err
	}
	value, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: dp})
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 31}, Value: value}, nil
}

func selfSigned(subject, ski []byte, key *rsa.PrivateKey, now time.Time) (*x509.Certificate, []byte, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	cdp, err := crlDistributionPoints(subject)
	if err != nil {
		return nil, nil, fmt.Errorf("testpki: root: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		RawSubject:            subject,
		NotBefore:             now.Add(rootNotBefore),
		NotAfter:              now.Add(rootNotAfter),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          ski, // nil: computed from the key
		SignatureAlgorithm:    x509.SHA256WithRSA,
		ExtraExtensions:       []pkix.Extension{cdp},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("testpki: root: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("testpki: root: %w", err)
	}
	return cert, der, nil
}

// issueCard issues an end-entity certificate: a user-authentication
// certificate when san is nil, else a signature certificate carrying san.
func issueCard(issuer *x509.Certificate, issuerKey crypto.Signer, key *rsa.PrivateKey, notBefore, notAfter time.Time, san *pkix.Extension) ([]byte, *big.Int, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	cn := make([]byte, 16)
	if _, err := rand.Read(cn); err != nil {
		return nil, nil, err
	}
	cdp, err := crlDistributionPoints(issuer.RawSubject)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:       serial,
		Subject:            pkix.Name{CommonName: hex.EncodeToString(cn)},
		NotBefore:          notBefore,
		NotAfter:           notAfter,
		KeyUsage:           x509.KeyUsageDigitalSignature, // always marked critical
		SignatureAlgorithm: x509.SHA256WithRSA,
		ExtraExtensions:    []pkix.Extension{cdp},
		// AuthorityKeyId comes from issuer.SubjectKeyId.
	}
	if san != nil {
		tmpl.KeyUsage |= x509.KeyUsageContentCommitment // nonRepudiation
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, *san)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), issuerKey)
	if err != nil {
		return nil, nil, err
	}
	return der, serial, nil
}

// randomSerial returns a positive serial of at most 16 octets of entropy (17
// DER octets with the sign byte, within RFC 5280's 20).
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("testpki: serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}
