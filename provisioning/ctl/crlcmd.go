package ctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"iter"
	"math/big"
	"os"
	"time"

	"github.com/kazashi/kazashi/firmware/crl"
	"github.com/kazashi/kazashi/firmware/crlindex"
	"github.com/kazashi/kazashi/firmware/revocation"
)

// Progress reports how far an import has read. On a terminal it redraws
// one bar line; otherwise it writes a plain line every 10 %.
type Progress struct {
	W        io.Writer
	Terminal bool
	Total    int64 // file size; 0 if unknown
	last     int64
	started  time.Time
}

// Update is the callback for revocation.Store.Import.
func (p *Progress) Update(read int64) {
	if p.started.IsZero() {
		p.started = time.Now()
	}
	if p.Total <= 0 {
		fmt.Fprintf(p.W, "read %d MiB\n", read>>20)
		return
	}
	pct := read * 100 / p.Total
	if p.Terminal {
		const width = 40
		n := int(pct * width / 100)
		fmt.Fprintf(p.W, "\r[%s%s] %3d%% %d/%d MiB", bytes.Repeat([]byte("#"), n), bytes.Repeat([]byte(" "), width-n), pct, read>>20, p.Total>>20)
		if read >= p.Total {
			fmt.Fprintln(p.W)
		}
		return
	}
	if pct/10 > p.last/10 || read >= p.Total {
		fmt.Fprintf(p.W, "progress %d%% (%d of %d bytes)\n", pct, read, p.Total)
		p.last = pct
	}
}

// IsTerminal reports whether f is a character device (a terminal).
func IsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// ImportOptions are the inputs of `kazashictl crl import`.
type ImportOptions struct {
	Issuers  []string // CA certificate files allowed to sign the CRLs
	IndexDir string
	Progress func(file string, size int64) func(int64) // optional
}

// ImportCRLs imports CRL files into the store in IndexDir (the daemon's
// directory: it picks them up at its next reload or on SIGHUP).
func ImportCRLs(ctx context.Context, files []string, o ImportOptions) ([]*revocation.Result, error) {
	signers, err := loadCerts(o.Issuers, true)
	if err != nil {
		return nil, fmt.Errorf("--issuer: %w", err)
	}
	if len(signers) == 0 {
		return nil, fmt.Errorf("--issuer: no certificate given")
	}
	store, err := revocation.Open(ctx, o.IndexDir, revocation.Options{})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	var out []*revocation.Result
	for _, f := range files {
		var prog func(int64)
		if o.Progress != nil {
			if st, err := os.Stat(f); err == nil {
				prog = o.Progress(f, st.Size())
			}
		}
		r, err := store.ImportFile(ctx, f, signers, prog)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Inspection describes one CRL file without its entries' serials (they
// identify people to the CA).
type Inspection struct {
	File               string         `json:"file"`
	Issuer             string         `json:"issuer"`
	Number             *big.Int       `json:"number"`
	BaseNumber         *big.Int       `json:"delta_base_number,omitempty"`
	ThisUpdate         time.Time      `json:"this_update"`
	NextUpdate         time.Time      `json:"next_update"`
	SignatureAlgorithm string         `json:"signature_algorithm"`
	Signature          string         `json:"signature"` // "verified by <fingerprint>", "not checked" or why it failed
	Entries            int64          `json:"entries"`
	Reasons            map[string]int `json:"reasons"`
	Scope              *Scope         `json:"scope,omitempty"`
	UnknownCritical    []string       `json:"unknown_critical_extensions,omitempty"`
	Bytes              int64          `json:"bytes"`
	SHA256             string         `json:"sha256"`
}

// Scope summarises an issuingDistributionPoint.
type Scope struct {
	DistributionPoints int    `json:"distribution_point_names"`
	OnlyUser           bool   `json:"only_user_certs,omitempty"`
	OnlyCA             bool   `json:"only_ca_certs,omitempty"`
	OnlyAttr           bool   `json:"only_attribute_certs,omitempty"`
	Indirect           bool   `json:"indirect,omitempty"`
	OnlySomeReasons    string `json:"only_some_reasons,omitempty"`
}

// InspectCRL streams a CRL file and summarises it; with issuers, it also
// checks the signature.
func InspectCRL(ctx context.Context, file string, issuers []string) (*Inspection, error) {
	signers, err := loadCerts(issuers, true)
	if err != nil {
		return nil, fmt.Errorf("--issuer: %w", err)
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	reasons := map[string]int{}
	p, err := crl.Parse(ctx, bufio.NewReaderSize(f, 1<<20), func(e *crl.Entry) error {
		reasons[crl.ReasonName(e.Reason)]++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	in := &Inspection{File: file, Issuer: nameString(p.RawIssuer), Number: p.Number, BaseNumber: p.BaseNumber,
		ThisUpdate: p.ThisUpdate, NextUpdate: p.NextUpdate, SignatureAlgorithm: p.SignatureAlgorithm.String(),
		Signature: "not checked (no --issuer)", Entries: p.Entries, Reasons: reasons, Bytes: p.Size,
		SHA256: hex.EncodeToString(p.SHA256[:])}
	for _, oid := range p.UnknownCritical {
		in.UnknownCritical = append(in.UnknownCritical, oid.String())
	}
	if p.IDP != nil {
		in.Scope = &Scope{DistributionPoints: len(p.IDP.FullName), OnlyUser: p.IDP.OnlyUser, OnlyCA: p.IDP.OnlyCA,
			OnlyAttr: p.IDP.OnlyAttr, Indirect: p.IDP.Indirect}
		if p.IDP.OnlySomeReasons != 0 {
			in.Scope.OnlySomeReasons = fmt.Sprintf("%#x", uint16(p.IDP.OnlySomeReasons))
		}
	}
	if len(signers) > 0 {
		in.Signature = "not verified by any --issuer"
		for _, c := range signers {
			if err := p.CheckSignatureFrom(c); err == nil {
				in.Signature = "verified by " + fingerprint(c.Raw)
				break
			} else {
				in.Signature = err.Error()
			}
		}
	}
	return in, nil
}

// Diff counts the differences between two CRL files of one issuer.
type Diff struct {
	Old, New      string
	OldNumber     *big.Int `json:"old_number"`
	NewNumber     *big.Int `json:"new_number"`
	Added         int64    `json:"added"`
	Removed       int64    `json:"removed"`
	ReasonChanged int64    `json:"reason_changed"`
	Unchanged     int64    `json:"unchanged"`
	// Serials lists the changes, hex, when asked for (they identify
	// certificate holders to the CA: operators only).
	Serials []string `json:"serials,omitempty"`
}

// DiffCRLs streams both CRLs into temporary sorted indexes and walks them
// side by side.
func DiffCRLs(ctx context.Context, oldFile, newFile string, listSerials bool) (*Diff, error) {
	dir, err := os.MkdirTemp("", "kazashictl-diff-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	index := func(file, name string) (*crlindex.Index, *crl.Parsed, error) {
		f, err := os.Open(file)
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		w, err := crlindex.Create(dir, crlindex.WriterOptions{Tables: 1})
		if err != nil {
			return nil, nil, err
		}
		var ie crlindex.Entry
		p, err := crl.Parse(ctx, bufio.NewReaderSize(f, 1<<20), func(e *crl.Entry) error {
			ie.Serial, ie.Negative, ie.Reason, ie.RevokedAt = e.Serial, e.Negative, e.Reason, e.RevokedAt
			return w.Add(&ie)
		})
		if err != nil {
			w.Abort()
			return nil, nil, fmt.Errorf("%s: %w", file, err)
		}
		path := dir + "/" + name
		if err := w.Commit(ctx, path, nil); err != nil {
			return nil, nil, err
		}
		x, err := crlindex.Open(path)
		return x, p, err
	}
	a, pa, err := index(oldFile, "old")
	if err != nil {
		return nil, err
	}
	defer a.Close()
	b, pb, err := index(newFile, "new")
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if !bytes.Equal(pa.RawIssuer, pb.RawIssuer) {
		return nil, fmt.Errorf("the CRLs have different issuers: %s, %s", nameString(pa.RawIssuer), nameString(pb.RawIssuer))
	}
	d := &Diff{Old: oldFile, New: newFile, OldNumber: pa.Number, NewNumber: pb.Number}
	next, stop := iter.Pull(entries(a))
	defer stop()
	note := func(sign string, e crlindex.Entry) {
		if listSerials {
			s := hex.EncodeToString(e.Serial)
			if e.Negative {
				s = "-" + s
			}
			d.Serials = append(d.Serials, sign+s)
		}
	}
	ea, okA := next()
	for eb := range entries(b) {
		for okA && crlindex.Compare(&ea, &eb) < 0 {
			d.Removed++
			note("-", ea)
			ea, okA = next()
		}
		if okA && crlindex.Compare(&ea, &eb) == 0 {
			if ea.Reason != eb.Reason {
				d.ReasonChanged++
				note("~", eb)
			} else {
				d.Unchanged++
			}
			ea, okA = next()
			continue
		}
		d.Added++
		note("+", eb)
	}
	for ; okA; ea, okA = next() {
		d.Removed++
		note("-", ea)
	}
	return d, nil
}

// entries yields copies of table 0's entries in index order.
func entries(x *crlindex.Index) iter.Seq[crlindex.Entry] {
	return func(yield func(crlindex.Entry) bool) {
		stop := fmt.Errorf("stop")
		_ = x.Iterate(0, func(e *crlindex.Entry) error {
			c := *e
			c.Serial = bytes.Clone(e.Serial)
			if !yield(c) {
				return stop
			}
			return nil
		})
	}
}

func nameString(der []byte) string { return revocation.NameString(der) }

// InspectIndex reports a revocation store's series and errors.
func InspectIndex(ctx context.Context, dir string) (revocation.Status, error) {
	if _, err := os.Stat(dir); err != nil {
		return revocation.Status{}, err
	}
	s, err := revocation.Open(ctx, dir, revocation.Options{})
	if err != nil {
		return revocation.Status{}, err
	}
	defer s.Close()
	return s.Status(), nil
}
