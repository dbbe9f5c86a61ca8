package mqtt_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kazashi/kazashi/gateway/brokertest"
	"github.com/kazashi/kazashi/gateway/mqtt"
)

// tlsWorld is a CA, a server certificate for 127.0.0.1 and a device
// certificate, on disk.
type tlsWorld struct {
	dir    string
	ca     *brokertest.CA
	server brokertest.Leaf
	device brokertest.Leaf
}

func newTLSWorld(t *testing.T) *tlsWorld {
	t.Helper()
	dir := t.TempDir()
	ca := brokertest.NewCA(t, dir, "ca", "Kazashi test device CA")
	return &tlsWorld{
		dir:    dir,
		ca:     ca,
		server: ca.Server(t, "server", []net.IP{net.IPv4(127, 0, 0, 1)}),
		device: ca.Client(t, "kiosk-7"),
	}
}

func (w *tlsWorld) files() mqtt.TLSFiles {
	return mqtt.TLSFiles{CAFile: w.ca.CertFile, CertFile: w.device.CertFile, KeyFile: w.device.KeyFile}
}

// serveTLS runs a crypto/tls server with cert that requires (if clientCAs
// is set) a client certificate from clientCAs; each accepted handshake's
// client CN (or "" without one) is sent on the returned channel.
func serveTLS(t *testing.T, cert brokertest.Leaf, clientCAs *x509.CertPool) (string, <-chan string) {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}
	if clientCAs != nil {
		cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, clientCAs
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	cns := make(chan string, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if tc.Handshake() == nil {
				cn := ""
				if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
					cn = pc[0].Subject.CommonName
				}
				cns <- cn
				_, _ = tc.Write([]byte("ok"))
			}
			tc.Close()
		}
	}()
	return ln.Addr().String(), cns
}

// handshake dials addr with cfg and reads the server's "ok".
func handshake(addr string, cfg *tls.Config) error {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	return nil
}

func TestTLSFilesMutualHandshake(t *testing.T) {
	t.Parallel()
	w := newTLSWorld(t)
	f := w.files()
	f.ServerName = "127.0.0.1"
	cfg, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	want := x509.NewCertPool()
	want.AddCert(w.ca.Cert)
	if !cfg.RootCAs.Equal(want) {
		t.Error("RootCAs is not exactly the CA file's certificate (no system roots)")
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ServerName != "127.0.0.1" || len(cfg.Certificates) != 1 {
		t.Errorf("Config: MinVersion %#x, ServerName %q, %d certificates", cfg.MinVersion, cfg.ServerName, len(cfg.Certificates))
	}

	addr, cns := serveTLS(t, w.server, want)
	if err := handshake(addr, cfg); err != nil {
		t.Fatalf("mutual TLS handshake: %v", err)
	}
	if cn := <-cns; cn != "kiosk-7" {
		t.Errorf("server saw client CN %q, want kiosk-7", cn)
	}

	// A server with a certificate from another CA of the same name is
	// refused: the CA is pinned by key, not by name.
	other := brokertest.NewCA(t, t.TempDir(), "ca", "Kazashi test device CA")
	impostor := other.Server(t, "server", []net.IP{net.IPv4(127, 0, 0, 1)})
	addr2, _ := serveTLS(t, impostor, nil)
	var uerr x509.UnknownAuthorityError
	if err := handshake(addr2, cfg); !errors.As(err, &uerr) {
		t.Errorf("handshake with an impostor broker: %v, want x509.UnknownAuthorityError", err)
	}
	// ServerName is checked.
	f.ServerName = "broker.example.com"
	cfg2, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	var herr x509.HostnameError
	if err := handshake(addr, cfg2); !errors.As(err, &herr) {
		t.Errorf("handshake with a wrong server name: %v, want x509.HostnameError", err)
	}
}

func TestTLSFilesServerAuthOnly(t *testing.T) {
	t.Parallel()
	w := newTLSWorld(t)
	cfg, err := mqtt.TLSFiles{CAFile: w.ca.CertFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Certificates) != 0 {
		t.Errorf("%d client certificates without CertFile/KeyFile", len(cfg.Certificates))
	}
	addr, _ := serveTLS(t, w.server, nil)
	if err := handshake(addr, cfg); err != nil {
		t.Fatalf("handshake: %v", err)
	}
}

// TestTLSFilesKeyPermissions: a key file any group or other user may
// access is refused; 0600 and 0400 are fine.
func TestTLSFilesKeyPermissions(t *testing.T) {
	t.Parallel()
	w := newTLSWorld(t)
	for _, tc := range []struct {
		mode fs.FileMode
		ok   bool
	}{{0o600, true}, {0o400, true}, {0o640, false}, {0o604, false}, {0o644, false}, {0o660, false}, {0o610, false}} {
		if err := os.Chmod(w.device.KeyFile, tc.mode); err != nil {
			t.Fatal(err)
		}
		_, err := w.files().Config()
		var perr *mqtt.KeyPermissionError
		switch {
		case tc.ok && err != nil:
			t.Errorf("mode %04o: %v", tc.mode, err)
		case !tc.ok && !errors.As(err, &perr):
			t.Errorf("mode %04o: error %v, want *KeyPermissionError", tc.mode, err)
		case !tc.ok:
			if perr.Path != w.device.KeyFile || perr.Mode != tc.mode || !errors.Is(err, mqtt.ErrTLSFiles) {
				t.Errorf("mode %04o: %#v (Is ErrTLSFiles: %v)", tc.mode, perr, errors.Is(err, mqtt.ErrTLSFiles))
			}
			if !strings.Contains(err.Error(), w.device.KeyFile) || !strings.Contains(err.Error(), "chmod 0600") {
				t.Errorf("mode %04o: error %q does not name the file and the fix", tc.mode, err)
			}
		}
	}
}

// TestTLSFilesErrors: every bad file is reported with ErrTLSFiles, its
// path and the problem, and no error ever contains key material.
func TestTLSFilesErrors(t *testing.T) {
	t.Parallel()
	w := newTLSWorld(t)
	keyPEM, err := os.ReadFile(w.device.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := os.ReadFile(w.device.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	other := brokertest.NewCA(t, t.TempDir(), "other", "other")
	otherLeaf := other.Client(t, "kiosk-7")
	otherKey, err := os.ReadFile(otherLeaf.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	serverOnly := w.ca.Server(t, "server-only", []net.IP{net.IPv4(127, 0, 0, 1)})

	write := func(name string, data []byte, mode fs.FileMode) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00000000000000000000000000000000"},
		Bytes:   []byte("ciphertext-secret-bytes")})
	secretDER := []byte("SECRET-KEY-MATERIAL-0123456789abcdef")
	garbageKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: secretDER})

	good := w.files()
	with := func(edit func(*mqtt.TLSFiles)) mqtt.TLSFiles { f := good; edit(&f); return f }
	cases := []struct {
		name  string
		files mqtt.TLSFiles
		want  []string // substrings of the error
	}{
		{"no CA file", with(func(f *mqtt.TLSFiles) { f.CAFile = "" }), []string{"no CA file"}},
		{"missing CA file", with(func(f *mqtt.TLSFiles) { f.CAFile = "/nonexistent/ca.crt" }), []string{"/nonexistent/ca.crt", "no such file"}},
		{"CA file without PEM", with(func(f *mqtt.TLSFiles) { f.CAFile = write("ca.crt", []byte("not pem\n"), 0o644) }), []string{"ca.crt", "no PEM certificate"}},
		{"key in CA file", with(func(f *mqtt.TLSFiles) {
			f.CAFile = write("ca.crt", append(append([]byte{}, certPEM...), keyPEM...), 0o644)
		}),
			[]string{"ca.crt", `PEM block 2 is a "PRIVATE KEY"`}},
		{"corrupt CA certificate", with(func(f *mqtt.TLSFiles) {
			f.CAFile = write("ca.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 1, 2, 3}}), 0o644)
		}), []string{"ca.crt", "certificate 1"}},
		{"certificate without key", with(func(f *mqtt.TLSFiles) { f.KeyFile = "" }), []string{"give both"}},
		{"key without certificate", with(func(f *mqtt.TLSFiles) { f.CertFile = "" }), []string{"give both"}},
		{"missing certificate file", with(func(f *mqtt.TLSFiles) { f.CertFile = "/nonexistent/dev.crt" }), []string{"/nonexistent/dev.crt"}},
		{"missing key file", with(func(f *mqtt.TLSFiles) { f.KeyFile = "/nonexistent/dev.key" }), []string{"/nonexistent/dev.key"}},
		{"key file is a directory", with(func(f *mqtt.TLSFiles) { f.KeyFile = t.TempDir() }), []string{"not a regular file"}},
		{"key of another certificate", with(func(f *mqtt.TLSFiles) { f.KeyFile = write("dev.key", otherKey, 0o600) }),
			[]string{"dev.key", "private key does not match public key"}},
		{"certificate as key", with(func(f *mqtt.TLSFiles) { f.KeyFile = write("dev.key", certPEM, 0o600) }),
			[]string{"dev.key", `"CERTIFICATE", want a private key`}},
		{"no PEM in key file", with(func(f *mqtt.TLSFiles) { f.KeyFile = write("dev.key", secretDER, 0o600) }),
			[]string{"dev.key", "no PEM private key"}},
		{"two keys", with(func(f *mqtt.TLSFiles) {
			f.KeyFile = write("dev.key", append(append([]byte{}, keyPEM...), otherKey...), 0o600)
		}),
			[]string{"dev.key", "2 PEM private keys"}},
		{"encrypted key", with(func(f *mqtt.TLSFiles) { f.KeyFile = write("dev.key", encrypted, 0o600) }), []string{"dev.key", "encrypted"}},
		{"garbage key", with(func(f *mqtt.TLSFiles) { f.KeyFile = write("dev.key", garbageKey, 0o600) }), []string{"dev.key"}},
		{"key in certificate file", with(func(f *mqtt.TLSFiles) {
			f.CertFile = write("dev.crt", append(append([]byte{}, certPEM...), keyPEM...), 0o644)
		}),
			[]string{"dev.crt", `"PRIVATE KEY", want CERTIFICATE`}},
		{"server-only certificate", with(func(f *mqtt.TLSFiles) { f.CertFile, f.KeyFile = serverOnly.CertFile, serverOnly.KeyFile }),
			[]string{"server-only.crt", "does not allow TLS client authentication"}},
		{"huge CA file", with(func(f *mqtt.TLSFiles) { f.CAFile = write("ca.crt", bytes.Repeat([]byte("x"), 1<<20+1), 0o644) }),
			[]string{"ca.crt", "larger than"}},
	}
	secrets := [][]byte{keyPEM, otherKey, encrypted, garbageKey}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.files.Config()
			if err == nil {
				t.Fatalf("Config succeeded: %+v", cfg)
			}
			if !errors.Is(err, mqtt.ErrTLSFiles) {
				t.Errorf("error %v does not wrap ErrTLSFiles", err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			for _, s := range secrets {
				if leak := keyLeak(err.Error(), s); leak != "" {
					t.Errorf("error %q contains key material %q", err, leak)
				}
			}
			if strings.Contains(err.Error(), string(secretDER[:16])) {
				t.Errorf("error %q contains the key's bytes", err)
			}
		})
	}
}

// keyLeak returns a base64 line of the PEM data in msg, if any.
func keyLeak(msg string, pemData []byte) string {
	for _, line := range strings.Split(string(pemData), "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && !strings.Contains(line, ":") && strings.Contains(msg, line[:16]) {
			return line
		}
	}
	return ""
}

// TestTLSFilesSEC1Key: an "openssl ecparam -genkey" key file (EC
// PARAMETERS, then EC PRIVATE KEY) is accepted.
func TestTLSFilesSEC1Key(t *testing.T) {
	t.Parallel()
	w := newTLSWorld(t)
	data, err := os.ReadFile(w.device.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	params := []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07} // OID prime256v1 (RFC 5480 §2.1.1.1)
	out := append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: params}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...)
	f := w.files()
	f.KeyFile = filepath.Join(w.dir, "sec1.key")
	if err := os.WriteFile(f.KeyFile, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Config(); err != nil {
		t.Fatalf("SEC 1 key with EC PARAMETERS: %v", err)
	}
}

// FuzzTLSFilesKey: whatever the key file holds, Config does not panic, and
// an error wraps ErrTLSFiles and repeats none of the file's PEM body.
func FuzzTLSFilesKey(f *testing.F) {
	dir := f.TempDir()
	ca := brokertest.NewCA(f, dir, "ca", "ca")
	dev := ca.Client(f, "kiosk-7")
	good, err := os.ReadFile(dev.KeyFile)
	if err != nil {
		f.Fatal(err)
	}
	cert, err := os.ReadFile(dev.CertFile)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(cert)
	f.Add(append(append([]byte{}, cert...), good...))
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nU0VDUkVULUtFWS1NQVRFUklBTC0wMTIzNDU2Nzg5\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, key []byte) {
		p := filepath.Join(t.TempDir(), "dev.key")
		if err := os.WriteFile(p, key, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := mqtt.TLSFiles{CAFile: ca.CertFile, CertFile: dev.CertFile, KeyFile: p}.Config()
		if err == nil {
			return
		}
		if !errors.Is(err, mqtt.ErrTLSFiles) {
			t.Errorf("error %v does not wrap ErrTLSFiles", err)
		}
		for rest := key; ; {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if len(b.Bytes) >= 8 && strings.Contains(err.Error(), string(b.Bytes)) {
				t.Errorf("error %q contains a PEM body", err)
			}
		}
		if leak := keyLeak(err.Error(), key); leak != "" {
			t.Errorf("error %q contains %q", err, leak)
		}
	})
}

// TestClientIdentity: the name a broker using use_identity_as_username
// sees is the device certificate's CN; without a client certificate there
// is none.
func TestClientIdentity(t *testing.T) {
	t.Parallel()
	w := newTLSWorld(t)
	cfg, err := w.files().Config()
	if err != nil {
		t.Fatal(err)
	}
	if got := mqtt.ClientIdentity(cfg); got != "kiosk-7" {
		t.Errorf("ClientIdentity = %q, want kiosk-7", got)
	}
	server, err := mqtt.TLSFiles{CAFile: w.ca.CertFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if got := mqtt.ClientIdentity(server); got != "" {
		t.Errorf("ClientIdentity without a client certificate = %q", got)
	}
	if got := mqtt.ClientIdentity(nil); got != "" {
		t.Errorf("ClientIdentity(nil) = %q", got)
	}
}
