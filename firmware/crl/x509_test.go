package crl

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	mrand "math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var (
	caOnce sync.Once
	cas    map[string]*testCA
)

func mkCA(name string, key crypto.Signer, ku x509.KeyUsage) *testCA {
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Kazashi test"}},
		NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              ku,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          []byte(name),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		panic(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return &testCA{c, key}
}

// testCAs: "rsa" (2048), "p256", "p384", "other" (another RSA CA), and
// "rsa-nocrlsign" (the rsa CA's subject and key without cRLSign).
func testCAs() map[string]*testCA {
	caOnce.Do(func() {
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		ok, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		ku := x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		cas = map[string]*testCA{
			"rsa":           mkCA("RSA CA", rk, ku),
			"p256":          mkCA("P-256 CA", p256, ku),
			"p384":          mkCA("P-384 CA", p384, ku),
			"other":         mkCA("Other CA", ok, ku),
			"rsa-nocrlsign": mkCA("RSA CA", rk, x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature),
			"rsa-noku":      mkCA("RSA CA", rk, 0),
		}
	})
	return cas
}

func mustCRL(t testing.TB, ca *testCA, tmpl *x509.RevocationList) []byte {
	t.Helper()
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// rsaCRL is a small signed RSA CRL with two entries.
func rsaCRL(t testing.TB) []byte {
	ca := testCAs()["rsa"]
	return mustCRL(t, ca, &x509.RevocationList{
		Number:     big.NewInt(7),
		ThisUpdate: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NextUpdate: time.Date(2025, 1, 8, 0, 0, 0, 0, time.UTC),
		RevokedCertificateEntries: []x509.RevocationListEntry{
			{SerialNumber: big.NewInt(0x0102030405), RevocationTime: time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC), ReasonCode: 1},
			{SerialNumber: big.NewInt(99), RevocationTime: time.Date(2024, 6, 2, 12, 0, 0, 0, time.UTC)},
		},
	})
}

func mustMarshalGen(t time.Time) []byte {
	b, err := asn1.MarshalWithParams(t, "generalized")
	if err != nil {
		panic(err)
	}
	return b
}

func mustMarshal(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

var (
	asnReason      = asn1.ObjectIdentifier{2, 5, 29, 21}
	asnInvalidity  = asn1.ObjectIdentifier{2, 5, 29, 24}
	asnCertIssuer  = asn1.ObjectIdentifier{2, 5, 29, 29}
	asnDelta       = asn1.ObjectIdentifier{2, 5, 29, 27}
	asnIDP         = asn1.ObjectIdentifier{2, 5, 29, 28}
	asnFreshest    = asn1.ObjectIdentifier{2, 5, 29, 46}
	asnPrivateCrit = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 55555, 1}
)

func randName(r *mrand.Rand) []byte {
	n := pkix.Name{CommonName: "cert issuer " + string(rune('A'+r.IntN(26))), Organization: []string{"Org"}}
	return mustMarshal(n.ToRDNSequence())
}

// randomCRL builds a random CRL template and the expected IDP (if any).
func randomCRL(r *mrand.Rand, nEntries int) (*x509.RevocationList, *IDP) {
	randTime := func() time.Time {
		// 1950..2099, whole seconds: UTCTime before 2050, GeneralizedTime after
		return time.Unix(r.Int64N(4733510400)-631152000, 0).UTC()
	}
	tmpl := &x509.RevocationList{
		Number:     new(big.Int).SetUint64(r.Uint64()),
		ThisUpdate: randTime(),
	}
	// x509.CreateRevocationList always writes nextUpdate (its absence is
	// covered by the hand-built CRLs).
	tmpl.NextUpdate = tmpl.ThisUpdate.Add(time.Duration(r.IntN(100000)+1) * time.Hour)
	var idp *IDP
	for e := range 3 {
		if r.IntN(3) != 0 {
			continue
		}
		switch e {
		case 0: // delta
			tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: asnDelta, Critical: true, Value: mustMarshal(big.NewInt(r.Int64N(1 << 40)))})
		case 1: // IDP
			idp = &IDP{}
			var fields [][]byte
			if r.IntN(2) == 0 {
				dn := tlv(0xa4, randName(r))
				u := tlv(0x86, []byte("http://crl.example/x.crl"))
				fields = append(fields, tlv(0xa0, tlv(0xa0, dn, u)))
				idp.FullName = [][]byte{dn, u}
			}
			if r.IntN(3) == 0 {
				fields = append(fields, tlv(0x81, raw(0xff)))
				idp.OnlyUser = true
			} else if r.IntN(2) == 0 {
				fields = append(fields, tlv(0x82, raw(0xff)))
				idp.OnlyCA = true
			}
			if r.IntN(2) == 0 {
				fields = append(fields, tlv(0x83, raw(0x01, 0x9e))) // bits 0,3,4,5,6 -> 0 dropped
				idp.OnlySomeReasons = 1<<3 | 1<<4 | 1<<5 | 1<<6
			}
			if r.IntN(2) == 0 {
				fields = append(fields, tlv(0x84, raw(0xff)))
				idp.Indirect = true
			}
			idp.Raw = tlv(0x30, fields...)
			tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: asnIDP, Critical: true, Value: idp.Raw})
		case 2:
			tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: asnFreshest, Value: tlv(0x30, tlv(0x30, tlv(0xa0, tlv(0xa0, tlv(0x86, []byte("http://d/"))))))})
		}
	}
	reasons := []int{1, 2, 3, 4, 5, 6, 8, 9, 10}
	for range nEntries {
		var serial *big.Int
		switch r.IntN(5) {
		case 0:
			serial = big.NewInt(r.Int64N(300))
		case 1:
			serial = new(big.Int).SetBytes(randBytes(r, 20))
		default:
			serial = new(big.Int).SetUint64(r.Uint64())
		}
		if r.IntN(20) == 0 {
			serial.Neg(serial)
		}
		e := x509.RevocationListEntry{SerialNumber: serial, RevocationTime: randTime()}
		if r.IntN(2) == 0 {
			e.ReasonCode = reasons[r.IntN(len(reasons))]
		}
		if r.IntN(8) == 0 {
			e.ExtraExtensions = append(e.ExtraExtensions, pkix.Extension{Id: asnInvalidity, Value: mustMarshalGen(randTime())})
		}
		if r.IntN(8) == 0 {
			gn := tlv(0x30, tlv(0x86, []byte("http://ca/")), tlv(0xa4, randName(r)))
			if r.IntN(4) == 0 {
				gn = tlv(0x30, tlv(0x82, []byte("ca.example")))
			}
			e.ExtraExtensions = append(e.ExtraExtensions, pkix.Extension{Id: asnCertIssuer, Critical: true, Value: gn})
		}
		if r.IntN(16) == 0 {
			e.ExtraExtensions = append(e.ExtraExtensions, pkix.Extension{Id: asnPrivateCrit, Critical: r.IntN(2) == 0, Value: tlv(0x05)})
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, e)
	}
	return tmpl, idp
}

func randBytes(r *mrand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// expectedCertIssuer computes the §5.3.3 carried-forward issuer from the
// stdlib's view of the entries.
func stdCertIssuer(exts []pkix.Extension) (found bool, name []byte, nonDir bool) {
	for _, x := range exts {
		if !x.Id.Equal(asnCertIssuer) {
			continue
		}
		var gns []asn1.RawValue
		if _, err := asn1.Unmarshal(x.Value, &gns); err != nil {
			panic(err)
		}
		for _, g := range gns {
			if g.Class == asn1.ClassContextSpecific && g.Tag == 4 {
				return true, g.Bytes, false
			}
		}
		return true, nil, true
	}
	return false, nil, false
}

// compareWithStdlib checks Parse's results against x509.ParseRevocationList.
func compareWithStdlib(t testing.TB, der []byte, p *Parsed, es []gotEntry) {
	t.Helper()
	std, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("stdlib: %v", err)
	}
	if p.Version != 2 || p.SignatureAlgorithm != std.SignatureAlgorithm || !bytes.Equal(p.RawIssuer, std.RawIssuer) ||
		!p.ThisUpdate.Equal(std.ThisUpdate) || !p.NextUpdate.Equal(std.NextUpdate) ||
		(p.Number == nil) != (std.Number == nil) || (p.Number != nil && p.Number.Cmp(std.Number) != 0) ||
		!bytes.Equal(p.AuthorityKeyID, std.AuthorityKeyId) || !bytes.Equal(p.Signature, std.Signature) ||
		p.Size != int64(len(der)) || p.SHA256 != sha256.Sum256(der) || p.Entries != int64(len(std.RevokedCertificateEntries)) {
		t.Fatalf("info mismatch:\n ours %+v\n std  %+v", p.Info, std)
	}
	h := p.Hash.New()
	h.Write(std.RawTBSRevocationList)
	if !bytes.Equal(h.Sum(nil), p.Digest) {
		t.Fatal("digest mismatch")
	}
	var base *big.Int
	var freshest bool
	for _, x := range std.Extensions {
		switch {
		case x.Id.Equal(asnDelta):
			base = new(big.Int)
			if _, err := asn1.Unmarshal(x.Value, &base); err != nil {
				t.Fatal(err)
			}
		case x.Id.Equal(asnFreshest):
			freshest = true
		}
	}
	if (base == nil) != (p.BaseNumber == nil) || (base != nil && base.Cmp(p.BaseNumber) != 0) || freshest != p.FreshestCRL {
		t.Fatalf("delta/freshest mismatch: %v %v / %v %v", base, p.BaseNumber, freshest, p.FreshestCRL)
	}
	if len(es) != len(std.RevokedCertificateEntries) {
		t.Fatalf("%d entries, stdlib %d", len(es), len(std.RevokedCertificateEntries))
	}
	var ci []byte
	var nonDir, anyCI bool
	var unknownCrit int64
	for i, se := range std.RevokedCertificateEntries {
		g := es[i]
		gs := new(big.Int).SetBytes(g.Serial)
		if g.Negative {
			gs.Neg(gs)
		}
		reason := ReasonAbsent
		crit := false
		for _, x := range se.Extensions {
			if x.Id.Equal(asnReason) {
				reason = se.ReasonCode
			} else if x.Critical && !x.Id.Equal(asnInvalidity) && !x.Id.Equal(asnCertIssuer) {
				crit = true
			}
		}
		if found, n, nd := stdCertIssuer(se.Extensions); found {
			ci, nonDir, anyCI = n, nd, true
		}
		if crit {
			unknownCrit++
		}
		if g.Index != int64(i) || gs.Cmp(se.SerialNumber) != 0 || !g.RevokedAt.Equal(se.RevocationTime) || g.Reason != reason ||
			!bytes.Equal(g.CertificateIssuer, ci) || g.NonDirectory != nonDir || g.UnknownCritical != crit ||
			(len(g.Serial) > 0 && g.Serial[0] == 0) {
			t.Fatalf("entry %d: ours %+v, std %+v", i, g, se)
		}
	}
	if p.EntryUnknownCritical != unknownCrit || p.HasCertificateIssuer != anyCI {
		t.Fatalf("entry counters %d %v, want %d %v", p.EntryUnknownCritical, p.HasCertificateIssuer, unknownCrit, anyCI)
	}
}

func TestDifferentialStdlib(t *testing.T) {
	cas := testCAs()
	type kind struct {
		ca  string
		alg x509.SignatureAlgorithm
	}
	kinds := []kind{
		{"rsa", x509.SHA256WithRSA}, {"rsa", x509.SHA384WithRSA}, {"rsa", x509.SHA512WithRSA},
		{"rsa", x509.SHA256WithRSAPSS}, {"rsa", x509.SHA384WithRSAPSS}, {"rsa", x509.SHA512WithRSAPSS},
		{"p256", x509.ECDSAWithSHA256}, {"p384", x509.ECDSAWithSHA384}, {"p256", x509.ECDSAWithSHA512},
	}
	n := 120
	if testing.Short() {
		n = 20
	}
	r := mrand.New(mrand.NewPCG(1, 2))
	for i := range n {
		k := kinds[i%len(kinds)]
		nEntries := []int{0, 1, 2, 5, 40, 300}[r.IntN(6)]
		tmpl, idp := randomCRL(r, nEntries)
		tmpl.SignatureAlgorithm = k.alg
		der := mustCRL(t, cas[k.ca], tmpl)
		p, es, err := parseAll(t, der)
		if err != nil {
			t.Fatalf("crl %d (%v, %d entries): %v", i, k.alg, nEntries, err)
		}
		compareWithStdlib(t, der, p, es)
		if (idp == nil) != (p.IDP == nil) {
			t.Fatalf("crl %d: IDP %+v, want %+v", i, p.IDP, idp)
		}
		if idp != nil {
			g := *p.IDP
			if !bytes.Equal(g.Raw, idp.Raw) || len(g.FullName) != len(idp.FullName) || g.OnlyUser != idp.OnlyUser ||
				g.OnlyCA != idp.OnlyCA || g.Indirect != idp.Indirect || g.OnlyAttr || g.OnlySomeReasons != idp.OnlySomeReasons {
				t.Fatalf("crl %d: IDP %+v, want %+v", i, g, idp)
			}
			for j := range idp.FullName {
				if !bytes.Equal(g.FullName[j], idp.FullName[j]) {
					t.Fatalf("crl %d: fullName %d", i, j)
				}
			}
		}
		if err := p.CheckSignatureFrom(cas[k.ca].cert); err != nil {
			t.Fatalf("crl %d (%v): signature: %v", i, k.alg, err)
		}
		// one byte at a time through the reader: same result
		p2, err := Parse(context.Background(), &oneByteReader{der}, nil)
		if err != nil || p2.SHA256 != p.SHA256 || !bytes.Equal(p2.Digest, p.Digest) || p2.Entries != p.Entries {
			t.Fatalf("crl %d: byte-wise parse differs: %v", i, err)
		}
	}
}

func TestSignature(t *testing.T) {
	cas := testCAs()
	der := rsaCRL(t)
	p, _, err := parseAll(t, der)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckSignatureFrom(cas["rsa"].cert); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	if err := p.CheckSignature(cas["rsa"].cert.PublicKey); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	if err := p.CheckSignatureFrom(cas["rsa-noku"].cert); err != nil {
		t.Fatalf("issuer without keyUsage extension: %v", err)
	}
	if err := p.CheckSignatureFrom(cas["other"].cert); !errors.Is(err, ErrNotIssuer) {
		t.Errorf("other CA: %v", err)
	}
	if err := p.CheckSignatureFrom(nil); !errors.Is(err, ErrNotIssuer) {
		t.Errorf("nil issuer: %v", err)
	}
	if err := p.CheckSignatureFrom(cas["rsa-nocrlsign"].cert); !errors.Is(err, ErrNoCRLSign) {
		t.Errorf("no cRLSign: %v", err)
	}
	if err := p.CheckSignature(cas["other"].cert.PublicKey); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other key: %v", err)
	}
	if err := p.CheckSignature(cas["p256"].cert.PublicKey); !errors.Is(err, ErrBadSignature) {
		t.Errorf("wrong key type: %v", err)
	}

	// One flipped bit in the TBS (the last bit of serial 0x0102030405).
	i := bytes.Index(der, raw(0x02, 0x05, 0x01, 0x02, 0x03, 0x04, 0x05))
	if i < 0 {
		t.Fatal("serial not found")
	}
	bad := bytes.Clone(der)
	bad[i+6] ^= 1
	pb, es, err := parseAll(t, bad)
	if err != nil {
		t.Fatal(err)
	}
	if es[0].Serial[4] != 0x04 {
		t.Fatalf("flip missed: %x", es[0].Serial)
	}
	if err := pb.CheckSignatureFrom(cas["rsa"].cert); !errors.Is(err, ErrBadSignature) {
		t.Errorf("flipped TBS bit: %v", err)
	}
	// One flipped bit in the signature.
	bad = bytes.Clone(der)
	bad[len(bad)-1] ^= 0x80
	pb, _, _ = parseAll(t, bad)
	if err := pb.CheckSignatureFrom(cas["rsa"].cert); !errors.Is(err, ErrBadSignature) {
		t.Errorf("flipped signature bit: %v", err)
	}

	// ECDSA: positive, flipped bit, wrong curve key.
	for _, c := range []struct {
		ca  string
		alg x509.SignatureAlgorithm
	}{{"p256", x509.ECDSAWithSHA256}, {"p384", x509.ECDSAWithSHA384}} {
		der := mustCRL(t, cas[c.ca], &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now().UTC().Truncate(time.Second), NextUpdate: time.Now().Add(time.Hour), SignatureAlgorithm: c.alg,
			RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(0x0102030405), RevocationTime: time.Now()}}})
		p, _, err := parseAll(t, der)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.CheckSignatureFrom(cas[c.ca].cert); err != nil {
			t.Errorf("%s: %v", c.ca, err)
		}
		if err := p.CheckSignature(cas["rsa"].cert.PublicKey); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s with RSA key: %v", c.ca, err)
		}
		other := "p384"
		if c.ca == other {
			other = "p256"
		}
		if err := p.CheckSignature(cas[other].cert.PublicKey); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s with %s key: %v", c.ca, other, err)
		}
		i := bytes.Index(der, raw(0x02, 0x05, 0x01, 0x02, 0x03, 0x04, 0x05))
		bad := bytes.Clone(der)
		bad[i+6] ^= 1
		pb, _, _ := parseAll(t, bad)
		if err := pb.CheckSignatureFrom(cas[c.ca].cert); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s flipped: %v", c.ca, err)
		}
	}

	// Algorithms that parse but are refused.
	for _, alg := range []x509.SignatureAlgorithm{x509.SHA1WithRSA, x509.MD5WithRSA, x509.DSAWithSHA1, x509.PureEd25519} {
		p := &Parsed{Info: Info{SignatureAlgorithm: alg}}
		if err := p.CheckSignature(cas["rsa"].cert.PublicKey); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%v: %v", alg, err)
		}
	}
}

// TestPSSParams: RSASSA-PSS parameters are parsed, not compared to fixed
// encodings (absent hash parameters are fine; other hashes are not).
func TestPSSParams(t *testing.T) {
	pssOID := raw(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a)
	h := func(oid []byte, null bool) []byte {
		if null {
			return tlv(0x30, tlv(0x06, oid), tlv(0x05))
		}
		return tlv(0x30, tlv(0x06, oid))
	}
	params := func(hash []byte, mgfHash []byte, salt, trailer int) []byte {
		var f [][]byte
		if hash != nil {
			f = append(f, tlv(0xa0, hash))
		}
		if mgfHash != nil {
			f = append(f, tlv(0xa1, tlv(0x30, tlv(0x06, oidMGF1), mgfHash)))
		}
		if salt >= 0 {
			f = append(f, tlv(0xa2, tlv(0x02, raw(byte(salt)))))
		}
		if trailer >= 0 {
			f = append(f, tlv(0xa3, tlv(0x02, raw(byte(trailer)))))
		}
		return tlv(0x30, tlv(0x06, pssOID), tlv(0x30, f...))
	}
	sha1OID := raw(0x2b, 0x0e, 0x03, 0x02, 0x1a)
	cases := []struct {
		name string
		alg  []byte
		want x509.SignatureAlgorithm
		salt int
		kind error
	}{
		{"sha256 null", params(h(oidSHA256, true), h(oidSHA256, true), 32, -1), x509.SHA256WithRSAPSS, 32, nil},
		{"sha384 absent, trailer", params(h(oidSHA384, false), h(oidSHA384, false), 48, 1), x509.SHA384WithRSAPSS, 48, nil},
		{"sha512 salt 20 default", params(h(oidSHA512, true), h(oidSHA512, true), -1, -1), x509.SHA512WithRSAPSS, 20, nil},
		{"default sha1", params(nil, nil, -1, -1), 0, 0, ErrUnsupported},
		{"sha1", params(h(sha1OID, true), h(sha1OID, true), 20, -1), 0, 0, ErrUnsupported},
		{"mgf hash differs", params(h(oidSHA256, true), h(oidSHA384, true), 32, -1), 0, 0, ErrUnsupported},
		{"trailer 2", params(h(oidSHA256, true), h(oidSHA256, true), 32, 2), 0, 0, ErrUnsupported},
		{"hash params INTEGER", params(tlv(0x30, tlv(0x06, oidSHA256), tlv(0x02, raw(0))), h(oidSHA256, true), 32, -1), 0, 0, ErrMalformed},
		{"fields out of order", tlv(0x30, tlv(0x06, pssOID), tlv(0x30, tlv(0xa2, tlv(0x02, raw(32))), tlv(0xa0, h(oidSHA256, true)))), 0, 0, ErrMalformed},
		{"no params", tlv(0x30, tlv(0x06, pssOID)), 0, 0, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, _, err := parseAll(t, hand(c.alg, handVersion, c.alg, handIssuer, handThis))
			if c.kind != nil {
				if !errors.Is(err, c.kind) {
					t.Fatalf("err = %v, want %v", err, c.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.SignatureAlgorithm != c.want || p.pssSalt != c.salt {
				t.Errorf("got %v salt %d", p.SignatureAlgorithm, p.pssSalt)
			}
		})
	}
}

// TestLargeEntriesAcrossRefills: enough entries that the TBS hash spans
// many buffer refills and moves to the hasher goroutine; compared with the
// stdlib. Errors and truncation in that mode stop the goroutine.
func TestLargeEntriesAcrossRefills(t *testing.T) {
	r := mrand.New(mrand.NewPCG(3, 4))
	tmpl, _ := randomCRL(r, 40000)
	der := mustCRL(t, testCAs()["p256"], tmpl)
	if len(der) < asyncAfter+4*bufSize {
		t.Fatalf("only %d bytes", len(der))
	}
	p, es, err := parseAll(t, der)
	if err != nil {
		t.Fatal(err)
	}
	compareWithStdlib(t, der, p, es)
	if err := p.CheckSignatureFrom(testCAs()["p256"].cert); err != nil {
		t.Fatal(err)
	}
	p2, err := Parse(context.Background(), &oneByteReader{der}, nil)
	if err != nil || p2.SHA256 != p.SHA256 || !bytes.Equal(p2.Digest, p.Digest) {
		t.Fatalf("byte-wise: %v", err)
	}

	before := runtime.NumGoroutine()
	for _, cut := range []int{asyncAfter + 1, len(der) / 2, len(der) - 300, len(der) - 1} {
		if _, err := Parse(context.Background(), bytes.NewReader(der[:cut]), nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("cut %d: %v", cut, err)
		}
	}
	stop := errors.New("stop")
	if _, err := Parse(context.Background(), bytes.NewReader(der), func(e *Entry) error {
		if e.Index == 20000 {
			return stop
		}
		return nil
	}); !errors.Is(err, stop) {
		t.Errorf("fn error: %v", err)
	}
	for i := 0; runtime.NumGoroutine() > before && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("goroutines: %d before, %d after", before, n)
	}
}
