// Package crlbench measures revocation at national scale, as `make bench`
// reports it: on generated RSA-2048 CRLs (1M and 10M entries by default),
// each contender runs as its own process so that its time and peak RSS
// (getrusage ru_maxrss of the child) are its own:
//
//   - our import: `kazashictl crl import` (stream, hash, verify, sort,
//     write the index, fsync, rename);
//   - the stdlib: x509.ParseRevocationList on the same bytes (this
//     binary's stdlib-parse mode), signature not even checked;
//   - OpenSSL: `openssl crl -inform DER -noout`;
//   - a delta CRL applied onto the imported base (`kazashictl crl import`);
//   - lookups warm and cold, and opening the store (this binary's lookup
//     mode, in a fresh process);
//   - the daemon's start with the index in place: kazashid started with a
//     configuration naming the already imported CRL, timed from exec to
//     its "kazashid running" line.
//
// Targets (issue 6) are checked and printed beside the numbers.
package crlbench

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kazashi/kazashi/provisioning/testpki"
)

// Options configure Run.
type Options struct {
	Sizes      []int  // entries per CRL
	CacheDir   string // generated CRLs are kept here between runs
	WorkDir    string // indexes and daemon state (removed afterwards)
	Kazashictl string
	Kazashid   string
	Self       string // this binary, for the stdlib-parse and lookup modes
	Out        io.Writer
	Log        io.Writer
	// Delta: entries added and removed by the delta CRL.
	DeltaAdded, DeltaRemoved int
}

// Fixture is one generated CRL pair.
type Fixture struct {
	N               int
	CA, Base, Delta string // files
	Spec            testpki.BigCRL
}

var epoch = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// Generate writes (or reuses) the CA certificate, a complete CRL of n
// entries and a delta CRL on it.
func Generate(ctx context.Context, dir string, n, added, removed int, log io.Writer) (*Fixture, error) {
	d := filepath.Join(dir, fmt.Sprintf("n%d-a%d-r%d-v1", n, added, removed))
	f := &Fixture{N: n, CA: filepath.Join(d, "ca.pem"), Base: filepath.Join(d, "base.crl"), Delta: filepath.Join(d, "delta.crl")}
	spec := testpki.BigCRL{Entries: n, SerialBytes: 8, Seed: 6, Number: big.NewInt(1000),
		ThisUpdate: epoch, NextUpdate: epoch.Add(100 * 365 * 24 * time.Hour)}
	f.Spec = spec
	if allExist(f.CA, f.Base, f.Delta) {
		return f, nil
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "generating a %d-entry RSA-2048 CRL and a delta in %s\n", n, d)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{Country: []string{"JP"}, Organization: []string{"JPKI-TEST"}, CommonName: "Bench CA"},
		NotBefore: epoch.AddDate(-1, 0, 0), NotAfter: epoch.AddDate(200, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, SubjectKeyId: []byte("kazashi-bench-ca"),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	spec.Issuer, spec.Key = ca, key
	write := func(path string, fn func(io.Writer) error) error {
		out, err := os.Create(path + ".tmp")
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(out, 1<<20)
		if err := fn(bw); err != nil {
			out.Close()
			return err
		}
		if err := bw.Flush(); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
		return os.Rename(path+".tmp", path)
	}
	if err := write(f.Base, func(w io.Writer) error { return testpki.WriteBigCRL(w, spec) }); err != nil {
		return nil, err
	}
	rm := make([]int, removed)
	for i := range rm {
		rm[i] = i * (n / max(removed, 1))
	}
	if err := write(f.Delta, func(w io.Writer) error {
		return testpki.WriteDeltaCRL(w, spec, big.NewInt(1001), epoch.Add(24*time.Hour), epoch.Add(100*365*24*time.Hour), added, rm)
	}); err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.CA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	return f, nil
}

func allExist(files ...string) bool {
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			return false
		}
	}
	return true
}

// Measured is one child process.
type Measured struct {
	Wall   time.Duration
	MaxRSS int64 // bytes
	Out    string
}

// Measure runs a command and reports its wall time and peak RSS.
func Measure(ctx context.Context, name string, args ...string) (Measured, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	m := Measured{Wall: time.Since(start), Out: out.String()}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			m.MaxRSS = int64(ru.Maxrss) * 1024 // Linux reports KiB
		}
	}
	if err != nil {
		return m, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, lastLines(m.Out, 5))
	}
	return m, nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

// Row is one size's measurements.
type Row struct {
	N                            int
	CRLBytes                     int64
	Ours, Stdlib, OpenSSL, Delta Measured
	OpenSSLErr                   error
	IndexBytes                   int64
	Lookup                       LookupResult
	DaemonStart                  time.Duration
	DaemonStartErr               error
}

// Run generates, measures and prints the table.
func Run(ctx context.Context, o Options) ([]Row, error) {
	var rows []Row
	for _, n := range o.Sizes {
		f, err := Generate(ctx, o.CacheDir, n, o.DeltaAdded, o.DeltaRemoved, o.Log)
		if err != nil {
			return rows, err
		}
		r, err := measureSize(ctx, o, f)
		if err != nil {
			return rows, err
		}
		rows = append(rows, r)
	}
	Print(o.Out, rows)
	return rows, nil
}

func measureSize(ctx context.Context, o Options, f *Fixture) (Row, error) {
	r := Row{N: f.N}
	st, err := os.Stat(f.Base)
	if err != nil {
		return r, err
	}
	r.CRLBytes = st.Size()
	work, err := os.MkdirTemp(o.WorkDir, fmt.Sprintf("crlbench-%d-", f.N))
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(work)
	index := filepath.Join(work, "revocation")

	fmt.Fprintf(o.Log, "%d entries: openssl crl -noout\n", f.N)
	r.OpenSSL, r.OpenSSLErr = Measure(ctx, "openssl", "crl", "-inform", "DER", "-noout", "-in", f.Base)
	fmt.Fprintf(o.Log, "%d entries: x509.ParseRevocationList\n", f.N)
	if r.Stdlib, err = Measure(ctx, o.Self, "stdlib-parse", f.Base); err != nil {
		return r, err
	}
	fmt.Fprintf(o.Log, "%d entries: kazashictl crl import\n", f.N)
	if r.Ours, err = Measure(ctx, o.Kazashictl, "crl", "import", "--issuer", f.CA, "--index", index, f.Base); err != nil {
		return r, err
	}
	r.IndexBytes = dirIndexBytes(index)
	fmt.Fprintf(o.Log, "%d entries: lookups\n", f.N)
	lm, err := Measure(ctx, o.Self, "lookup", "-index", index, "-ca", f.CA, "-n", fmt.Sprint(f.N))
	if err != nil {
		return r, err
	}
	if r.Lookup, err = parseLookup(lm.Out); err != nil {
		return r, err
	}
	if o.Kazashid != "" {
		fmt.Fprintf(o.Log, "%d entries: daemon start\n", f.N)
		r.DaemonStart, r.DaemonStartErr = daemonStart(ctx, o.Kazashid, work, f)
	}
	fmt.Fprintf(o.Log, "%d entries: delta CRL apply\n", f.N)
	if r.Delta, err = Measure(ctx, o.Kazashictl, "crl", "import", "--issuer", f.CA, "--index", index, f.Delta); err != nil {
		return r, err
	}
	return r, nil
}

func dirIndexBytes(dir string) int64 {
	m, _ := filepath.Glob(filepath.Join(dir, "*.kzi"))
	var n int64
	for _, f := range m {
		if st, err := os.Stat(f); err == nil {
			n += st.Size()
		}
	}
	return n
}

// Print writes the markdown table and the target checks.
func Print(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "| entries (CRL size) | our import | x509.ParseRevocationList | openssl crl -noout | speed-up vs stdlib | RSS vs stdlib | index bytes/entry | delta apply | lookup warm (hit/miss) | lookup cold | store open | daemon start |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		ossl := fmtM(r.OpenSSL)
		if r.OpenSSLErr != nil {
			ossl = "failed: " + r.OpenSSLErr.Error()
		}
		ds := r.DaemonStart.Round(time.Millisecond).String()
		if r.DaemonStartErr != nil {
			ds = "failed: " + r.DaemonStartErr.Error()
		}
		fmt.Fprintf(w, "| %s (%.0f MiB) | %s | %s | %s | %.1f× | 1/%.0f | %.2f | %s | %.0f / %.0f ns | %.1f µs | %s | %s |\n",
			human(r.N), float64(r.CRLBytes)/(1<<20), fmtM(r.Ours), fmtM(r.Stdlib), ossl,
			r.Stdlib.Wall.Seconds()/r.Ours.Wall.Seconds(), float64(r.Stdlib.MaxRSS)/float64(r.Ours.MaxRSS),
			float64(r.IndexBytes)/float64(r.N), fmtM(r.Delta), r.Lookup.WarmHitNS, r.Lookup.WarmMissNS,
			r.Lookup.ColdUS, r.Lookup.Open.Round(time.Microsecond), ds)
	}
	for _, r := range rows {
		if r.N < 10_000_000 {
			continue
		}
		check := func(ok bool, what string) {
			mark := "met"
			if !ok {
				mark = "MISSED"
			}
			fmt.Fprintf(w, "- %s target %s: %s\n", human(r.N), what, mark)
		}
		check(r.Stdlib.Wall.Seconds()/r.Ours.Wall.Seconds() >= 8, "import ≥ 8× faster than the stdlib")
		check(r.Ours.MaxRSS*30 <= r.Stdlib.MaxRSS && r.Ours.MaxRSS < 100<<20, "import peak RSS ≤ 1/30 of the stdlib's and < 100 MB")
		check(float64(r.IndexBytes)/float64(r.N) <= 12, "≤ 12 bytes per entry on disk")
		check(r.Lookup.WarmHitNS < 1000 && r.Lookup.WarmMissNS < 1000, "warm lookups < 1 µs")
		check(r.DaemonStartErr == nil && r.DaemonStart < 100*time.Millisecond, "daemon start < 100 ms")
	}
}

func fmtM(m Measured) string {
	return fmt.Sprintf("%.2f s, %.0f MB", m.Wall.Seconds(), float64(m.MaxRSS)/1e6)
}

func human(n int) string {
	switch {
	case n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// StdlibParse is the baseline child: parse the whole CRL with the
// standard library.
func StdlibParse(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	rl, err := x509.ParseRevocationList(b)
	if err != nil {
		return err
	}
	if len(rl.RevokedCertificateEntries) == 0 {
		return errors.New("no entries parsed")
	}
	return nil
}
