package crlindex

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fixCRCs rewrites size, offsets and checksums of a (mutated) file so that
// the fuzzer gets past the checksums to the structural checks behind them.
func fixCRCs(b []byte) []byte {
	b = bytes.Clone(b)
	le := binary.LittleEndian
	if len(b) < fixedHeaderLen+4 {
		return b
	}
	t := int(le.Uint32(b[12:]))
	if t < 1 || t > 4 {
		return b
	}
	hl := headerLen(t)
	if len(b) < hl {
		return b
	}
	le.PutUint64(b[16:], uint64(len(b)))
	ml := int(le.Uint32(b[24:]))
	if hl+ml > len(b) {
		ml = len(b) - hl
		le.PutUint32(b[24:], uint32(ml))
	}
	le.PutUint32(b[28:], crc32.Checksum(b[hl:hl+ml], castagnoli))
	pos := hl + ml
	for s := 0; s < 2*t; s++ {
		d := b[fixedHeaderLen+s*descLen:]
		w, p, n := int(le.Uint16(d)), int(d[2]), int(le.Uint32(d[4:]))
		fl := 0
		if p == 16 {
			fl = fanLen
		}
		el := n * (w - p/8 + 4)
		if el < 0 || n > len(b) {
			break
		}
		le.PutUint64(d[8:], uint64(pos))
		le.PutUint64(d[16:], uint64(pos+fl))
		end := pos + fl + el
		if end > len(b) {
			break
		}
		le.PutUint32(d[24:], crc32.Checksum(b[pos:pos+fl], castagnoli))
		le.PutUint32(d[28:], crc32.Checksum(b[pos+fl:end], castagnoli))
		pos = end
	}
	le.PutUint32(b[hl-4:], crc32.Checksum(b[:hl-4], castagnoli))
	return b
}

// exercise uses every accessor of x; every iterated entry must be found by
// Lookup with the same attributes.
func exercise(t *testing.T, x *Index) {
	x.Metadata()
	x.Len(-1)
	x.Len(x.Tables())
	for tb := 0; tb < x.Tables(); tb++ {
		n := 0
		err := x.Iterate(tb, func(e *Entry) error {
			n++
			got, ok := x.Lookup(tb, e.Serial, e.Negative)
			if !ok || !entryEqual(got, *e) {
				t.Fatalf("iterated entry not found by Lookup: %+v → %+v, %v", *e, got, ok)
			}
			longer := append(bytes.Clone(e.Serial), 0)
			x.Lookup(tb, longer, e.Negative)
			x.Lookup(tb, longer[1:], !e.Negative)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n != x.Len(tb) {
			t.Fatalf("Iterate yielded %d, Len %d", n, x.Len(tb))
		}
		for _, s := range [][]byte{nil, {0}, {1}, {0xFF, 0xFF, 0xFF}, bytes.Repeat([]byte{0xFF}, 30)} {
			x.Lookup(tb, s, false)
			x.Lookup(tb, s, true)
		}
	}
}

func FuzzOpen(f *testing.F) {
	good := smallFile(f)
	f.Add(good)
	for _, off := range []int{0, 8, 12, 16, 24, 32, 34, 36, 40, 200, len(good) - 5, len(good) - 1} {
		if off < len(good) {
			b := bytes.Clone(good)
			b[off] ^= 0x5A
			f.Add(b)
		}
	}
	f.Add(good[:len(good)/2])
	f.Add([]byte(magic))
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range [][]byte{b, fixCRCs(b)} {
			x, err := openBytes(t, dir, v)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Open = %v, want ErrCorrupt or success", err)
				}
				continue
			}
			exercise(t, x)
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// entriesFromBytes decodes a fuzz input into entries: per entry one byte
// table/sign/reason, one byte length, the serial, two bytes of time.
func entriesFromBytes(b []byte) []Entry {
	var out []Entry
	for len(b) >= 4 {
		c, l := b[0], int(b[1]%22)
		b = b[2:]
		if l > len(b) {
			l = len(b)
		}
		s := b[:l]
		b = b[l:]
		var tm uint16
		if len(b) >= 2 {
			tm = binary.LittleEndian.Uint16(b)
			b = b[2:]
		}
		out = append(out, Entry{
			Table:     uint16(c % 3),
			Negative:  c&0x80 != 0,
			Reason:    int(c>>3&0x0F)%12 - 1,
			Serial:    s,
			RevokedAt: baseTime.Add(time.Duration(tm) * 17 * time.Second),
		})
	}
	return out
}

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{0, 1, 5, 0, 0, 0x81, 2, 1, 2, 3, 4}, uint16(0))
	f.Add([]byte{2, 0, 0, 0, 2, 0, 0, 0, 1, 3, 0, 0, 1, 7, 7, 1}, uint16(1))
	f.Add(bytes.Repeat([]byte{1, 8, 0, 0, 0, 0, 0, 0, 0, 9, 1, 2}, 40), uint16(1))
	skipSync = true
	defer func() { skipSync = false }()
	f.Fuzz(func(t *testing.T, b []byte, limit uint16) {
		entries := entriesFromBytes(b)
		m := model{}
		for _, e := range entries {
			m.add(e)
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "idx")
		write(t, dir, path, WriterOptions{Tables: 3, MemoryLimit: int(limit)}, entries, b[:min(len(b), 7)])
		assertOnly(t, dir, "idx")
		x, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer x.Close()
		for tb := 0; tb < 3; tb++ {
			want := m.sorted(uint16(tb))
			i := 0
			x.Iterate(tb, func(e *Entry) error {
				if i >= len(want) || !entryEqual(*e, want[i]) {
					t.Fatalf("table %d entry %d: %+v", tb, i, *e)
				}
				i++
				return nil
			})
			if i != len(want) {
				t.Fatalf("table %d: %d entries, want %d", tb, i, len(want))
			}
		}
		for _, e := range m {
			if got, ok := x.Lookup(int(e.Table), e.Serial, e.Negative); !ok || !entryEqual(got, e) {
				t.Fatalf("Lookup %+v: %+v %v", e, got, ok)
			}
		}
		exercise(t, x)
	})
}

// TestStructuralCorruption damages a fan-out index behind valid checksums:
// Open must refuse it or yield an index that behaves.
func TestStructuralCorruption(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "idx")
	rng := rand.New(rand.NewPCG(11, 12))
	write(t, dir, path, WriterOptions{}, genEntries(rng, 140000, 1, 3, true), []byte("m"))
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	x, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	st := x.sets[1]
	x.Close()
	if st.p != 16 || st.kw != 1 {
		t.Fatalf("set 1: P=%d kw=%d; want a fan-out", st.p, st.kw)
	}
	le := binary.LittleEndian
	hl := headerLen(1) + 1
	negLen := x.sets[0].n * x.sets[0].rec
	fanOff := hl + negLen
	entOff := fanOff + fanLen
	for _, c := range []struct {
		name string
		mut  func(b []byte)
	}{
		{"fan entry past N", func(b []byte) { le.PutUint32(b[fanOff+4*100:], uint32(st.n+5)) }},
		{"fan decreases", func(b []byte) { le.PutUint32(b[fanOff+4*100:], le.Uint32(b[fanOff+4*99:])-1) }},
		{"fan end not N", func(b []byte) { le.PutUint32(b[fanOff+fanLen-4:], uint32(st.n-1)) }},
		{"fan start not 0", func(b []byte) { le.PutUint32(b[fanOff:], 1) }},
		{"keys swapped", func(b []byte) { b[entOff], b[entOff+st.rec] = b[entOff+st.rec], b[entOff] }},
		{"duplicate key", func(b []byte) { b[entOff+st.rec] = b[entOff] }},
		{"reason 12", func(b []byte) { b[entOff+st.rec*7+st.kw+3] = 0xC0 }},
		{"prefix 8", func(b []byte) { b[fixedHeaderLen+descLen+2] = 8 }},
		{"reserved", func(b []byte) { b[fixedHeaderLen+3] = 1 }},
		{"version", func(b []byte) { b[8] = formatVersion + 1 }},
		{"version 1", func(b []byte) { b[8] = 1 }},
	} {
		b := bytes.Clone(good)
		c.mut(b)
		if _, err := openBytes(t, dir, fixCRCs(b)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Open = %v, want ErrCorrupt", c.name, err)
		}
	}
	for i := 0; i < 40; i++ {
		b := bytes.Clone(good)
		for k := 0; k < 1+rng.IntN(3); k++ {
			b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		}
		if x, err := openBytes(t, dir, fixCRCs(b)); err == nil {
			exercise(t, x)
			x.Close()
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatal(err)
		}
	}
}
