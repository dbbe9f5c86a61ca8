package verify

import (
	"bytes"
	"encoding/asn1"
	"testing"

	"github.com/kazashi/kazashi/firmware/crl"
)

// FuzzDistributionPoints feeds arbitrary bytes to the cRLDistributionPoints
// parser: it must not panic, and what it returns must be well formed.
func FuzzDistributionPoints(f *testing.F) {
	name := []byte{0x30, 0x0D, 0x31, 0x0B, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, 'J', 'P'}
	dirName := append([]byte{0xA4, byte(len(name))}, name...)
	full := append([]byte{0xA0, byte(len(dirName) + 2), 0xA0, byte(len(dirName))}, dirName...)
	rdn := name[2:] // SET { C=JP }
	relative := append([]byte{0xA0, byte(len(rdn)), 0xA1, byte(len(rdn) - 2)}, rdn[2:]...)
	issuer := append([]byte{0xA2, byte(len(dirName))}, dirName...)
	reasons := []byte{0x81, 0x02, 0x01, 0x60}
	for _, dp := range [][]byte{full, relative, append(append(slicesClone(full), reasons...), issuer...), issuer} {
		ext := append([]byte{0x30, byte(len(dp) + 2), 0x30, byte(len(dp))}, dp...)
		if _, err := parseCRLDistributionPoints(ext); err != nil {
			f.Fatalf("seed % X: %v", ext, err)
		}
		f.Add(ext)
	}
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte{0x30, 0x02, 0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		dps, err := parseCRLDistributionPoints(b)
		if err != nil {
			return
		}
		for _, dp := range dps {
			if dp.reasons&^crl.AllReasons != 0 {
				t.Fatalf("reasons %#x", dp.reasons)
			}
			if dp.relative != nil {
				if dp.relative[0] != 0x31 {
					t.Fatalf("relative name % X is not a SET", dp.relative)
				}
				if n, ok := appendRDN(name, dp.relative); ok {
					var v asn1.RawValue
					if rest, err := asn1.Unmarshal(n, &v); err != nil || len(rest) > 0 || !bytes.HasPrefix(v.Bytes, name[2:]) {
						t.Fatalf("appendRDN: % X", n)
					}
				}
			}
			for _, n := range dp.crlIssuer {
				if gn := directoryGeneralName(n); !bytes.Contains(gn, n) {
					t.Fatal("directoryGeneralName lost the name")
				}
			}
		}
	})
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

func TestParseCRLDistributionPoints(t *testing.T) {
	name := []byte{0x30, 0x0D, 0x31, 0x0B, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, 'J', 'P'}
	dirName := append([]byte{0xA4, byte(len(name))}, name...)
	full := append([]byte{0xA0, byte(len(dirName) + 2), 0xA0, byte(len(dirName))}, dirName...)
	issuer := append([]byte{0xA2, byte(len(dirName))}, dirName...)
	reasons := []byte{0x81, 0x02, 0x01, 0x60} // keyCompromise, cACompromise
	dp := append(append(slicesClone(full), reasons...), issuer...)
	dps, err := parseCRLDistributionPoints(append([]byte{0x30, byte(len(dp) + 2), 0x30, byte(len(dp))}, dp...))
	if err != nil {
		t.Fatal(err)
	}
	if len(dps) != 1 || len(dps[0].fullName) != 1 || !bytes.Equal(dps[0].fullName[0], dirName) ||
		dps[0].reasons != 0x06 || len(dps[0].crlIssuer) != 1 || !bytes.Equal(dps[0].crlIssuer[0], name) {
		t.Errorf("%+v", dps)
	}
	if got, ok := appendRDN(name, name[2:]); !ok || !bytes.Equal(got, append([]byte{0x30, 0x1A}, append(slicesClone(name[2:]), name[2:]...)...)) {
		t.Errorf("appendRDN: % X", got)
	}
	for _, bad := range [][]byte{
		{0x30, 0x00}, // empty
		{0x30, 0x06, 0x30, 0x04, 0x81, 0x02, 0x00, 0x00},       // no reason set
		{0x30, 0x08, 0x30, 0x06, 0xA2, 0x00, 0xA0, 0x00, 0, 0}, // out of order
	} {
		if _, err := parseCRLDistributionPoints(bad); err == nil {
			t.Errorf("% X accepted", bad)
		}
	}
}
