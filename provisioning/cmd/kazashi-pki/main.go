// Command kazashi-pki generates the JPKI-TEST hierarchy used by tests, the
// simulator and demo kiosks, and writes it to a directory (layout in package
// provisioning/testpki).
//
//	kazashi-pki -out DIR [-now RFC3339]
//
// It prints the card kinds, their serials and the anchor's SHA-256
// fingerprint; it never prints key material.
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
	crl, err := x509.ParseRevocationList(p.CRL)
	if err != nil {
		return fmt.Errorf("kazashi-pki: %w", err)
	}
	sum := sha256.Sum256(p.Root)
	fmt.Fprintf(w, "test JPKI hierarchy (O=JPKI-TEST) written to %s at %s\n", dir, t.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "anchor  %s  SHA-256 %s\n", testpki.AnchorFile, fingerprint(sum[:]))
	fmt.Fprintf(w, "crl     %s  number %d, thisUpdate %s, nextUpdate %s, %d revoked\n", testpki.CRLFile,
		crl.Number, crl.ThisUpdate.Format(time.RFC3339), crl.NextUpdate.Format(time.RFC3339), len(crl.RevokedCertificateEntries))
	for _, kind := range testpki.Kinds() {
		c, err := x509.ParseCertificate(p.Cards[kind].Cert)
		if err != nil {
			return fmt.Errorf("kazashi-pki: %s card: %w", kind, err)
		}
		fmt.Fprintf(w, "card    %-10s  serial %x  notAfter %s\n", kind, c.SerialNumber, c.NotAfter.Format(time.RFC3339))
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
