package sim

import (
	"bytes"
	"encoding/hex"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kazashi/kazashi/drivers/pn532"
	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

// call sends a command frame, expects the ACK and returns the answer data
// (response code first).
func (hs *host) call(data []byte) []byte {
	hs.t.Helper()
	f, err := pn532.Encode(pn532.TFIHost, data)
	if err != nil {
		hs.t.Fatal(err)
	}
	hs.write(f)
	hs.expectBytes(pn532.ACK)
	head, err := hs.read(5, 2*time.Second)
	if err != nil {
		hs.t.Fatalf("answer to % X: %v", data, err)
	}
	n := int(head[3])
	if head[3] == 0xFF && head[4] == 0xFF {
		ext, err := hs.read(3, 2*time.Second)
		if err != nil {
			hs.t.Fatal(err)
		}
		n = int(ext[0])<<8 | int(ext[1])
	}
	rest, err := hs.read(n+2, 2*time.Second) // TFI + data, DCS, postamble
	if err != nil {
		hs.t.Fatal(err)
	}
	return bytes.Clone(rest[1:n])
}

// apdu sends an APDU with InDataExchange and returns the R-APDU.
func (hs *host) apdu(a []byte) []byte {
	hs.t.Helper()
	out := hs.call(append([]byte{0x40, 0x01}, a...))
	if len(out) < 2 || out[0] != 0x41 || out[1] != 0x00 {
		hs.t.Fatalf("InDataExchange % X: % X", a, out)
	}
	return out[2:]
}

// readAll reads the current EF through hs.apdu up to 6B00/6282.
func (hs *host) readAll() []byte {
	hs.t.Helper()
	var out []byte
	for off := 0; off < 0x8000; off += 256 {
		resp := hs.apdu([]byte{0x00, 0xB0, byte(off >> 8), byte(off), 0x00})
		n := len(resp) - 2
		out = append(out, resp[:n]...)
		if !bytes.Equal(resp[n:], h("90 00")) {
			break
		}
	}
	return out
}

// isoDEP runs ISO-DEP itself over InCommunicateThru (CID 1), with R(ACK)
// for chained card answers and S(WTX) echoed.
type isoDEP struct {
	hs *host
	bn byte // PCD block number
}

func (d *isoDEP) frame(b []byte) []byte {
	d.hs.t.Helper()
	out := d.hs.call(append([]byte{0x42}, b...))
	if len(out) < 2 || out[0] != 0x43 || out[1] != 0x00 {
		d.hs.t.Fatalf("InCommunicateThru % X: % X", b, out)
	}
	return out[2:]
}

func (d *isoDEP) apdu(a []byte) []byte {
	d.hs.t.Helper()
	blk := d.frame(append([]byte{0x0A | d.bn, 0x01}, a...))
	var resp []byte
	for {
		switch pcb := blk[0]; {
		case pcb&0xF7 == 0xF2: // S(WTX): echo it
			blk = d.frame(blk)
			continue
		case pcb&0xE2 == 0x02: // I-block
			resp = append(resp, blk[2:]...)
			d.bn = pcb&1 ^ 1
			if pcb&0x10 == 0 {
				return resp
			}
			blk = d.frame([]byte{0xAA | d.bn, 0x01}) // R(ACK)
		default:
			d.hs.t.Fatalf("unexpected block % X", blk)
		}
	}
}

// TestFrameLogMasksSecretsAndPersonalData runs the flows that present
// every secret and read every personal-data file, over InDataExchange and
// over software ISO-DEP (chained answers), and checks the -v frame log:
// no PIN, password or collation number, nothing of testpki's Person, no
// bytes of a personal-data file; public files stay visible.
func TestFrameLogMasksSecretsAndPersonalData(t *testing.T) {
	tc, card := testCard(t, testpki.KindValid)
	logBuf := &mqtttest.Buffer{}
	log := slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := NewField()
	f.Place(card, 0)
	chip := NewChip(f, &ChipOptions{Awake: true, Timing: fastTiming, Logger: log})
	hs := serve(t, chip)
	hs.call(h("32 05 00 01 02"))
	if got := hs.call(h("4A 01 03 00")); len(got) < 2 || got[1] != 0x01 {
		t.Fatalf("no card: % X", got)
	}
	sel := func(fid uint16) {
		t.Helper()
		if r := hs.apdu([]byte{0x00, 0xA4, 0x02, 0x0C, 0x02, byte(fid >> 8), byte(fid)}); !bytes.Equal(r, h("90 00")) {
			t.Fatalf("SELECT %04X: % X", fid, r)
		}
	}
	verify := func(fid uint16, secret string) {
		t.Helper()
		sel(fid)
		if r := hs.apdu(h(verifyAPDU(secret))); !bytes.Equal(r, h("90 00")) {
			t.Fatalf("VERIFY %04X: % X", fid, r)
		}
	}
	app := func(apdu string) {
		t.Helper()
		if r := hs.apdu(h(apdu)); !bytes.Equal(r, h("90 00")) {
			t.Fatalf("SELECT AP: % X", r)
		}
	}
	personalFiles := map[string][]byte{}
	read := func(name string, fid uint16, want []byte, personal bool) {
		t.Helper()
		sel(fid)
		if got := hs.readAll(); !bytes.Equal(got, want) {
			t.Fatalf("%s: read %d bytes, want %d", name, len(got), len(want))
		}
		if personal {
			personalFiles[name] = want
		}
	}

	// JPKI AP: the auth PIN, a wrong then the right password (its
	// counter), the signature certificate (basic 4 in its SAN).
	app(selectJPKI)
	verify(JPKIAuthPIN, tc.AuthPIN)
	sel(JPKISignPassword)
	if r := hs.apdu(h(verifyAPDU(wrongLike(tc.SignPassword)))); !bytes.Equal(r, h("63 C4")) {
		t.Fatalf("wrong password: % X", r)
	}
	verify(JPKISignPassword, tc.SignPassword)
	read("JPKI 0001", 0x0001, tc.SignCert, true)

	// Card surface AP: B sent with host chaining (Tg 41), then the face.
	app(selectSurface)
	sel(SurfaceCollationB)
	v := h(verifyAPDU(tc.CollationB))
	if r := hs.call(append([]byte{0x40, 0x41}, v[:8]...)); !bytes.Equal(r, h("41 00")) {
		t.Fatalf("chained VERIFY: % X", r)
	}
	if r := hs.apdu(v[8:]); !bytes.Equal(r, h("90 00")) {
		t.Fatalf("chained VERIFY: % X", r)
	}
	read("surface 0002", 0x0002, tc.Surface.Face, true)
	read("surface 0004", 0x0004, tc.Surface.CVCert, false)

	// Input support AP: B, then the PIN, and every file.
	app(selectSupport)
	verify(SupportCollationB, tc.CollationB)
	verify(SupportPIN, tc.SupportPIN)
	read("support 0001", 0x0001, tc.Support.Number, true)
	read("support 0002", 0x0002, tc.Support.Basic4, true)
	read("support 0003", 0x0003, tc.Support.Integrity, true)
	read("support 0004", 0x0004, tc.Support.CVCert, false)
	read("support 0007", 0x0007, tc.Support.ChallengeKeyRecord, false)
	if r := hs.apdu(h("00 24 01 80 04 31 31 31 31")); len(r) != 2 { // CHANGE REFERENCE DATA is masked too
		t.Fatalf("00 24: % X", r)
	}

	// Software ISO-DEP with FSD 64: chained card answers, R(ACK)s, and a
	// PCD-chained VERIFY.
	hs.call(h("44 01")) // InDeselect: S(DESELECT), the card halts
	dep := &isoDEP{hs: hs}
	if r := dep.frame(h("05 00 08")); len(r) != 12 || r[0] != 0x50 { // WUPB
		t.Fatalf("WUPB: % X", r)
	}
	pupi := card.TypeB().PUPI
	if r := dep.frame([]byte{0x1D, pupi[0], pupi[1], pupi[2], pupi[3], 0x00, 0x05, 0x01, 0x01}); !bytes.Equal(r, h("01")) { // ATTRIB FSD 64, CID 1
		t.Fatalf("ATTRIB: % X", r)
	}
	if r := dep.apdu(h(selectSurface)); !bytes.Equal(r, h("90 00")) {
		t.Fatalf("DEP SELECT: % X", r)
	}
	dep.apdu(h("00 A4 02 0C 02 00 12"))
	if r := dep.frame(append([]byte{0x1A | dep.bn, 0x01}, v[:7]...)); r[0]&0xF6 != 0xA2 { // I-block with chaining → R(ACK)
		t.Fatalf("PCD chaining: % X", r)
	}
	dep.bn ^= 1
	if r := dep.frame(append([]byte{0x0A | dep.bn, 0x01}, v[7:]...)); !bytes.Equal(r[2:], h("90 00")) {
		t.Fatalf("chained VERIFY over ISO-DEP: % X", r)
	} else {
		dep.bn = r[0]&1 ^ 1
	}
	if r := dep.apdu(h("00 A4 02 0C 02 00 02")); !bytes.Equal(r, h("90 00")) {
		t.Fatalf("DEP SELECT 0002: % X", r)
	}
	if r := dep.apdu(h("00 B0 00 00 00")); !bytes.Equal(r, append(bytes.Clone(tc.Surface.Face[:256]), 0x90, 0x00)) {
		t.Fatalf("DEP READ: %d bytes", len(r))
	}

	out := logBuf.String()
	if !strings.Contains(out, "d54100**") || !strings.Contains(out, "d54300**") {
		t.Errorf("no masked answers in the log:\n%s", out)
	}
	if !strings.Contains(out, hex.EncodeToString(tc.Surface.CVCert[16:48])) || !strings.Contains(out, hex.EncodeToString(tc.Support.CVCert[16:48])) {
		t.Error("public CV certificates missing from the log: is it logging at all?")
	}
	for name, secret := range map[string]string{
		"auth PIN": tc.AuthPIN, "signature password": tc.SignPassword, "wrong password": wrongLike(tc.SignPassword),
		"collation number B": tc.CollationB, "support PIN": tc.SupportPIN, "new PIN": "1111",
		"name": tc.Person.Name, "address": tc.Person.Address, "birth date": tc.Person.BirthDate,
		"individual number": tc.Person.IndividualNumber,
	} {
		if secret == "" {
			t.Fatalf("%s empty in the test PKI", name)
		}
		if strings.Contains(out, hex.EncodeToString([]byte(secret))) {
			t.Errorf("the frame log shows the %s", name)
		}
	}
	// Tail pieces of B after the chaining split (7 and 8 APDU bytes in).
	for _, piece := range [][]byte{v[8:], v[7:]} {
		if strings.Contains(out, hex.EncodeToString(piece)) {
			t.Errorf("the frame log shows the rest of a chained VERIFY")
		}
	}
	for name, data := range personalFiles {
		w := min(16, len(data)-4) // EF 0001 of the input support AP is 17 bytes
		for off := 4; off+w <= len(data); off += 61 {
			if strings.Contains(out, hex.EncodeToString(data[off:off+w])) {
				t.Errorf("the frame log shows %s bytes at offset %d", name, off)
				break
			}
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", out)
	}
}
