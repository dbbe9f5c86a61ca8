// Command kazashi-pki generates the JPKI-TEST hierarchy used by tests, the
// simulator and demo kiosks, and writes it to a directory (layout in package
// provisioning/testpki).
//
//	kazashi-pki -out DIR [-now RFC3339]
//
// It prints the anchors' SHA-256 fingerprints, the CRLs, the CV anchor IDs
// with the SHA-256 of their moduli, and per card kind the serials of its
// certificates and which card applications it has. It never prints key
// material, secrets (PINs, password, collation number) or the synthetic
// holders' data: those are in the 0600 files under cards/.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/kazashi/kazashi/provisioning/testpki"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// now is the clock used when -now is absent; tests replace it.
var now = time.Now

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kazashi-pki", flag.ContinueOnError)
	fs.SetOutput(stdout)
	out := fs.String("out", "", "directory to write the test PKI into (required)")
	at := fs.String("now", "", "generation time, RFC 3339 (default: the current time)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: kazashi-pki -out DIR [-now RFC3339]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("kazashi-pki: -out DIR is required and no arguments are accepted")
	}
	t := now()
	if *at != "" {
		var err error
		if t, err = time.Parse(time.RFC3339, *at); err != nil {
			return fmt.Errorf("kazashi-pki: -now: %w", err)
		}
	}

	p, err := testpki.Generate(t)
	if err != nil {
		return fmt.Errorf("kazashi-pki: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kazashi-pki: %w", err)
	}
	if err := p.WriteDir(*out); err != nil {
		return fmt.Errorf("kazashi-pki: %w", err)
	}
	return summary(stdout, *out, t, p)
}

func summary(w io.Writer, dir string, t time.Time, p *testpki.PKI) error {
	fmt.Fprintf(w, "test JPKI hierarchy (O=JPKI-TEST) written to %s at %s\n", dir, t.UTC().Format(time.RFC3339))
	for _, a := range []struct {
		file string
		der  []byte
	}{{testpki.AnchorFile, p.Root}, {testpki.SignAnchorFile, p.SignRoot}} {
		sum := sha256.Sum256(a.der)
		fmt.Fprintf(w, "anchor  %s  SHA-256 %s\n", a.file, fingerprint(sum[:]))
	}
	for _, c := range []struct {
		file string
		der  []byte
	}{{testpki.CRLFile, p.CRL}, {testpki.SignCRLFile, p.SignCRL}} {
		crl, err := x509.ParseRevocationList(c.der)
		if err != nil {
			return fmt.Errorf("kazashi-pki: %s: %w", c.file, err)
		}
		fmt.Fprintf(w, "crl     %s  number %d, thisUpdate %s, nextUpdate %s, %d revoked\n", c.file,
			crl.Number, crl.ThisUpdate.Format(time.RFC3339), crl.NextUpdate.Format(time.RFC3339), len(crl.RevokedCertificateEntries))
	}
	for _, a := range p.CVAnchors {
		sum := sha256.Sum256(a.Key.N.FillBytes(make([]byte, 256)))
		fmt.Fprintf(w, "cv      %-7s  %s  SHA-256(modulus) %x\n", a.Purpose, a.IDString, sum)
	}
	for _, kind := range testpki.Kinds() {
		card := p.Cards[kind]
		auth, err := x509.ParseCertificate(card.Cert)
		if err != nil {
			return fmt.Errorf("kazashi-pki: %s card: %w", kind, err)
		}
		sign, err := x509.ParseCertificate(card.SignCert)
		if err != nil {
			return fmt.Errorf("kazashi-pki: %s card: signature certificate: %w", kind, err)
		}
		var aps []string
		if card.Surface != nil {
			aps = append(aps, "surface")
		}
		if card.Support != nil {
			aps = append(aps, "support")
		}
		if len(aps) == 0 {
			aps = append(aps, "none")
		}
		fmt.Fprintf(w, "card    %-10s  serial %x  sign serial %x  notAfter %s  APs %s\n", kind,
			auth.SerialNumber, sign.SerialNumber, auth.NotAfter.Format(time.RFC3339), strings.Join(aps, ","))
	}
	return nil
}

func fingerprint(b []byte) string {
	hexes := make([]string, len(b))
	for i, c := range b {
		hexes[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(hexes, ":")
}
