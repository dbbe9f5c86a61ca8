package crlbench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/kazashi/kazashi/firmware/crl"
	"github.com/kazashi/kazashi/firmware/revocation"
	"github.com/kazashi/kazashi/firmware/verify"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

// LookupResult is what the lookup child prints (JSON).
type LookupResult struct {
	Open       time.Duration `json:"open_ns"`
	WarmHitNS  float64       `json:"warm_hit_ns"`
	WarmMissNS float64       `json:"warm_miss_ns"`
	// ColdUS is the median of single lookups right after the index's
	// pages were dropped from memory and from the page cache.
	ColdUS      float64 `json:"cold_us"`
	ColdSamples int     `json:"cold_samples"`
}

func parseLookup(out string) (LookupResult, error) {
	var r LookupResult
	i := strings.LastIndex(out, "{")
	if i < 0 {
		return r, fmt.Errorf("lookup child printed no result: %s", lastLines(out, 5))
	}
	return r, json.Unmarshal([]byte(out[i:]), &r)
}

// Lookup is the lookup child: open the store the daemon's way, then time
// lookups through crl.Usable (what every Verify does) for listed serials
// and for serials that are not listed.
func Lookup(ctx context.Context, w io.Writer, index, caFile string, n int) error {
	cas, err := verify.LoadAnchors(caFile)
	if err != nil {
		return err
	}
	issuer := cas[0].RawSubject
	start := time.Now()
	s, err := revocation.Open(ctx, index, revocation.Options{})
	if err != nil {
		return err
	}
	res := LookupResult{Open: time.Since(start)}
	defer s.Close()
	sn := s.Snapshot()
	ls := sn.ByIssuer(issuer)
	if len(ls) != 1 {
		sn.Release()
		return fmt.Errorf("%d CRLs for the bench CA, want 1", len(ls))
	}
	l := ls[0]
	spec := testpki.BigCRL{Entries: n, SerialBytes: 8, Seed: 6}
	rng := mrand.New(mrand.NewPCG(1, 2))
	const k = 1 << 20
	hits := make([]*big.Int, 4096)
	for i := range hits {
		hits[i] = spec.Serial(rng.IntN(n))
	}
	misses := make([]*big.Int, 4096)
	for i := range misses {
		// 9 magnitude bytes: longer than every listed serial.
		misses[i] = new(big.Int).SetUint64(rng.Uint64())
		misses[i].Lsh(misses[i], 8)
	}
	timeIt := func(set []*big.Int, want bool) (float64, error) {
		t := time.Now()
		for i := range k {
			_, ok, err := l.Lookup(ctx, issuer, set[i&4095])
			if err != nil {
				return 0, err
			}
			if ok != want {
				return 0, fmt.Errorf("lookup %d answered listed=%v, want %v", i, ok, want)
			}
		}
		return float64(time.Since(t).Nanoseconds()) / k, nil
	}
	if _, err := timeIt(hits, true); err != nil { // warm the pages
		sn.Release()
		return err
	}
	if res.WarmHitNS, err = timeIt(hits, true); err != nil {
		sn.Release()
		return err
	}
	if res.WarmMissNS, err = timeIt(misses, false); err != nil {
		sn.Release()
		return err
	}
	sn.Release()
	res.ColdUS, res.ColdSamples, err = cold(ctx, s, issuer, hits)
	if err != nil {
		return err
	}
	return json.NewEncoder(w).Encode(res)
}

// cold times single lookups after dropping the index from memory.
func cold(ctx context.Context, s *revocation.Store, issuer []byte, serials []*big.Int) (float64, int, error) {
	var samples []float64
	for i := range 64 {
		if err := s.DropCaches(); err != nil {
			if errors.Is(err, errors.ErrUnsupported) {
				return 0, 0, nil
			}
			return 0, 0, err
		}
		sn := s.Snapshot()
		l := sn.ByIssuer(issuer)[0]
		t := time.Now()
		_, ok, err := l.Lookup(ctx, issuer, serials[i*61%len(serials)])
		d := time.Since(t)
		sn.Release()
		if err != nil || !ok {
			return 0, 0, fmt.Errorf("cold lookup: listed %v, %v", ok, err)
		}
		samples = append(samples, float64(d.Nanoseconds())/1e3)
	}
	sort.Float64s(samples)
	return samples[len(samples)/2], len(samples), nil
}

var _ crl.Usable = nil

// daemonStart starts kazashid twice with the CRL in its configuration:
// the first run imports it (not timed), the second finds the index in
// place and is timed from exec to its "kazashid running" line.
func daemonStart(ctx context.Context, kazashid, work string, f *Fixture) (time.Duration, error) {
	dir := filepath.Join(work, "daemon")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(dir, "pseudonym.key"), []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
		return 0, err
	}
	cfg := fmt.Sprintf(`{
  "device_id": "bench",
  "reader": {"port": %q},
  "trust": {"anchors": [%q], "crls": [%q], "allow_test": true},
  "state_dir": %q,
  "mqtt": {"embedded": true, "embedded_listen": "127.0.0.1:0"},
  "pseudonym_key_file": "pseudonym.key"
}`, filepath.Join(dir, "no-reader"), f.CA, f.Base, filepath.Join(dir, "state"))
	cfgFile := filepath.Join(dir, "kazashid.json")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return 0, err
	}
	if _, err := startUntilRunning(ctx, kazashid, cfgFile, 10*time.Minute); err != nil {
		return 0, fmt.Errorf("first start (import): %w", err)
	}
	return startUntilRunning(ctx, kazashid, cfgFile, time.Minute)
}

func startUntilRunning(ctx context.Context, bin, cfg string, limit time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	sc := bufio.NewScanner(stderr)
	var last []string
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "kazashid running") {
			d := time.Since(start)
			go func() { _, _ = io.Copy(io.Discard, stderr) }()
			return d, nil
		}
		last = append(last, line)
	}
	return 0, fmt.Errorf("kazashid exited before running: %s", lastLines(strings.Join(last, "\n"), 3))
}
