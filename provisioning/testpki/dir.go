package testpki

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/kazashi/kazashi/firmware/atomicfile"
)

// Paths of the shared files WriteDir writes, relative to the directory.
const (
	AnchorFile     = "anchors/jpki-test-auth.pem" // user-authentication root, PEM CERTIFICATE
	CRLFile        = "crl/jpki-test-auth.crl"     // DER CRL of the user-authentication root
	SignAnchorFile = "anchors/jpki-test-sign.pem" // digital-signature root, PEM CERTIFICATE
	SignCRLFile    = "crl/jpki-test-sign.crl"     // DER CRL of the digital-signature root
	CVSurfaceFile  = "cv/surface-6990023.pem"     // CV CA 6990023/001, PEM PUBLIC KEY (PKIX)
	CVSupportFile  = "cv/support-6990033.pem"     // CV CA 6990033/001, PEM PUBLIC KEY (PKIX)
	cardsDir       = "cards"
)

// Names of a card's files inside cards/<kind>/ (see CardFile).
const (
	CardAuthCert     = "auth-cert.der"             // EF 000A
	CardAuthCA       = "auth-ca.der"               // EF 000B
	CardAuthKey      = "auth-key.pem"              // EF 0017, PKCS#8 (0600)
	CardSignCert     = "sign-cert.der"             // EF 0001, basic 4 in the SAN (0600)
	CardSignCA       = "sign-ca.der"               // EF 0002
	CardSignKey      = "sign-key.pem"              // EF 001A, PKCS#8 (0600)
	CardSecrets      = "secrets.json"              // PINs, password, collation number B (0600)
	CardPerson       = "person.json"               // the synthetic holder (0600)
	SurfaceFace      = "surface/ef0002.bin"        // card-face record (0600)
	SurfaceInfo      = "surface/ef0003.bin"        //
	SurfaceCVCert    = "surface/ef0004.bin"        //
	SurfaceCardKey   = "surface/card-key.pem"      // DF24's private half, PKCS#8 (0600)
	SupportNumber    = "support/ef0001.bin"        // individual number (0600)
	SupportBasic4    = "support/ef0002.bin"        // basic 4 information (0600)
	SupportIntegrity = "support/ef0003.bin"        // integrity record (0600)
	SupportCVCert    = "support/ef0004.bin"        //
	SupportChallenge = "support/ef0007.bin"        // FF50 challenge key record
	SupportKey       = "support/challenge-key.pem" // DF51's private half, PKCS#8 (0600)
)

// CardFile returns the path of one of a card's files relative to the
// directory, e.g. CardFile("valid", SurfaceFace).
func CardFile(kind, name string) string {
	return filepath.Join(cardsDir, kind, filepath.FromSlash(name))
}

// ErrLoad is returned by LoadDir for a missing or inconsistent file.
var ErrLoad = errors.New("testpki: cannot load test PKI")

// secretsJSON is the on-disk form of a card's secrets.
type secretsJSON struct {
	AuthPIN      string `json:"auth_pin"`
	SignPassword string `json:"sign_password"`
	SupportPIN   string `json:"support_pin"`
	CollationB   string `json:"collation_b"`
}

// personJSON is the on-disk form of Person.
type personJSON struct {
	Name             string `json:"name"`
	Address          string `json:"address"`
	BirthDate        string `json:"birth_date"`
	Sex              string `json:"sex"`
	IndividualNumber string `json:"individual_number"`
	Expiry           string `json:"expiry"`
	SecurityCode     string `json:"security_code"`
}

type file struct {
	name string
	data []byte
	mode os.FileMode
}

const (
	public  os.FileMode = 0o644
	private os.FileMode = 0o600
)

// WriteDir writes the hierarchy into dir using the layout in the package
// documentation. Each file is written atomically (temporary file, fsync,
// rename, directory fsync). Private keys, secrets and files holding the
// (synthetic) personal data are written 0600, everything else 0644.
func (p *PKI) WriteDir(dir string) error {
	files, err := p.files()
	if err != nil {
		return fmt.Errorf("testpki: write %s: %w", dir, err)
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("testpki: write %s: %w", dir, err)
		}
	}
	return nil
}

func (p *PKI) files() ([]file, error) {
	files := []file{
		{AnchorFile, pemCert(p.Root), public},
		{CRLFile, p.CRL, public},
		{SignAnchorFile, pemCert(p.SignRoot), public},
		{SignCRLFile, p.SignCRL, public},
	}
	for _, purpose := range []string{PurposeSurface, PurposeSupport} {
		a, ok := p.anchor(purpose)
		if !ok {
			return nil, fmt.Errorf("no %s CV anchor", purpose)
		}
		der, err := x509.MarshalPKIXPublicKey(a.Key)
		if err != nil {
			return nil, fmt.Errorf("%s CV anchor: %w", purpose, err)
		}
		files = append(files, file{CVAnchorFile(a), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), public})
	}
	for _, kind := range Kinds() {
		c, ok := p.Cards[kind]
		if !ok {
			return nil, fmt.Errorf("no %q card", kind)
		}
		add := func(name string, data []byte, mode os.FileMode) {
			files = append(files, file{CardFile(kind, name), data, mode})
		}
		addKey := func(name string, k *rsa.PrivateKey) error {
			der, err := x509.MarshalPKCS8PrivateKey(k)
			if err != nil {
				return fmt.Errorf("%q %s: %w", kind, name, err)
			}
			add(name, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), private)
			return nil
		}
		add(CardAuthCert, c.Cert, public)
		add(CardAuthCA, c.CACert, public)
		if err := addKey(CardAuthKey, c.Key); err != nil {
			return nil, err
		}
		add(CardSignCert, c.SignCert, private)
		add(CardSignCA, c.SignCACert, public)
		if err := addKey(CardSignKey, c.SignKey); err != nil {
			return nil, err
		}
		secrets, err := json.MarshalIndent(secretsJSON{
			AuthPIN: c.AuthPIN, SignPassword: c.SignPassword, SupportPIN: c.SupportPIN, CollationB: c.CollationB,
		}, "", "  ")
		if err != nil {
			return nil, err
		}
		add(CardSecrets, append(secrets, '\n'), private)
		person, err := json.MarshalIndent(personJSON(c.Person), "", "  ")
		if err != nil {
			return nil, err
		}
		add(CardPerson, append(person, '\n'), private)
		if s := c.Surface; s != nil {
			add(SurfaceFace, s.Face, private)
			add(SurfaceInfo, s.Info, public)
			add(SurfaceCVCert, s.CVCert, public)
			if err := addKey(SurfaceCardKey, s.CardKey); err != nil {
				return nil, err
			}
		}
		if s := c.Support; s != nil {
			add(SupportNumber, s.Number, private)
			add(SupportBasic4, s.Basic4, private)
			add(SupportIntegrity, s.Integrity, private)
			add(SupportCVCert, s.CVCert, public)
			add(SupportChallenge, s.ChallengeKeyRecord, public)
			if err := addKey(SupportKey, s.ChallengeKey); err != nil {
				return nil, err
			}
		}
	}
	return files, nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// CVAnchorFile returns the path, relative to the directory, of a CV
// anchor's PEM PUBLIC KEY file: cv/<purpose>-<first 7 digits of the ID>.pem
// (CVSurfaceFile, CVSupportFile for the generated anchors).
func CVAnchorFile(a CVAnchor) string {
	id := a.IDString
	if i := strings.IndexByte(id, '/'); i >= 0 {
		id = id[:i]
	}
	return path.Join("cv", a.Purpose+"-"+id+".pem")
}

func cvFile(purpose string) string {
	if purpose == PurposeSurface {
		return CVSurfaceFile
	}
	return CVSupportFile
}

func (p *PKI) anchor(purpose string) (CVAnchor, bool) {
	for _, a := range p.CVAnchors {
		if a.Purpose == purpose {
			return a, true
		}
	}
	return CVAnchor{}, false
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, data, mode)
}

// loader reads files below one directory; the first error sticks.
type loader struct {
	dir string
	err error
}

func (l *loader) fail(format string, args ...any) {
	if l.err == nil {
		l.err = fmt.Errorf("%w: "+format, append([]any{ErrLoad}, args...)...)
	}
}

func (l *loader) read(name string) []byte {
	if l.err != nil {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(l.dir, name))
	if err != nil {
		l.fail("%w", err)
	}
	return b
}

func (l *loader) pem(name, typ string) []byte {
	b := l.read(name)
	if l.err != nil {
		return nil
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != typ {
		l.fail("%s: no %s PEM block", name, typ)
		return nil
	}
	return block.Bytes
}

func (l *loader) key(name string) *rsa.PrivateKey {
	der := l.pem(name, "PRIVATE KEY")
	if l.err != nil {
		return nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		l.fail("%s: %w", name, err)
		return nil
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		l.fail("%s: %T, want RSA", name, k)
	}
	return rk
}

func (l *loader) json(name string, v any) {
	b := l.read(name)
	if l.err != nil {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// The error is about the JSON syntax; it may quote content, which is
		// synthetic, but keep it out of the message anyway.
		l.fail("%s: not the expected JSON", name)
	}
}

// exists reports whether the directory name exists below l.dir.
func (l *loader) exists(name string) bool {
	if l.err != nil {
		return false
	}
	_, err := os.Stat(filepath.Join(l.dir, name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		l.fail("%w", err)
	}
	return err == nil
}

// LoadDir reads a hierarchy written by WriteDir. It checks that each card
// key matches its certificate (except the clone's, which by design do not),
// that the clone carries the valid card's certificates and that the AP
// private keys match the public keys in DF24 and DF51. RootKey,
// SignRootKey, CVCAKeys and APKeys are nil.
func LoadDir(dir string) (*PKI, error) {
	l := &loader{dir: dir}
	p := &PKI{Cards: make(map[string]Card)}
	p.Root = l.pem(AnchorFile, "CERTIFICATE")
	p.CRL = l.read(CRLFile)
	p.SignRoot = l.pem(SignAnchorFile, "CERTIFICATE")
	p.SignCRL = l.read(SignCRLFile)
	for _, a := range []struct{ purpose, id string }{{PurposeSurface, CVSurfaceCAID}, {PurposeSupport, CVSupportCAID}} {
		der := l.pem(cvFile(a.purpose), "PUBLIC KEY")
		if l.err != nil {
			return nil, l.err
		}
		k, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrLoad, cvFile(a.purpose), err)
		}
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%w: %s: %T, want RSA", ErrLoad, cvFile(a.purpose), k)
		}
		p.CVAnchors = append(p.CVAnchors, CVAnchor{Purpose: a.purpose, ID: mustKeyID(a.id), IDString: a.id, Key: rk})
	}
	for _, kind := range Kinds() {
		c := l.card(kind)
		if l.err != nil {
			return nil, l.err
		}
		p.Cards[kind] = c
	}
	valid, clone := p.Cards[KindValid], p.Cards[KindClone]
	if !bytes.Equal(valid.Cert, clone.Cert) || !bytes.Equal(valid.SignCert, clone.SignCert) {
		return nil, fmt.Errorf("%w: the clone does not carry the valid card's certificates", ErrLoad)
	}
	return p, nil
}

func (l *loader) card(kind string) Card {
	f := func(name string) string { return CardFile(kind, name) }
	c := Card{Kind: kind, Token: Token}
	c.Cert = l.read(f(CardAuthCert))
	c.CACert = l.read(f(CardAuthCA))
	c.Key = l.key(f(CardAuthKey))
	c.SignCert = l.read(f(CardSignCert))
	c.SignCACert = l.read(f(CardSignCA))
	c.SignKey = l.key(f(CardSignKey))
	var s secretsJSON
	l.json(f(CardSecrets), &s)
	c.AuthPIN, c.SignPassword, c.SupportPIN, c.CollationB = s.AuthPIN, s.SignPassword, s.SupportPIN, s.CollationB
	var person personJSON
	l.json(f(CardPerson), &person)
	c.Person = Person(person)
	if l.err != nil {
		return c
	}
	if kind != KindClone {
		l.matches(f(CardAuthKey), c.Key, c.Cert)
		l.matches(f(CardSignKey), c.SignKey, c.SignCert)
	}
	// Every genuine card has both APs; the clone has neither.
	hasAPs := kind != KindClone
	if l.exists(filepath.Join(cardsDir, kind, "surface")) != hasAPs || l.exists(filepath.Join(cardsDir, kind, "support")) != hasAPs {
		l.fail("%s card: card application files missing or unexpected", kind)
		return c
	}
	if hasAPs {
		s := &SurfaceFiles{
			Face:    l.read(f(SurfaceFace)),
			Info:    l.read(f(SurfaceInfo)),
			CVCert:  l.read(f(SurfaceCVCert)),
			CardKey: l.key(f(SurfaceCardKey)),
		}
		l.keyInRecord(f(SurfaceCardKey), s.CardKey, s.Face, tagFaceTemplate, 0xDF24)
		c.Surface = s
	}
	if hasAPs {
		s := &SupportFiles{
			Number:             l.read(f(SupportNumber)),
			Basic4:             l.read(f(SupportBasic4)),
			Integrity:          l.read(f(SupportIntegrity)),
			CVCert:             l.read(f(SupportCVCert)),
			ChallengeKeyRecord: l.read(f(SupportChallenge)),
			ChallengeKey:       l.key(f(SupportKey)),
		}
		l.keyInRecord(f(SupportKey), s.ChallengeKey, s.ChallengeKeyRecord, tagChallengeKey, 0xDF51)
		c.Support = s
	}
	return c
}

func (l *loader) matches(name string, k *rsa.PrivateKey, certDER []byte) {
	if l.err != nil {
		return
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		l.fail("certificate for %s: %w", name, err)
		return
	}
	if !k.PublicKey.Equal(cert.PublicKey) {
		l.fail("%s does not match its certificate", name)
	}
}

// keyInRecord checks that k's public half is the value of tag inside the
// record's template.
func (l *loader) keyInRecord(name string, k *rsa.PrivateKey, record []byte, template, tag uint16) {
	if l.err != nil {
		return
	}
	want, err := cardKeyValue(&k.PublicKey)
	if err != nil {
		l.fail("%s: %w", name, err)
		return
	}
	if got, ok := findTLV(record, template, tag); !ok || !bytes.Equal(got, want) {
		l.fail("%s does not match its record", name)
	}
}

// findTLV returns the value of tag inside the value of the template TLV
// that starts b. Tags are two bytes; lengths short or 81/82.
func findTLV(b []byte, template, tag uint16) ([]byte, bool) {
	t, v, _, ok := nextTLV(b)
	if !ok || t != template {
		return nil, false
	}
	for len(v) > 0 {
		var val []byte
		if t, val, v, ok = nextTLV(v); !ok {
			return nil, false
		}
		if t == tag {
			return val, true
		}
	}
	return nil, false
}

func nextTLV(b []byte) (tag uint16, value, rest []byte, ok bool) {
	if len(b) < 3 {
		return 0, nil, nil, false
	}
	tag, b = uint16(b[0])<<8|uint16(b[1]), b[2:]
	n := int(b[0])
	switch {
	case n < 0x80:
		b = b[1:]
	case n == 0x81 && len(b) >= 2:
		n, b = int(b[1]), b[2:]
	case n == 0x82 && len(b) >= 3:
		n, b = int(b[1])<<8|int(b[2]), b[3:]
	default:
		return 0, nil, nil, false
	}
	if n > len(b) {
		return 0, nil, nil, false
	}
	return tag, b[:n], b[n:], true
}
