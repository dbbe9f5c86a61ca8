package sim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kazashi/kazashi/drivers/pn532"
)

// h parses spaced hex ("4A 01 03 00").
func h(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

// cmd builds a host information frame from the hex data after the TFI, with
// computed checksums: cmd("4A 01 03 00").
func cmd(s string) []byte {
	b, err := pn532.Encode(pn532.TFIHost, h(s))
	if err != nil {
		panic(err)
	}
	return b
}

// rsp builds a chip information frame from the hex data after the TFI.
func rsp(s string) []byte { return rspBytes(h(s)) }

func rspBytes(d []byte) []byte {
	b, err := pn532.Encode(pn532.TFIChip, d)
	if err != nil {
		panic(err)
	}
	return b
}

// testPUPI and testTypeB make activation answers predictable.
var testTypeB = TypeB{PUPI: [4]byte{0x12, 0x34, 0x56, 0x78}, ProtInfo: DefaultProtInfo}

// atqbAnswer is the InListPassiveTarget answer for testTypeB.
const atqbAnswer = "4B 01 01 50 12 34 56 78 00 00 00 00 B3 81 A1 01 01"

var (
	certOnce       sync.Once
	certDER, caDER []byte
	certKey        *rsa.PrivateKey
)

// testCerts returns a self-signed RSA-2048 certificate (longer than one
// 256-byte READ BINARY), a second one for the CA EF, and the key.
func testCerts(t testing.TB) (cert, ca []byte, key *rsa.PrivateKey) {
	t.Helper()
	certOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		mk := func(cn string, serial int64) []byte {
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(serial),
				Subject:      pkix.Name{CommonName: cn, Organization: []string{"JPKI-TEST"}},
				NotBefore:    time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
				NotAfter:     time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
			if err != nil {
				panic(err)
			}
			return der
		}
		certDER, caDER, certKey = mk("sim test card", 1), mk("sim test CA", 2), k
	})
	return certDER, caDER, certKey
}

// newTestCard returns a JPKI card with predictable activation data.
func newTestCard(t testing.TB) *JPKICard {
	t.Helper()
	cert, ca, key := testCerts(t)
	tb := testTypeB
	c, err := NewJPKICard(JPKIConfig{Token: "JPKIAPICCTOKEN2", AuthCert: cert, AuthCACert: ca, AuthKey: key, TypeB: &tb})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fastTiming keeps simulated waits short.
var fastTiming = Timing{Timeout: 20 * time.Millisecond, PollAttempt: 5 * time.Millisecond}

// newTestChip returns an awake chip with a field, optionally holding card.
func newTestChip(t testing.TB, card Target) (*Chip, *Field) {
	t.Helper()
	f := NewField()
	if card != nil {
		f.Place(card, 0)
	}
	return NewChip(f, &ChipOptions{Awake: true, Timing: fastTiming}), f
}

// run sends one command to the chip and returns the answer data, failing
// the test on an error.
func run(t testing.TB, c *Chip, data string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := c.Process(ctx, h(data))
	if err != nil {
		t.Fatalf("Process(%s): %v", data, err)
	}
	return out
}

// expect runs a command and compares the answer.
func expect(t testing.TB, c *Chip, data, want string) {
	t.Helper()
	if got := run(t, c, data); !bytes.Equal(got, h(want)) {
		t.Fatalf("Process(%s)\n got % X\nwant % X", data, got, h(want))
	}
}

// activate lists the card (BrTy 03, AFI 00) with finite retries.
func activate(t testing.TB, c *Chip) {
	t.Helper()
	expect(t, c, "32 05 00 01 02", "33")
	expect(t, c, "4A 01 03 00", atqbAnswer)
}

// host is the host end of a link served by a chip.
type host struct {
	t    testing.TB
	conn net.Conn
	buf  []byte
}

// serve runs chip.Serve on one end of an in-memory pipe and returns the
// other end; the server stops with the test.
func serve(t testing.TB, c *Chip) *host {
	t.Helper()
	a, b := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx, a) }()
	t.Cleanup(func() {
		cancel()
		a.Close()
		b.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &host{t: t, conn: b}
}

func (hs *host) write(b []byte) {
	hs.t.Helper()
	hs.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := hs.conn.Write(b); err != nil {
		hs.t.Fatalf("write: %v", err)
	}
}

// read returns the next n raw bytes from the chip.
func (hs *host) read(n int, timeout time.Duration) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	tmp := make([]byte, 512)
	for len(hs.buf) < n {
		hs.conn.SetReadDeadline(deadline)
		k, err := hs.conn.Read(tmp)
		hs.buf = append(hs.buf, tmp[:k]...)
		if err != nil {
			return nil, err
		}
	}
	out := hs.buf[:n:n]
	hs.buf = hs.buf[n:]
	return out, nil
}

// expectBytes reads exactly len(want) bytes and compares them.
func (hs *host) expectBytes(want []byte) {
	hs.t.Helper()
	got, err := hs.read(len(want), 2*time.Second)
	if err != nil {
		hs.t.Fatalf("reading % X: %v (have % X)", want, err, hs.buf)
	}
	if !bytes.Equal(got, want) {
		hs.t.Fatalf("from chip\n got % X\nwant % X", got, want)
	}
}

// expectSilence checks that the chip sends nothing for d.
func (hs *host) expectSilence(d time.Duration) {
	hs.t.Helper()
	got, err := hs.read(1, d)
	if err == nil {
		hs.t.Fatalf("chip sent % X, want silence", got)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		if !errors.Is(err, io.EOF) {
			hs.t.Fatalf("read: %v", err)
		}
	}
}

// exchange sends a command frame and expects ACK then the answer.
func (hs *host) exchange(command, answer string) {
	hs.t.Helper()
	hs.write(cmd(command))
	hs.expectBytes(pn532.ACK)
	hs.expectBytes(rsp(answer))
}
