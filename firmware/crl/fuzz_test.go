package crl

import (
	"bytes"
	"crypto/x509"
	"errors"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add(rsaCRL(f))
	r := mrand.New(mrand.NewPCG(5, 6))
	for _, ca := range []string{"p256", "rsa"} {
		tmpl, _ := randomCRL(r, 4)
		f.Add(mustCRL(f, testCAs()[ca], tmpl))
	}
	f.Add(handCRL([][]byte{entryDER(raw(1), reasonExt(1)), entryDER(raw(0xff), ext(oidCertIssuer, true, tlv(0x30, tlv(0xa4, handIssuer))))},
		ext(oidCRLNumber, false, tlv(0x02, raw(3))), ext(oidIDPExt, true, tlv(0x30, tlv(0xa0, tlv(0xa0, tlv(0x86, []byte("u")))), tlv(0x83, raw(0x07, 0x60, 0x80)), tlv(0x84, raw(0xff))))))
	f.Add(hand(algSHA256RSA, algSHA256RSA, handIssuer, handThis, tlv(0x30, entryDER(raw(1)))))
	for _, name := range []string{"GoodCACRL.crl", "indirectCRLCA5CRL.crl", "deltaCRLCA1deltaCRL.crl", "distributionPoint2CACRL.crl",
		"onlySomeReasonsCA1compromiseCRL.crl", "UnknownCRLEntryExtensionCACRL.crl", "NegativeSerialNumberCACRL.crl", "DSACACRL.crl",
		"BadCRLSignatureCACRL.crl", "GeneralizedTimeCRLnextUpdateCACRL.crl"} {
		b, err := os.ReadFile(filepath.Join("../../testdata/pkits/crls", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, es, err := parseAll(t, b)
		if err != nil {
			if p != nil {
				t.Fatal("result with error")
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error of unexpected kind: %v", err)
			}
			return
		}
		if p.Entries != int64(len(es)) || p.Size != int64(len(b)) {
			t.Fatalf("Entries %d, callbacks %d, Size %d of %d", p.Entries, len(es), p.Size, len(b))
		}
		p2, es2, err := parseAll(t, b)
		if err != nil || !reflect.DeepEqual(p, p2) || !reflect.DeepEqual(es, es2) {
			t.Fatalf("re-parse differs: %v", err)
		}
		std, err := x509.ParseRevocationList(b)
		if err != nil {
			return
		}
		if !bytes.Equal(std.RawIssuer, p.RawIssuer) || !std.ThisUpdate.Equal(p.ThisUpdate) || !std.NextUpdate.Equal(p.NextUpdate) ||
			(std.Number == nil) != (p.Number == nil) || (p.Number != nil && p.Number.Cmp(std.Number) != 0) ||
			len(std.RevokedCertificateEntries) != len(es) {
			t.Fatalf("differs from stdlib:\n ours %+v\n std  %+v", p.Info, std)
		}
		for i, se := range std.RevokedCertificateEntries {
			s := new(big.Int).SetBytes(es[i].Serial)
			if es[i].Negative {
				s.Neg(s)
			}
			if s.Cmp(se.SerialNumber) != 0 || !es[i].RevokedAt.Equal(se.RevocationTime) {
				t.Fatalf("entry %d differs from stdlib", i)
			}
		}
	})
}
