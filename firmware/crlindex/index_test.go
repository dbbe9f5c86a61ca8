package crlindex

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// model is the expected content: last entry added per (table, sign, serial).
type model map[string]Entry

func modelKey(table uint16, neg bool, mag []byte) string {
	return fmt.Sprintf("%d/%v/%x", table, neg, mag)
}

func (m model) add(e Entry) {
	mag := trimZeros(e.Serial)
	neg := e.Negative && len(mag) > 0
	e.Serial = bytes.Clone(mag)
	e.Negative = neg
	e.RevokedAt = e.RevokedAt.Truncate(time.Minute).UTC()
	m[modelKey(e.Table, neg, mag)] = e
}

// sorted returns the model's entries of table in file order.
func (m model) sorted(table uint16) []Entry {
	var out []Entry
	for _, e := range m {
		if e.Table == table {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if a.Negative != b.Negative {
			if a.Negative {
				return -1
			}
			return 1
		}
		if len(a.Serial) != len(b.Serial) {
			return len(a.Serial) - len(b.Serial)
		}
		return bytes.Compare(a.Serial, b.Serial)
	})
	return out
}

var baseTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// genEntries makes n random entries over tables with serial magnitudes of
// 1..maxW bytes (exactly maxW if fixed), ~3% duplicates, a few negatives,
// and serial zero.
func genEntries(rng *rand.Rand, n, tables, maxW int, fixed bool) []Entry {
	out := make([]Entry, 0, n+2)
	for i := 0; i < n; i++ {
		if i > 0 && rng.IntN(32) == 0 { // duplicate of an earlier one, new attributes
			d := out[rng.IntN(len(out))]
			d.Serial = bytes.Clone(d.Serial)
			d.Reason = rng.IntN(12) - 1
			d.RevokedAt = baseTime.Add(time.Duration(rng.Int64N(1e6)) * time.Second)
			out = append(out, d)
			continue
		}
		w := maxW
		if !fixed {
			w = 1 + rng.IntN(maxW)
		}
		s := make([]byte, w)
		for j := range s {
			s[j] = byte(rng.Uint32())
		}
		if rng.IntN(50) == 0 {
			s = append([]byte{0, 0}, s...) // non-minimal: same integer
		}
		out = append(out, Entry{
			Table:     uint16(rng.IntN(tables)),
			Serial:    s,
			Negative:  rng.IntN(40) == 0,
			Reason:    rng.IntN(12) - 1,
			RevokedAt: baseTime.Add(time.Duration(rng.Int64N(1e9)) * time.Second),
		})
	}
	out = append(out, Entry{Table: 0, Serial: nil, Reason: 1, RevokedAt: baseTime})
	out = append(out, Entry{Table: uint16(tables - 1), Serial: []byte{0}, Negative: true, Reason: -1, RevokedAt: baseTime})
	return out
}

func write(t testing.TB, dir, path string, opts WriterOptions, entries []Entry, meta []byte) {
	t.Helper()
	w, err := Create(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range entries {
		if err := w.Add(&entries[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(context.Background(), path, meta); err != nil {
		t.Fatal(err)
	}
}

func entryEqual(a, b Entry) bool {
	return a.Table == b.Table && bytes.Equal(a.Serial, b.Serial) && a.Negative == b.Negative &&
		a.Reason == b.Reason && a.RevokedAt.Equal(b.RevokedAt)
}

// checkIndex verifies x against m exhaustively and with random misses.
func checkIndex(t *testing.T, x *Index, m model, tables int, rng *rand.Rand) {
	t.Helper()
	if x.Tables() != tables {
		t.Fatalf("Tables() = %d, want %d", x.Tables(), tables)
	}
	for tb := 0; tb < tables; tb++ {
		want := m.sorted(uint16(tb))
		if x.Len(tb) != len(want) {
			t.Fatalf("table %d: Len = %d, want %d", tb, x.Len(tb), len(want))
		}
		i := 0
		err := x.Iterate(tb, func(e *Entry) error {
			if i >= len(want) || !entryEqual(*e, want[i]) {
				return fmt.Errorf("entry %d: got %+v", i, *e)
			}
			i++
			return nil
		})
		if err != nil || i != len(want) {
			t.Fatalf("table %d: Iterate: %v after %d of %d", tb, err, i, len(want))
		}
	}
	for _, e := range m {
		got, ok := x.Lookup(int(e.Table), e.Serial, e.Negative)
		if !ok || !entryEqual(got, e) {
			t.Fatalf("Lookup(%d, %x, %v) = %+v, %v; want %+v", e.Table, e.Serial, e.Negative, got, ok, e)
		}
		padded := append([]byte{0, 0, 0}, e.Serial...)
		if got, ok := x.Lookup(int(e.Table), padded, e.Negative); !ok || !entryEqual(got, e) {
			t.Fatalf("Lookup with leading zeros: %+v, %v", got, ok)
		}
		if _, ok := m[modelKey(e.Table, !e.Negative && len(e.Serial) > 0, e.Serial)]; !ok && len(e.Serial) > 0 {
			if _, ok := x.Lookup(int(e.Table), e.Serial, !e.Negative); ok {
				t.Fatalf("Lookup with the other sign found %x", e.Serial)
			}
		}
	}
	misses := 0
	for misses < 10000 {
		tb := uint16(rng.IntN(tables + 1)) // includes an out-of-range table
		s := make([]byte, rng.IntN(22))
		for j := range s {
			s[j] = byte(rng.Uint32())
		}
		neg := rng.IntN(4) == 0
		if _, listed := m[modelKey(tb, neg && len(trimZeros(s)) > 0, trimZeros(s))]; listed {
			continue
		}
		misses++
		if got, ok := x.Lookup(int(tb), s, neg); ok {
			t.Fatalf("Lookup(%d, %x, %v) found unlisted serial: %+v", tb, s, neg, got)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		name          string
		n, tables, w  int
		fixed, sorted bool
		limit         int
	}{
		{"w1", 300, 1, 1, true, false, 0},
		{"w8-spills", 20000, 1, 8, true, false, 4 << 10},
		{"w20-spills", 20000, 1, 20, true, false, 2 << 10},
		{"mixed-tables", 20000, 5, 20, false, false, 16 << 10},
		{"w8-sorted", 20000, 2, 8, true, true, 0},
		{"w8-sorted-spills", 20000, 2, 8, true, true, 2 << 10},
		{"w3-fanout", 300000, 1, 3, true, false, 1 << 20},
		{"w8-fanout", 200000, 1, 8, true, false, 512 << 10},
		{"w20-fanout-sorted", 200000, 1, 20, false, true, 256 << 10},
		{"empty", 0, 3, 8, true, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.n), uint64(tc.w)))
			entries := genEntries(rng, tc.n, tc.tables, tc.w, tc.fixed)
			if tc.n == 0 {
				entries = nil
			}
			m := model{}
			for _, e := range entries {
				m.add(e)
			}
			if tc.sorted {
				// Sort by file order, keeping duplicates in their order.
				slices.SortStableFunc(entries, func(a, b Entry) int {
					ka, kb := sortKey(a), sortKey(b)
					return bytes.Compare(ka, kb)
				})
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "idx")
			meta := []byte(`{"issuer":"test"}`)
			w, err := Create(dir, WriterOptions{MemoryLimit: tc.limit, Tables: tc.tables})
			if err != nil {
				t.Fatal(err)
			}
			for i := range entries {
				if err := w.Add(&entries[i]); err != nil {
					t.Fatal(err)
				}
			}
			if tc.sorted && (len(w.runs) > 1 || !w.global) {
				t.Fatalf("sorted input: %d runs, global=%v; want the fast path", len(w.runs), w.global)
			}
			w.waitSpill() // w.parts is set by the spill goroutine
			if tc.limit != 0 && tc.limit < 8<<10 && !tc.sorted && (w.parts == nil || len(w.parts.files) < 2) {
				t.Fatalf("unsorted input beyond the limit: want it spilled to buckets")
			}
			if err := w.Commit(context.Background(), path, meta); err != nil {
				t.Fatal(err)
			}
			assertOnly(t, dir, "idx")
			x, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer x.Close()
			if !bytes.Equal(x.Metadata(), meta) {
				t.Fatalf("metadata %q", x.Metadata())
			}
			if strings.Contains(tc.name, "fanout") && x.sets[1].p != 16 {
				t.Fatalf("set 1: prefix %d bits, want 16", x.sets[1].p)
			}
			checkIndex(t, x, m, tc.tables, rng)
			if tc.name == "w8-fanout" {
				bpe := float64(x.Size()) / float64(x.Len(0))
				if bpe > 12 {
					t.Fatalf("%.2f bytes per entry, want ≤ 12", bpe)
				}
				t.Logf("%.2f bytes per entry", bpe)
			}
		})
	}
}

func sortKey(e Entry) []byte {
	mag := trimZeros(e.Serial)
	sign := byte(1)
	if e.Negative && len(mag) > 0 {
		sign = 0
	}
	return append([]byte{byte(e.Table >> 8), byte(e.Table), sign, byte(len(mag) >> 8), byte(len(mag))}, mag...)
}

// assertOnly fails unless dir holds exactly the named files.
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	slices.Sort(got)
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Fatalf("directory holds %q, want %q", got, names)
	}
}

func TestSerialSemantics(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "idx")
	at := time.Date(2025, 1, 2, 3, 4, 59, 999, time.FixedZone("x", 3600))
	entries := []Entry{
		{Serial: []byte{0x01}, Reason: 1, RevokedAt: at},
		{Serial: []byte{0xFF}, Reason: 6, RevokedAt: at},
		{Serial: []byte{0x01, 0x00}, Reason: -1, RevokedAt: at},
		{Serial: []byte{0x05}, Negative: true, Reason: 10, RevokedAt: at},
		{Serial: []byte{0x00}, Negative: true, Reason: 0, RevokedAt: at}, // -0 is 0
		{Serial: []byte{0x01}, Reason: 4, RevokedAt: at},                 // duplicate: last wins
		{Serial: []byte{0x02}, Reason: 8, RevokedAt: time.Unix(-100, 0)}, // clamped to 1970
		{Serial: []byte{0x03}, Reason: 0, RevokedAt: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	write(t, dir, path, WriterOptions{}, entries, nil)
	x, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	want := at.Truncate(time.Minute).UTC()
	for _, c := range []struct {
		serial []byte
		neg    bool
		ok     bool
		reason int
	}{
		{[]byte{0x01}, false, true, 4},
		{[]byte{0x00, 0x01}, false, true, 4}, // 0x0001 == 0x01
		{[]byte{0x00, 0x00, 0x00, 0xFF}, false, true, 6},
		{[]byte{0xFF, 0x00}, false, false, 0},
		{[]byte{0x01, 0x00}, false, true, -1},
		{[]byte{0x00, 0x01, 0x00}, false, true, -1},
		{[]byte{0x01, 0x00, 0x00}, false, false, 0}, // longer than W
		{[]byte{0x05}, true, true, 10},
		{[]byte{0x05}, false, false, 0},
		{[]byte{0x01}, true, false, 0},
		{nil, false, true, 0},
		{[]byte{0, 0}, true, true, 0},
		{[]byte{0x04}, false, false, 0},
	} {
		got, ok := x.Lookup(0, c.serial, c.neg)
		if ok != c.ok || ok && (got.Reason != c.reason || got.Negative != (c.neg && len(trimZeros(c.serial)) > 0)) {
			t.Errorf("Lookup(%x, %v) = %+v, %v; want ok=%v reason %d", c.serial, c.neg, got, ok, c.ok, c.reason)
		}
		if ok && got.Reason != 8 && got.Reason != 0 && !got.RevokedAt.Equal(want) {
			t.Errorf("Lookup(%x): time %v, want %v", c.serial, got.RevokedAt, want)
		}
	}
	if e, _ := x.Lookup(0, []byte{0x02}, false); !e.RevokedAt.Equal(time.Unix(0, 0)) {
		t.Errorf("pre-1970 time stored as %v", e.RevokedAt)
	}
	if e, _ := x.Lookup(0, []byte{0x03}, false); !e.RevokedAt.Equal(time.Unix(minuteMask*60, 0)) {
		t.Errorf("far-future time stored as %v", e.RevokedAt)
	}
	if _, ok := x.Lookup(1, []byte{0x01}, false); ok {
		t.Error("table out of range found")
	}
	if _, ok := x.Lookup(-1, []byte{0x01}, false); ok {
		t.Error("table -1 found")
	}
	if x.Len(0) != 7 || x.Len(1) != 0 {
		t.Errorf("Len = %d, %d", x.Len(0), x.Len(1))
	}
	if err := x.Iterate(1, func(*Entry) error { return nil }); err == nil {
		t.Error("Iterate of a table out of range succeeded")
	}
}

func TestAddRejects(t *testing.T) {
	w, err := Create(t.TempDir(), WriterOptions{Tables: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	secret := []byte{0xDE, 0xAD, 0xBE, 0xEF}
	for _, e := range []Entry{
		{Table: 2, Serial: secret},
		{Serial: secret, Reason: 11},
		{Serial: secret, Reason: -2},
		{Serial: make([]byte, MaxSerialLen+1)},
	} {
		e.Serial[0] |= 0xDE
		err := w.Add(&e)
		if err == nil {
			t.Fatalf("Add(%+v) accepted", e)
		}
		if strings.Contains(strings.ToLower(err.Error()), "dead") {
			t.Fatalf("error names the serial: %v", err)
		}
	}
	if _, err := Create(t.TempDir(), WriterOptions{Tables: MaxTables + 1}); err == nil {
		t.Fatal("too many tables accepted")
	}
	if _, err := Create(filepath.Join(t.TempDir(), "missing"), WriterOptions{}); err == nil {
		t.Fatal("missing dir accepted")
	}
}

// smallFile returns a valid index with a few entries in two tables, with
// fan-out absent (too small), negatives, zero and metadata.
func smallFile(t testing.TB) []byte {
	dir := t.(interface{ TempDir() string }).TempDir()
	path := filepath.Join(dir, "idx")
	write(t, dir, path, WriterOptions{Tables: 2}, []Entry{
		{Table: 0, Serial: []byte{1, 2, 3}, Reason: 1, RevokedAt: baseTime},
		{Table: 0, Serial: []byte{7}, Negative: true, Reason: -1, RevokedAt: baseTime},
		{Table: 1, Serial: nil, Reason: 6, RevokedAt: baseTime},
		{Table: 1, Serial: []byte{9, 9}, Reason: 4, RevokedAt: baseTime},
	}, []byte("meta"))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// openBytes writes b to a fresh file in dir (a fresh name: truncating a
// file on ext4 forces a writeback) and opens it; the file is removed again.
func openBytes(t testing.TB, dir string, b []byte) (*Index, error) {
	f, err := os.CreateTemp(dir, "c")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return Open(f.Name())
}

func TestCorruptEveryByte(t *testing.T) {
	good := smallFile(t)
	dir := t.TempDir()
	x, err := openBytes(t, dir, good)
	if err != nil {
		t.Fatal(err)
	}
	x.Close()
	for off := range good {
		for _, flip := range []byte{0x01, 0x80, 0xFF} {
			b := bytes.Clone(good)
			b[off] ^= flip
			x, err := openBytes(t, dir, b)
			if !errors.Is(err, ErrCorrupt) {
				if x != nil {
					x.Close()
				}
				t.Fatalf("byte %d ^ %#x: Open = %v, want ErrCorrupt", off, flip, err)
			}
		}
	}
	for n := 0; n < len(good); n++ {
		if _, err := openBytes(t, dir, good[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: Open = %v, want ErrCorrupt", n, err)
		}
	}
	if _, err := openBytes(t, dir, append(bytes.Clone(good), 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("extended: Open = %v, want ErrCorrupt", err)
	}
}

// TestCorruptLarge flips bytes at many offsets of a file with fan-out.
func TestCorruptLarge(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "idx")
	rng := rand.New(rand.NewPCG(1, 2))
	write(t, dir, path, WriterOptions{}, genEntries(rng, 150000, 1, 8, true), []byte("m"))
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		off := rng.IntN(len(good))
		if i < 100 {
			off = i * 37 % headerLen(1)
		}
		b := bytes.Clone(good)
		b[off] ^= byte(1 + rng.IntN(255))
		if _, err := openBytes(t, dir, b); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d: Open = %v, want ErrCorrupt", off, err)
		}
	}
	for _, n := range []int{0, 1, 35, 100, len(good) / 2, len(good) - 4, len(good) - 1} {
		if _, err := openBytes(t, dir, good[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: Open = %v", n, err)
		}
	}
}

func TestOpenMissing(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "nope"))
	if err == nil || errors.Is(err, ErrCorrupt) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open(missing) = %v", err)
	}
}

func TestAbortAndErrorsLeaveNoTemps(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	entries := genEntries(rng, 5000, 1, 8, true)
	add := func(t *testing.T, dir string) *Writer {
		w, err := Create(dir, WriterOptions{MemoryLimit: 2 << 10})
		if err != nil {
			t.Fatal(err)
		}
		for i := range entries {
			if err := w.Add(&entries[i]); err != nil {
				t.Fatal(err)
			}
		}
		w.waitSpill() // w.parts is set by the spill goroutine
		if w.parts == nil {
			t.Fatal("no buckets; want spills")
		}
		return w
	}
	t.Run("abort", func(t *testing.T) {
		dir := t.TempDir()
		w := add(t, dir)
		w.Abort()
		w.Abort()
		assertOnly(t, dir)
		if err := w.Add(&entries[0]); !errors.Is(err, ErrClosed) {
			t.Fatalf("Add after Abort = %v", err)
		}
		if err := w.Commit(context.Background(), filepath.Join(dir, "x"), nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("Commit after Abort = %v", err)
		}
		assertOnly(t, dir)
	})
	t.Run("metadata-too-large", func(t *testing.T) {
		dir := t.TempDir()
		w := add(t, dir)
		if err := w.Commit(context.Background(), filepath.Join(dir, "x"), make([]byte, MaxMetadataLen+1)); err == nil {
			t.Fatal("accepted")
		}
		assertOnly(t, dir)
	})
	t.Run("cancelled", func(t *testing.T) {
		dir := t.TempDir()
		w := add(t, dir)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := w.Commit(ctx, filepath.Join(dir, "x"), nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("Commit = %v", err)
		}
		assertOnly(t, dir)
	})
	t.Run("bad-final-dir", func(t *testing.T) {
		dir := t.TempDir()
		w := add(t, dir)
		if err := w.Commit(context.Background(), filepath.Join(dir, "missing", "x"), nil); err == nil {
			t.Fatal("accepted")
		}
		assertOnly(t, dir)
	})
	t.Run("final-is-dir", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "x"), 0o700); err != nil {
			t.Fatal(err)
		}
		w := add(t, dir)
		if err := w.Commit(context.Background(), filepath.Join(dir, "x"), nil); err == nil {
			t.Fatal("rename over a directory succeeded")
		}
		assertOnly(t, dir, "x")
	})
}

func TestCrashLeavesFinalUntouched(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "idx")
	write(t, dir, path, WriterOptions{}, []Entry{{Serial: []byte{1}, Reason: 1, RevokedAt: baseTime}}, []byte("old"))
	old, _ := os.ReadFile(path)
	w, err := Create(dir, WriterOptions{MemoryLimit: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, e := range genEntries(rng, 3000, 1, 8, true) {
		if err := w.Add(&e); err != nil {
			t.Fatal(err)
		}
	}
	// The process "dies" here: no Commit, no Abort.
	now, _ := os.ReadFile(path)
	if !bytes.Equal(old, now) {
		t.Fatal("final path changed before Commit")
	}
	x, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(x.Metadata()) != "old" || x.Len(0) != 1 {
		t.Fatal("old index unreadable")
	}
	x.Close()
	// After the "crash", start-up clean-up removes the runs.
	if n, err := RemoveTemps(dir); err != nil || n == 0 {
		t.Fatalf("RemoveTemps = %d, %v", n, err)
	}
	assertOnly(t, dir, "idx")
	w.Abort()
	assertOnly(t, dir, "idx")
}

func TestReplaceWhileOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "idx")
	write(t, dir, path, WriterOptions{}, []Entry{{Serial: []byte{1}, Reason: 1, RevokedAt: baseTime}}, []byte("old"))
	oldX, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer oldX.Close()
	write(t, dir, path, WriterOptions{}, []Entry{{Serial: []byte{2}, Reason: 2, RevokedAt: baseTime}}, []byte("new"))
	assertOnly(t, dir, "idx")
	if _, ok := oldX.Lookup(0, []byte{1}, false); !ok || string(oldX.Metadata()) != "old" {
		t.Fatal("old reader lost its data")
	}
	if _, ok := oldX.Lookup(0, []byte{2}, false); ok {
		t.Fatal("old reader sees new data")
	}
	newX, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer newX.Close()
	if e, ok := newX.Lookup(0, []byte{2}, false); !ok || e.Reason != 2 || string(newX.Metadata()) != "new" {
		t.Fatal("new index wrong")
	}
	if _, ok := newX.Lookup(0, []byte{1}, false); ok {
		t.Fatal("new index has old entry")
	}
}

func TestClose(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "idx")
	rng := rand.New(rand.NewPCG(7, 8))
	entries := genEntries(rng, 1000, 1, 8, true)
	write(t, dir, path, WriterOptions{}, entries, nil)
	x, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				x.Lookup(0, entries[i%len(entries)].Serial, false)
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if err := x.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, ok := x.Lookup(0, entries[0].Serial, entries[0].Negative); ok {
		t.Fatal("Lookup after Close found an entry")
	}
	if err := x.Iterate(0, func(*Entry) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Iterate after Close = %v", err)
	}
	if string(x.Metadata()) != "" || x.Tables() != 1 {
		t.Fatal("accessors after Close")
	}
	// Close from inside Iterate.
	y, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = y.Iterate(0, func(*Entry) error {
		n++
		if n == 10 {
			return y.Close()
		}
		return nil
	})
	if !errors.Is(err, ErrClosed) || n != 10 {
		t.Fatalf("Iterate with Close inside: %v after %d", err, n)
	}
}

func TestLookupAllocs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "idx")
	rng := rand.New(rand.NewPCG(9, 10))
	entries := genEntries(rng, 200000, 1, 8, true)
	write(t, dir, path, WriterOptions{}, entries, nil)
	x, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	hit, miss := entries[5].Serial, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}
	if a := testing.AllocsPerRun(1000, func() { x.Lookup(0, hit, false); x.Lookup(0, miss, false) }); a != 0 {
		t.Fatalf("Lookup allocates %.1f times", a)
	}
}

func TestCommitToOtherDir(t *testing.T) {
	runDir, outDir := t.TempDir(), t.TempDir()
	path := filepath.Join(outDir, "idx")
	rng := rand.New(rand.NewPCG(13, 14))
	entries := genEntries(rng, 3000, 1, 8, true)
	w, err := Create(runDir, WriterOptions{MemoryLimit: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range entries {
		if err := w.Add(&entries[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(context.Background(), path, nil); err != nil {
		t.Fatal(err)
	}
	assertOnly(t, runDir)
	assertOnly(t, outDir, "idx")
	x, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	m := model{}
	for _, e := range entries {
		m.add(e)
	}
	checkIndex(t, x, m, 1, rng)
}

// TestTruncatedUnderMapping: a file cut short while mapped makes Find and
// Iterate fail with ErrUnreadable (no crash, no "not listed"), and Close
// still returns.
func TestTruncatedUnderMapping(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.kzi")
	rng := rand.New(rand.NewPCG(3, 4))
	entries := genEntries(rng, 200000, 1, 8, true)
	write(t, dir, path, WriterOptions{}, entries, nil)
	x, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.DropCaches(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	last := entries[100000]
	if _, ok, err := x.Find(0, last.Serial, last.Negative); !errors.Is(err, ErrUnreadable) || ok {
		t.Fatalf("Find after truncation: listed %v, err %v; want ErrUnreadable", ok, err)
	}
	if err := x.Iterate(0, func(*Entry) error { return nil }); !errors.Is(err, ErrUnreadable) {
		t.Fatalf("Iterate after truncation: %v, want ErrUnreadable", err)
	}
	done := make(chan error, 1)
	go func() { done <- x.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs after a fault")
	}
	if _, _, err := x.Find(0, last.Serial, last.Negative); !errors.Is(err, ErrClosed) {
		t.Errorf("Find after Close: %v, want ErrClosed", err)
	}
}

// TestBucketFallbacks drives the partitioned spill (partition.go) off its
// fast path: input whose later part falls outside the first buffer's
// distribution overflows one bucket, which must then be sorted in runs and
// merged (with more runs than one merge takes, so also reduced); input that
// starts in order and turns random merges the sorted run with the buckets.
// Duplicates across all of it must still resolve to the last one added.
func TestBucketFallbacks(t *testing.T) {
	cases := []struct {
		name                  string
		limit                 int
		wantOversized, wantRd bool
		gen                   func(rng *rand.Rand) []Entry
	}{
		{"skewed", 4 << 10, true, true, func(rng *rand.Rand) []Entry {
			// 300 random serials, then 20000 that share their first 5
			// bytes with each other (all in one bucket), with duplicates.
			out := genEntries(rng, 300, 1, 8, true)
			for i := 0; i < 20000; i++ {
				if i > 0 && rng.IntN(16) == 0 {
					d := out[300+rng.IntN(i)]
					d.Serial, d.Reason = bytes.Clone(d.Serial), rng.IntN(11)
					out = append(out, d)
					continue
				}
				s := []byte{0x7f, 1, 2, 3, 4, byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}
				out = append(out, Entry{Serial: s, Reason: rng.IntN(11), RevokedAt: baseTime})
			}
			return out
		}},
		{"long-keys-skewed", 8 << 10, true, false, func(rng *rand.Rand) []Entry {
			out := genEntries(rng, 500, 2, 20, false)
			for i := 0; i < 5000; i++ {
				s := append([]byte{0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55}, byte(i>>8), byte(i), byte(rng.Uint32()))
				out = append(out, Entry{Table: 1, Serial: s, Reason: rng.IntN(11), RevokedAt: baseTime})
			}
			return append(out, out[len(out)-100:]...)
		}},
		{"sorted-then-random", 64 << 10, false, false, func(rng *rand.Rand) []Entry {
			sorted := make([]Entry, 5000)
			for i := range sorted {
				sorted[i] = Entry{Serial: []byte{byte(i >> 8), byte(i)}, Reason: 1, RevokedAt: baseTime}
			}
			out := append(sorted, genEntries(rng, 1500, 1, 3, false)...)
			for i := 0; i < 200; i++ { // re-list some of the sorted ones
				d := sorted[rng.IntN(len(sorted))]
				d.Reason = 6
				out = append(out, d)
			}
			return out
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(tc.limit)))
			entries := tc.gen(rng)
			m := model{}
			for _, e := range entries {
				m.add(e)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "idx")
			w, err := Create(dir, WriterOptions{MemoryLimit: tc.limit, Tables: 2})
			if err != nil {
				t.Fatal(err)
			}
			for i := range entries {
				if err := w.Add(&entries[i]); err != nil {
					t.Fatal(err)
				}
			}
			w.waitSpill() // w.parts is set by the spill goroutine
			if w.parts == nil {
				w.Abort()
				t.Fatalf("no buckets (%d runs, buffer cap %d)", len(w.runs), cap(w.b.items))
			}
			if tc.name == "sorted-then-random" && len(w.runs) != 1 {
				t.Fatalf("%d sorted runs, want 1", len(w.runs))
			}
			if err := w.Commit(context.Background(), path, nil); err != nil {
				t.Fatal(err)
			}
			if got := w.oversized.Load() > 0; got != tc.wantOversized {
				t.Fatalf("oversized buckets: %d", w.oversized.Load())
			}
			if got := w.reductions.Load() > 0; got != tc.wantRd {
				t.Fatalf("merge reductions: %d", w.reductions.Load())
			}
			assertOnly(t, dir, "idx")
			x, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer x.Close()
			checkIndex(t, x, m, 2, rng)
		})
	}
}
