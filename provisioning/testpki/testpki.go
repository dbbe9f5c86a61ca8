// Package testpki generates a throw-away JPKI-like certificate hierarchy for
// tests, the simulator and demo kiosks.
//
// The hierarchy mirrors the real JPKI user-authentication CA, which issues
// end-entity certificates directly from a self-signed root, but every name
// says O=JPKI-TEST so that a production verifier refuses it:
//
//	root     C=JP, O=JPKI-TEST, OU=JPKI for user authentication,
//	         OU=Japan Agency for Local Authority Information Systems
//	         RSA-2048, sha256WithRSAEncryption, keyUsage keyCertSign|cRLSign
//	         (critical), basicConstraints CA (critical), subjectKeyIdentifier
//	cards    one per kind (see Kinds): opaque random CN, RSA-2048,
//	         keyUsage digitalSignature (critical), authorityKeyIdentifier,
//	         cRLDistributionPoints = directoryName of the root (as on real cards)
//	CRL      signed by the root: thisUpdate now-1h, nextUpdate now+47h,
//	         cRLNumber (the generation time in Unix seconds, so it grows
//	         between runs), authorityKeyIdentifier, lists the "revoked" card
//	         with reason keyCompromise
//
// The card kinds are:
//
//	valid       notBefore now-1y, notAfter now+4y
//	revoked     same validity, serial listed in the CRL
//	expired     notAfter now-30d
//	unknown-ca  issued by an impostor root: a different key under the
//	            identical subject DN and the identical subject key
//	            identifier, so only the signature tells it apart
//
// WriteDir and LoadDir use this layout:
//
//	anchors/jpki-test-auth.pem   PEM trust anchor (the test root)
//	crl/jpki-test-auth.crl       DER CRL signed by the root
//	cards/<kind>.cert.der        DER user-authentication certificate (card EF 000A)
//	cards/<kind>.ca.der          DER CA certificate the card carries (EF 000B)
//	cards/<kind>.key.pem         PKCS#8 card key, test only (0600)
//
// The root's private key is never written: a directory loaded with LoadDir
// has a nil RootKey.
package testpki

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Card kinds, in the order Kinds returns them.
const (
	KindValid     = "valid"
	KindRevoked   = "revoked"
	KindExpired   = "expired"
	KindUnknownCA = "unknown-ca"
)

// Token is the JPKI AP token label of a plastic My Number Card (EF 0006).
const Token = "JPKIAPICCTOKEN2"

// Organization is the O= value that marks every name in the test hierarchy.
const Organization = "JPKI-TEST"

// Paths of the files WriteDir writes, relative to the directory.
const (
	AnchorFile = "anchors/jpki-test-auth.pem"
	CRLFile    = "crl/jpki-test-auth.crl"
	cardsDir   = "cards"
)

// ErrLoad is returned by LoadDir for a missing or inconsistent file.
var ErrLoad = errors.New("testpki: cannot load test PKI")

// Kinds returns the card kinds: "valid", "revoked", "expired", "unknown-ca".
func Kinds() []string {
	return []string{KindValid, KindRevoked, KindExpired, KindUnknownCA}
}

// Card is one virtual My Number Card's JPKI user-authentication material.
type Card struct {
	Kind   string
	Token  string          // JPKI AP token label, "JPKIAPICCTOKEN2"
	Cert   []byte          // DER user-authentication certificate (EF 000A)
	CACert []byte          // DER CA certificate the card carries (EF 000B)
	Key    *rsa.PrivateKey // the card's auth key (never leaves a real card)
}

// PKI is a generated test hierarchy.
type PKI struct {
	Root    []byte          // DER trust anchor: the test user-authentication root
	RootKey *rsa.PrivateKey // nil after LoadDir: the root key is never written
	CRL     []byte          // DER CRL signed by Root, listing the revoked card
	Cards   map[string]Card // by kind
}

// Validity offsets relative to the generation time.
const (
	day            = 24 * time.Hour
	year           = 365 * day
	rootNotBefore  = -6 * year // before the oldest card (expired: now-5y-30d)
	rootNotAfter   = 10 * year
	cardNotBefore  = -1 * year
	cardNotAfter   = 4 * year
	expiredAfter   = -30 * day
	expiredLife    = 5 * year // real cards expire at the 5th birthday after issue
	crlThisUpdate  = -1 * time.Hour
	crlNextUpdate  = 47 * time.Hour
	rsaBits        = 2048
	keysToGenerate = 6 // root, impostor root, one per card kind
)

// Generate creates a fresh hierarchy whose validity periods are relative to
// now. It generates six RSA-2048 keys in parallel.
func Generate(now time.Time) (*PKI, error) {
	now = now.UTC().Truncate(time.Second)
	keys, err := generateKeys(keysToGenerate)
	if err != nil {
		return nil, err
	}
	rootKey, impostorKey, cardKeys := keys[0], keys[1], keys[2:]

	subject, err := rootSubject()
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

	p := &PKI{Root: rootDER, RootKey: rootKey, Cards: make(map[string]Card)}
	var revoked *big.Int
	for i, kind := range Kinds() {
		notBefore, notAfter := now.Add(cardNotBefore), now.Add(cardNotAfter)
		issuer, issuerDER, issuerKey := root, rootDER, rootKey
		switch kind {
		case KindExpired:
			notAfter = now.Add(expiredAfter)
			notBefore = notAfter.Add(-expiredLife)
		case KindUnknownCA:
			issuer, issuerDER, issuerKey = impostor, impostorDER, impostorKey
		}
		certDER, serial, err := issueCard(issuer, issuerKey, cardKeys[i], notBefore, notAfter)
		if err != nil {
			return nil, fmt.Errorf("testpki: card %q: %w", kind, err)
		}
		if kind == KindRevoked {
			revoked = serial
		}
		p.Cards[kind] = Card{Kind: kind, Token: Token, Cert: certDER, CACert: issuerDER, Key: cardKeys[i]}
	}

	p.CRL, err = x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:     big.NewInt(now.Unix()),
		ThisUpdate: now.Add(crlThisUpdate),
		NextUpdate: now.Add(crlNextUpdate),
		RevokedCertificateEntries: []x509.RevocationListEntry{{
			SerialNumber:   revoked,
			RevocationTime: now.Add(-day),
			ReasonCode:     1, // keyCompromise (RFC 5280 §5.3.1)
		}},
	}, root, rootKey)
	if err != nil {
		return nil, fmt.Errorf("testpki: CRL: %w", err)
	}
	return p, nil
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
func rootSubject() ([]byte, error) {
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
		attr(oidOU, asn1.TagUTF8String, "JPKI for user authentication"),
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

func issueCard(issuer *x509.Certificate, issuerKey crypto.Signer, key *rsa.PrivateKey, notBefore, notAfter time.Time) ([]byte, *big.Int, error) {
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

// WriteDir writes the hierarchy into dir using the layout in the package
// documentation. Each file is written atomically (temporary file, fsync,
// rename, directory fsync). Keys are written 0600, everything else 0644.
func (p *PKI) WriteDir(dir string) error {
	type file struct {
		name string
		data []byte
		mode os.FileMode
	}
	files := []file{
		{AnchorFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Root}), 0o644},
		{CRLFile, p.CRL, 0o644},
	}
	for _, kind := range Kinds() {
		c, ok := p.Cards[kind]
		if !ok {
			return fmt.Errorf("testpki: write %s: no %q card", dir, kind)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(c.Key)
		if err != nil {
			return fmt.Errorf("testpki: write %s: %q key: %w", dir, kind, err)
		}
		files = append(files,
			file{cardPath(kind, "cert.der"), c.Cert, 0o644},
			file{cardPath(kind, "ca.der"), c.CACert, 0o644},
			file{cardPath(kind, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
		)
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("testpki: write %s: %w", dir, err)
		}
	}
	return nil
}

func cardPath(kind, suffix string) string {
	return filepath.Join(cardsDir, kind+"."+suffix)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// LoadDir reads a hierarchy written by WriteDir. It checks that each card
// key matches its certificate; RootKey is nil.
func LoadDir(dir string) (*PKI, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrLoad, err)
		}
		return b, nil
	}
	readPEM := func(name, typ string) ([]byte, error) {
		b, err := read(name)
		if err != nil {
			return nil, err
		}
		block, _ := pem.Decode(b)
		if block == nil || block.Type != typ {
			return nil, fmt.Errorf("%w: %s: no %s PEM block", ErrLoad, name, typ)
		}
		return block.Bytes, nil
	}

	p := &PKI{Cards: make(map[string]Card)}
	var err error
	if p.Root, err = readPEM(AnchorFile, "CERTIFICATE"); err != nil {
		return nil, err
	}
	if p.CRL, err = read(CRLFile); err != nil {
		return nil, err
	}
	for _, kind := range Kinds() {
		c := Card{Kind: kind, Token: Token}
		if c.Cert, err = read(cardPath(kind, "cert.der")); err != nil {
			return nil, err
		}
		if c.CACert, err = read(cardPath(kind, "ca.der")); err != nil {
			return nil, err
		}
		keyDER, err := readPEM(cardPath(kind, "key.pem"), "PRIVATE KEY")
		if err != nil {
			return nil, err
		}
		key, err := x509.ParsePKCS8PrivateKey(keyDER)
		if err != nil {
			return nil, fmt.Errorf("%w: %s key: %w", ErrLoad, kind, err)
		}
		var ok bool
		if c.Key, ok = key.(*rsa.PrivateKey); !ok {
			return nil, fmt.Errorf("%w: %s key is %T, want RSA", ErrLoad, kind, key)
		}
		cert, err := x509.ParseCertificate(c.Cert)
		if err != nil {
			return nil, fmt.Errorf("%w: %s certificate: %w", ErrLoad, kind, err)
		}
		if !c.Key.PublicKey.Equal(cert.PublicKey) {
			return nil, fmt.Errorf("%w: %s key does not match its certificate", ErrLoad, kind)
		}
		p.Cards[kind] = c
	}
	return p, nil
}
