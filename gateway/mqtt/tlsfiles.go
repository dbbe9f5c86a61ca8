package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
)

// TLSFiles names the files of a device's mutual-TLS identity, as the
// daemon's configuration gives them.
type TLSFiles struct {
	// CAFile holds the PEM certificate(s) of the CA that issued the
	// broker's server certificate. It is the only trust anchor: the
	// system roots are not used, so a certificate from any public CA for
	// the broker's name is refused (the broker CA is pinned). Required.
	CAFile string
	// CertFile and KeyFile are the device's client certificate (PEM, leaf
	// first, then any intermediates) and its private key (PEM, PKCS #8,
	// PKCS #1 or SEC 1). Give both for mutual TLS, or neither for a broker
	// that authenticates clients otherwise. The certificate's CN is the
	// device id: the shipped Mosquitto configuration (deploy/mosquitto)
	// uses it as the MQTT username for its ACL.
	CertFile, KeyFile string
	// ServerName is checked against the broker certificate's names (and
	// sent as SNI). Empty means the host of the broker URL.
	ServerName string
}

// ErrTLSFiles is wrapped by every error of TLSFiles.Config.
var ErrTLSFiles = errors.New("mqtt: TLS files")

// KeyPermissionError reports a private key file that users other than its
// owner may access (any group or other permission bit). Config refuses such
// a key instead of warning: anyone who can read a device key can connect as
// that kiosk and publish tap events in its name (the broker identifies
// devices by certificate alone), and a warning in a kiosk log nobody reads
// would leave the key exposed. chmod 0600 (or 0400) fixes it; it mirrors
// OpenSSH's refusal of an "UNPROTECTED PRIVATE KEY FILE".
type KeyPermissionError struct {
	Path string
	Mode fs.FileMode // the file's permission bits
}

func (e *KeyPermissionError) Error() string {
	return fmt.Sprintf("mqtt: TLS files: key file %s: mode %04o lets group or other users access the private key; chmod 0600 it",
		e.Path, uint32(e.Mode.Perm()))
}

// Is makes errors.Is(err, ErrTLSFiles) hold.
func (e *KeyPermissionError) Is(target error) bool { return target == ErrTLSFiles }

// maxPEMFile bounds what Config reads from one file; a CA bundle or a
// certificate chain is a few KiB, so anything larger is the wrong file.
const maxPEMFile = 1 << 20

// Config loads the files and returns a client TLS configuration: RootCAs
// holds only the certificates of CAFile, Certificates the client
// certificate (if CertFile/KeyFile are set), ServerName as given and
// MinVersion TLS 1.2 (Mosquitto's shipped listener accepts TLS 1.2 and 1.3;
// RFC 8996 deprecates anything older).
//
// Errors wrap ErrTLSFiles and name the file and what is wrong with it; they
// never contain key material (nor certificate bytes). A key file accessible
// to group or other users is refused with a *KeyPermissionError.
// Certificate validity dates are not checked here: a kiosk without a
// real-time clock may not know the date yet, and the TLS handshake checks
// them against the current time anyway.
func (f TLSFiles) Config() (*tls.Config, error) {
	if f.CAFile == "" {
		return nil, fmt.Errorf("%w: no CA file: the broker CA must be pinned", ErrTLSFiles)
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, fmt.Errorf("%w: certificate file %q and key file %q: give both for mutual TLS, or neither",
			ErrTLSFiles, f.CertFile, f.KeyFile)
	}
	roots, err := loadCAFile(f.CAFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		RootCAs:    roots,
		ServerName: f.ServerName,
		MinVersion: tls.VersionTLS12,
	}
	if f.CertFile != "" {
		cert, err := loadKeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// loadCAFile parses every PEM block of path as a CA certificate. A block of
// another type is an error rather than ignored: a key pasted into the CA
// file (worse, the CA's own key) must not go unnoticed.
func loadCAFile(path string) (*x509.CertPool, error) {
	data, err := readLimited(path, "CA file")
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		n++
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: CA file %s: PEM block %d is a %q, want only CERTIFICATE blocks", ErrTLSFiles, path, n, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: CA file %s: certificate %d: %w", ErrTLSFiles, path, n, err)
		}
		pool.AddCert(c)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: CA file %s: no PEM certificate found", ErrTLSFiles, path)
	}
	return pool, nil
}

// loadKeyPair reads the client certificate chain and its key and checks
// that they match and that the certificate may be used by a TLS client.
func loadKeyPair(certPath, keyPath string) (tls.Certificate, error) {
	certPEM, err := readLimited(certPath, "certificate file")
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := readKey(keyPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := onlyTypes(certPEM, "CERTIFICATE"); err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: certificate file %s: %s", ErrTLSFiles, certPath, err)
	}
	if err := keyBlock(keyPEM); err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: key file %s: %s", ErrTLSFiles, keyPath, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// crypto/tls's messages here are fixed texts ("private key does not
		// match public key", "failed to parse private key") or ASN.1
		// structure errors naming tags and offsets, never the key's bytes.
		return tls.Certificate{}, fmt.Errorf("%w: certificate file %s with key file %s: %w", ErrTLSFiles, certPath, keyPath, err)
	}
	leaf := cert.Leaf // parsed by X509KeyPair since Go 1.23
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("%w: certificate file %s: %w", ErrTLSFiles, certPath, err)
		}
		cert.Leaf = leaf
	}
	if len(leaf.ExtKeyUsage) > 0 &&
		!slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) &&
		!slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		// The broker (OpenSSL's "sslclient" purpose) would refuse it in
		// the handshake with a less telling alert.
		return tls.Certificate{}, fmt.Errorf("%w: certificate file %s: the certificate's extended key usage does not allow TLS client authentication", ErrTLSFiles, certPath)
	}
	return cert, nil
}

// onlyTypes checks that data has at least one PEM block and that every
// block is of type typ.
func onlyTypes(data []byte, typ string) error {
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		n++
		if b.Type != typ {
			return fmt.Errorf("PEM block %d is a %q, want %s", n, b.Type, typ)
		}
	}
	if n == 0 {
		return fmt.Errorf("no PEM %s found", typ)
	}
	return nil
}

// keyBlock checks that data holds exactly one PEM private key (and at most
// the "EC PARAMETERS" block that openssl ecparam -genkey writes before it).
// Only block types are named in errors, never their contents.
func keyBlock(data []byte) error {
	n, i := 0, 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		i++
		if b.Type == "EC PARAMETERS" {
			continue
		}
		n++
		switch b.Type {
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if len(b.Headers) > 0 { // Proc-Type: 4,ENCRYPTED (RFC 1421)
				return errors.New("the private key is encrypted; the daemon needs an unencrypted key (protect it with file permissions)")
			}
		case "ENCRYPTED PRIVATE KEY":
			return errors.New("the private key is encrypted; the daemon needs an unencrypted key (protect it with file permissions)")
		default:
			return fmt.Errorf("PEM block %d is a %q, want a private key", i, b.Type)
		}
	}
	switch {
	case n == 0:
		return errors.New("no PEM private key found")
	case n > 1:
		return fmt.Errorf("%d PEM private keys, want exactly one", n)
	}
	return nil
}

// readKey reads a private key file after checking, on the opened file (no
// race with a chmod in between), that only its owner may access it.
func readKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: key file: %w", ErrTLSFiles, err) // *PathError names the file
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: key file: %w", ErrTLSFiles, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: key file %s: not a regular file", ErrTLSFiles, path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, &KeyPermissionError{Path: path, Mode: st.Mode().Perm()}
	}
	return readAllLimited(f, path, "key file")
}

func readLimited(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrTLSFiles, what, err)
	}
	defer f.Close()
	return readAllLimited(f, path, what)
}

func readAllLimited(r io.Reader, path, what string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %w", ErrTLSFiles, what, path, err)
	}
	if len(data) > maxPEMFile {
		return nil, fmt.Errorf("%w: %s %s: larger than %d bytes", ErrTLSFiles, what, path, maxPEMFile)
	}
	return data, nil
}

// ClientIdentity is the subject common name of the client certificate in
// a configuration made by Config ("" without one). A broker that takes the
// device's identity from its certificate (Mosquitto's
// use_identity_as_username, as deploy/mosquitto ships it) applies the ACL
// to this name, not to what the configuration calls the device.
func ClientIdentity(tc *tls.Config) string {
	if tc == nil || len(tc.Certificates) == 0 || tc.Certificates[0].Leaf == nil {
		return ""
	}
	return tc.Certificates[0].Leaf.Subject.CommonName
}
