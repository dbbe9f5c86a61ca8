// Package ctl is the library behind kazashictl, the operator tool: each
// subcommand is a function here with its own tests, and the command only
// parses flags and sets the exit status.
package ctl

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kazashi/kazashi/firmware/revocation"
	"github.com/kazashi/kazashi/firmware/verify"
)

// VerifyCertOptions are the inputs of VerifyCert.
type VerifyCertOptions struct {
	// Trust lists trust anchor files (PEM or DER) or directories of them
	// (*.pem, *.crt, *.cer, *.der).
	Trust []string
	// Intermediates are CA certificate files a path may use.
	Intermediates []string
	// CRLs are DER CRL files, complete or delta, of any CA in the path.
	CRLs []string
	// At is the verification time; zero means Now().
	At  time.Time
	Now func() time.Time
}

// Verdict is the JSON answer of `kazashictl verify cert`.
type Verdict struct {
	Valid  bool          `json:"valid"`
	Reason verify.Reason `json:"reason"`
	Detail string        `json:"detail"`
	At     time.Time     `json:"at"`
	// Path is leaf..anchor as SHA-256 fingerprints: a leaf's subject can
	// be personal data, a fingerprint is not readable as such.
	Path       []string   `json:"path,omitempty"`
	CRLNumber  *big.Int   `json:"crl_number,omitempty"`
	CRLAgeS    *float64   `json:"crl_age_s,omitempty"`
	StaleGrace bool       `json:"stale_within_grace,omitempty"`
	CRLs       []CRLInput `json:"crls,omitempty"`
}

// CRLInput says what became of one --crl file.
type CRLInput struct {
	File   string   `json:"file"`
	Number *big.Int `json:"number,omitempty"`
	Delta  bool     `json:"delta,omitempty"`
	// Error is why the CRL is not used (then it counts as absent).
	Error string `json:"error,omitempty"`
}

// VerifyCert verifies the certificate in certFile the way the daemon
// does, with RFC 5280 rules only (verify.PurposeAny: no JPKI key-usage
// profile, any hierarchy the --trust files name): the CRLs are imported into a fresh revocation store (complete
// CRLs first, each delta after its base), then the path is built and
// every certificate on it checked (RFC 5280 §6.1, §6.3) at the given
// time. An error means the inputs could not be read; an invalid
// certificate is a Verdict with Valid false.
func VerifyCert(ctx context.Context, certFile string, o VerifyCertOptions) (*Verdict, error) {
	leaf, err := readOne(certFile)
	if err != nil {
		return nil, err
	}
	anchors, err := loadCerts(o.Trust, true)
	if err != nil {
		return nil, fmt.Errorf("--trust: %w", err)
	}
	if len(anchors) == 0 {
		return nil, errors.New("--trust: no certificate found")
	}
	inter, err := loadCerts(o.Intermediates, false)
	if err != nil {
		return nil, fmt.Errorf("--intermediate: %w", err)
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	at := o.At
	if at.IsZero() {
		at = now()
	}

	dir, err := os.MkdirTemp("", "kazashictl-crl-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	store, err := revocation.Open(ctx, dir, revocation.Options{Now: now})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	signers := slices.Concat(anchors, inter)
	inputs := ImportAll(ctx, store, o.CRLs, signers)

	v, err := verify.New(verify.Options{
		Anchors: anchors, Intermediates: inter, Revocation: store,
		Now: now, Purpose: verify.PurposeAny,
	})
	if err != nil {
		return nil, err
	}
	r := v.VerifyAt(ctx, leaf, at)
	out := &Verdict{Valid: r.OK(), Reason: r.Reason, Detail: r.Detail, At: at.UTC(), CRLs: inputs,
		CRLNumber: r.CRLNumber, StaleGrace: r.StaleGrace}
	for _, c := range r.Path {
		out.Path = append(out.Path, fingerprint(c.Raw))
	}
	if r.CRLAge >= 0 && r.CRLNumber != nil {
		s := r.CRLAge.Seconds()
		out.CRLAgeS = &s
	}
	return out, nil
}

// ImportAll imports CRL files into store: complete CRLs first, then
// deltas (a delta needs its base), and says what became of each.
func ImportAll(ctx context.Context, store *revocation.Store, files []string, signers []*x509.Certificate) []CRLInput {
	out := make([]CRLInput, len(files))
	var later []int
	for pass := 0; pass < 2; pass++ {
		idx := later
		if pass == 0 {
			idx = make([]int, len(files))
			for i := range files {
				idx[i] = i
			}
		}
		later = nil
		for _, i := range idx {
			out[i] = CRLInput{File: files[i]}
			r, err := store.ImportFile(ctx, files[i], signers, nil)
			switch {
			case err == nil:
				out[i].Number, out[i].Delta = r.Info.Number, r.Delta
			case pass == 0 && (errors.Is(err, revocation.ErrNoBase) || errors.Is(err, revocation.ErrReplay)):
				// A delta before its base, or a lower-numbered CRL of a
				// series after a higher one: try again once.
				later = append(later, i)
			default:
				out[i].Error = err.Error()
			}
		}
	}
	return out
}

// readOne reads one certificate (PEM or DER).
func readOne(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	certs, err := verify.ParseAnchors(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("%s: %d certificates, want one", file, len(certs))
	}
	return certs[0].Raw, nil
}

// loadCerts reads certificate files; with dirs, a directory stands for
// its certificate files.
func loadCerts(paths []string, dirs bool) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, p := range paths {
		files := []string{p}
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			if !dirs {
				return nil, fmt.Errorf("%s is a directory", p)
			}
			ents, err := os.ReadDir(p)
			if err != nil {
				return nil, err
			}
			files = nil
			for _, e := range ents {
				switch strings.ToLower(filepath.Ext(e.Name())) {
				case ".pem", ".crt", ".cer", ".der":
					files = append(files, filepath.Join(p, e.Name()))
				}
			}
		}
		for _, f := range files {
			cs, err := verify.LoadAnchors(f)
			if err != nil {
				return nil, err
			}
			out = append(out, cs...)
		}
	}
	return out, nil
}

func fingerprint(der []byte) string {
	s := sha256.Sum256(der)
	return fmt.Sprintf("%X", s[:])
}
