// Package brokertest holds the integration tests of the shipped Mosquitto
// configuration (deploy/mosquitto) against a real broker, and the
// throw-away X.509 certificates they (and gateway/mqtt's TLS tests) use: a
// CA, server certificates for loopback addresses and device client
// certificates whose CN is the device id.
package brokertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// validity of every certificate around the wall clock: the broker (OpenSSL)
// checks dates against the real time, so the certificates cannot take an
// injected clock; an hour back absorbs clock skew between processes.
const (
	notBeforeSkew = time.Hour
	lifetime      = 24 * time.Hour
)

// CA is a throw-away certificate authority (ECDSA P-256).
type CA struct {
	Cert     *x509.Certificate
	CertFile string // PEM, mode 0644
	key      *ecdsa.PrivateKey
	dir      string
}

// Leaf is an issued certificate and its key on disk.
type Leaf struct {
	Cert     *x509.Certificate
	CertFile string // PEM, mode 0644
	KeyFile  string // PEM PKCS #8, mode 0600
}

// NewCA makes a self-signed CA named cn and writes its certificate to
// dir/<name>.crt; certificates it issues are written to dir too.
func NewCA(tb testing.TB, dir, name, cn string) *CA {
	tb.Helper()
	key := newKey(tb)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Kazashi test"}},
		NotBefore:             now.Add(-notBeforeSkew),
		NotAfter:              now.Add(lifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("brokertest: CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("brokertest: parse CA certificate: %v", err)
	}
	ca := &CA{Cert: cert, key: key, dir: dir, CertFile: filepath.Join(dir, name+".crt")}
	writePEM(tb, ca.CertFile, "CERTIFICATE", der, 0o644)
	return ca
}

// Server issues a TLS server certificate (serverAuth) for the given IP
// addresses and host names, written to <name>.crt and <name>.key.
func (ca *CA) Server(tb testing.TB, name string, ips []net.IP, hosts ...string) Leaf {
	tb.Helper()
	return ca.Issue(tb, name, &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		IPAddresses: ips,
		DNSNames:    hosts,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// Client issues a TLS client certificate (clientAuth) with CN cn, the
// device id (or kazashi-backend), written to <cn>.crt and <cn>.key.
func (ca *CA) Client(tb testing.TB, cn string) Leaf {
	tb.Helper()
	return ca.Issue(tb, cn, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// Issue signs tmpl (its serial number and validity are filled in) with a
// new key and writes <name>.crt and <name>.key.
func (ca *CA) Issue(tb testing.TB, name string, tmpl *x509.Certificate) Leaf {
	tb.Helper()
	key := newKey(tb)
	now := time.Now()
	tmpl.SerialNumber = serial(tb)
	tmpl.NotBefore = now.Add(-notBeforeSkew)
	tmpl.NotAfter = now.Add(lifetime)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatalf("brokertest: certificate %s: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("brokertest: parse certificate %s: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("brokertest: key %s: %v", name, err)
	}
	l := Leaf{Cert: cert, CertFile: filepath.Join(ca.dir, name+".crt"), KeyFile: filepath.Join(ca.dir, name+".key")}
	writePEM(tb, l.CertFile, "CERTIFICATE", der, 0o644)
	writePEM(tb, l.KeyFile, "PRIVATE KEY", keyDER, 0o600)
	return l
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("brokertest: generate key: %v", err)
	}
	return k
}

func serial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		tb.Fatalf("brokertest: serial number: %v", err)
	}
	return n.Add(n, big.NewInt(1)) // RFC 5280 §4.1.2.2: positive
}

func writePEM(tb testing.TB, path, typ string, der []byte, mode os.FileMode) {
	tb.Helper()
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, data, mode); err != nil {
		tb.Fatalf("brokertest: %v", err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is subject to umask
		tb.Fatalf("brokertest: %v", err)
	}
}
