package crlbench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTable1M runs the benchmark table on a 1M-entry CRL, as `make bench`
// does (the 10M row is for `make bench` only: it takes minutes and 10 GB
// for the baselines). It asserts what the table must show, not timings:
// every contender ran, the lookups found what is listed and not what is
// not, the daemon started on the index, the delta applied, and the index
// is at most 12 bytes per entry.
func TestTable1M(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the commands and generates a 1M-entry CRL")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl not found (apt-get install -y openssl): it is the benchmark's baseline")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "../cmd/kazashictl", "../../firmware/cmd/kazashid", "../cmd/kazashi-crlbench")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var out, log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rows, err := Run(ctx, Options{
		Sizes: []int{1_000_000}, CacheDir: t.TempDir(), WorkDir: t.TempDir(),
		Kazashictl: filepath.Join(bin, "kazashictl"), Kazashid: filepath.Join(bin, "kazashid"),
		Self: filepath.Join(bin, "kazashi-crlbench"), Out: &out, Log: &log,
		DeltaAdded: 1000, DeltaRemoved: 1000,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Logf("\n%s", out.String())
	r := rows[0]
	if r.OpenSSLErr != nil {
		t.Errorf("openssl baseline: %v", r.OpenSSLErr)
	}
	if r.DaemonStartErr != nil {
		t.Errorf("daemon start: %v", r.DaemonStartErr)
	}
	if per := float64(r.IndexBytes) / float64(r.N); per > 12 || per < 10 {
		t.Errorf("index %.2f bytes per entry, want 10..12 for 8-byte serials", per)
	}
	if r.Lookup.WarmHitNS <= 0 || r.Lookup.WarmMissNS <= 0 {
		t.Errorf("lookups not measured: %+v", r.Lookup)
	}
	if r.Ours.MaxRSS <= 0 || r.Stdlib.MaxRSS <= 0 || r.Ours.Wall <= 0 {
		t.Errorf("child measurements missing: ours %+v stdlib %+v", r.Ours, r.Stdlib)
	}
	if !strings.Contains(r.Delta.Out, "imported: series") || !strings.Contains(r.Delta.Out, "(delta true)") {
		t.Errorf("delta import output: %s", r.Delta.Out)
	}
	if !strings.Contains(out.String(), "| 1M (") {
		t.Errorf("table lacks the 1M row:\n%s", out.String())
	}
}
