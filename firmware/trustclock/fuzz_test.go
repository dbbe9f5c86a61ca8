package trustclock

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzReadState feeds arbitrary bytes as the state file: Open must either
// fail or return a bound that re-encodes to a file Open accepts again with
// the same bound.
func FuzzReadState(f *testing.F) {
	good, err := encodeState(state{bound: time.Date(2026, 5, 1, 9, 0, 0, 5, time.UTC), source: SourceCRLThisUpdate})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(`{"version":1,"bound":"2026-05-01T09:00:00Z","source":"system","sha256":""}`))
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "state.json")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := readState(path)
		if err != nil {
			return
		}
		if st == nil {
			t.Fatal("nil state without error for an existing file")
		}
		again, err := encodeState(*st)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, again, 0o644); err != nil {
			t.Fatal(err)
		}
		st2, err := readState(path)
		if err != nil || !st2.bound.Equal(st.bound) || st2.source != st.source {
			t.Fatalf("round trip: %v, %+v vs %+v", err, st2, st)
		}
	})
}
