package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tarm/serial"

	"github.com/kazashi/kazashi/drivers/iso7816"
	"github.com/kazashi/kazashi/drivers/pn532"
	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

var (
	pkiDir string
	pki    *testpki.PKI
)

// TestMain generates one test PKI for all tests, and doubles as the
// kazashi-sim binary when re-executed by TestSignalExit.
func TestMain(m *testing.M) {
	if os.Getenv("KAZASHI_SIM_RUN_MAIN") == "1" {
		os.Args = append([]string{"kazashi-sim"}, strings.Fields(os.Getenv("KAZASHI_SIM_ARGS"))...)
		main()
		os.Exit(0)
	}
	var err error
	if pki, err = testpki.Generate(time.Now()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if pkiDir, err = os.MkdirTemp("", "kazashi-sim-pki-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := pki.WriteDir(pkiDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(pkiDir)
	os.Exit(code)
}

var readyLine = regexp.MustCompile(`^kazashi-sim: pty (/dev/pts/\d+) link (\S+) control (http://127\.0\.0\.1:\d+)$`)

type running struct {
	pty, link, url string
	cancel         context.CancelFunc
	done           chan error
	stderr         *mqtttest.Buffer
}

// start runs run() with args and waits for its ready line.
func start(t *testing.T, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	stderr := &mqtttest.Buffer{}
	r := &running{cancel: cancel, done: make(chan error, 1), stderr: stderr}
	go func() {
		err := run(ctx, args, pw, stderr)
		pw.CloseWithError(fmt.Errorf("run returned %v", err))
		r.done <- err
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, pr)
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatalf("no ready line; run: %v", <-r.done)
		}
		m := readyLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("ready line %q does not match %v", line, readyLine)
		}
		r.pty, r.link, r.url = m[1], m[2], m[3]
	case <-time.After(20 * time.Second):
		t.Fatal("no ready line within 20 s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("run did not return after cancel")
		}
	})
	return r
}

// call does one control request and decodes the JSON answer.
func call(t *testing.T, method, url string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, url, ct)
	}
	return resp.StatusCode, v
}

func expectStatus(t *testing.T, r *running, card string, present bool) map[string]any {
	t.Helper()
	code, st := call(t, http.MethodGet, r.url+"/status")
	if code != http.StatusOK || st["card"] != card || st["present"] != present {
		t.Fatalf("status %d %v, want card %q present %v", code, st, card, present)
	}
	return st
}

// openDriver opens the pty with the project's PN532 driver, as kazashid does.
func openDriver(t *testing.T, path string) *pn532.Dev {
	t.Helper()
	port, err := serial.OpenPort(&serial.Config{Name: path, Baud: 115200, ReadTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	u := pn532.NewUART(port)
	t.Cleanup(func() {
		u.Close()
		port.Close()
	})
	opts := pn532.DefaultOpts
	// Generous ACK deadlines: CI machines run test binaries in parallel.
	opts.ACKTimeout, opts.FirstACKTimeout = time.Second, 2*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := pn532.New(ctx, u, &opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// readAuthCert reads EF 000A of the card on the reader.
func readAuthCert(t *testing.T, d *pn532.Dev) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tg, err := d.ListTypeB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	card := &pn532.Card{Dev: d, Target: tg}
	for _, c := range []iso7816.Command{
		{INS: 0xA4, P1: 0x04, P2: 0x0C, Data: []byte{0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01}},
		{INS: 0xA4, P1: 0x02, P2: 0x0C, Data: []byte{0x00, 0x0A}},
	} {
		if _, err := iso7816.Transceive(ctx, card, c); err != nil {
			t.Fatal(err)
		}
	}
	var out []byte
	for {
		b, err := iso7816.Transceive(ctx, card, iso7816.Command{INS: 0xB0, P1: byte(len(out) >> 8), P2: byte(len(out)), Le: 256})
		out = append(out, b...)
		var se *iso7816.StatusError
		if errors.As(err, &se) && se.SW == 0x6282 {
			return out // end of file
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestControlInterface(t *testing.T) {
	link := filepath.Join(t.TempDir(), "pn532")
	r := start(t, "-link", link, "-pki", pkiDir, "-control", "127.0.0.1:0")
	if r.link != link {
		t.Fatalf("ready line link %q", r.link)
	}
	if dest, err := os.Readlink(link); err != nil || dest != r.pty {
		t.Fatalf("symlink → %q, %v", dest, err)
	}
	st := expectStatus(t, r, "", false)
	if st["pty"] != r.pty || st["link"] != link {
		t.Fatalf("status %v", st)
	}

	code, v := call(t, http.MethodPut, r.url+"/card?kind=platinum")
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(v["error"]), `unknown card kind "platinum"`) {
		t.Fatalf("unknown kind: %d %v", code, v)
	}
	code, v = call(t, http.MethodPut, r.url+"/card?kind=valid&remove_after_apdus=x")
	if code != http.StatusBadRequest || v["error"] == nil {
		t.Fatalf("bad remove_after_apdus: %d %v", code, v)
	}
	code, _ = call(t, http.MethodGet, r.url+"/nope")
	if code != http.StatusNotFound {
		t.Fatalf("unknown endpoint: %d", code)
	}

	// Each kind serves its own certificate from the PKI directory.
	d := openDriver(t, link)
	for _, kind := range testpki.Kinds() {
		code, v = call(t, http.MethodPut, r.url+"/card?kind="+kind)
		if code != http.StatusOK || v["card"] != kind || v["present"] != true {
			t.Fatalf("PUT %s: %d %v", kind, code, v)
		}
		if got := readAuthCert(t, d); !bytes.Equal(got, pki.Cards[kind].Cert) {
			t.Fatalf("%s card served another certificate", kind)
		}
		if st := expectStatus(t, r, kind, true); st["apdus"].(float64) < 4 {
			t.Fatalf("apdus not counted: %v", st)
		}
	}

	// Pull the card after two APDUs.
	call(t, http.MethodPut, r.url+"/card?kind=revoked&remove_after_apdus=2")
	expectStatus(t, r, "revoked", true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tg, err := d.ListTypeB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	card := &pn532.Card{Dev: d, Target: tg}
	for i := range 2 {
		if _, err := card.Transmit(ctx, []byte{0x00, 0xA4, 0x04, 0x0C, 0x0A, 0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01}); err != nil {
			t.Fatalf("APDU %d: %v", i+1, err)
		}
	}
	if _, err := card.Transmit(ctx, []byte{0x00, 0xB0, 0x00, 0x00, 0x01}); !errors.Is(err, pn532.ErrTargetLost) {
		var se *pn532.StatusError
		if !errors.As(err, &se) || se.Code != 0x01 {
			t.Fatalf("third APDU after the card left: %v", err)
		}
	}
	expectStatus(t, r, "", false)

	call(t, http.MethodPut, r.url+"/card?kind=valid")
	code, v = call(t, http.MethodDelete, r.url+"/card")
	if code != http.StatusOK || v["present"] != false || v["card"] != "" {
		t.Fatalf("DELETE: %d %v", code, v)
	}
	call(t, http.MethodPut, r.url+"/card?kind=expired")
	code, v = call(t, http.MethodPut, r.url+"/card?kind=none")
	if code != http.StatusOK || v["present"] != false {
		t.Fatalf("kind=none: %d %v", code, v)
	}
	code, v = call(t, http.MethodPost, r.url+"/reset")
	if chip, _ := v["chip"].(map[string]any); code != http.StatusOK || chip["asleep"] != true {
		t.Fatalf("reset: %d %v", code, v)
	}

	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatalf("run: %v", err)
	}
	r.done <- nil // for the cleanup
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("symlink left after exit: %v", err)
	}
}

// TestStartWithCardAndGeneratedPKI: without -pki a PKI is generated; -card
// puts a card on the reader from the start.
func TestStartWithCardAndGeneratedPKI(t *testing.T) {
	r := start(t, "-card", "valid", "-control", "localhost:0")
	if r.link != "-" {
		t.Fatalf("link without -link: %q", r.link)
	}
	expectStatus(t, r, "valid", true)
	d := openDriver(t, r.pty)
	if cert := readAuthCert(t, d); len(cert) < 300 {
		t.Fatalf("certificate of %d bytes", len(cert))
	}
}

func TestRunRejects(t *testing.T) {
	for _, args := range [][]string{
		{"-control", "0.0.0.0:0"},
		{"-control", ":7532"},
		{"-control", "192.0.2.1:7532"},
		{"-control", "example.com:80"},
		{"-control", "127.0.0.1"},
		{"-control", "127.0.0.1:99999"},
		{"-card", "platinum", "-control", "127.0.0.1:0"},
		{"-pki", "/nonexistent", "-control", "127.0.0.1:0"},
		{"-control", "127.0.0.1:0", "extra"},
		{"-bogus"},
	} {
		var stderr bytes.Buffer
		if err := run(context.Background(), args, io.Discard, &stderr); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:7532", "127.0.0.2:0", "localhost:0", "[::1]:7532"} {
		if err := checkLoopback(ok); err != nil {
			t.Errorf("checkLoopback(%q): %v", ok, err)
		}
	}
}

// TestSignalExit runs the real main in a child process: SIGTERM stops it
// with exit status 0 and removes the symlink.
func TestSignalExit(t *testing.T) {
	link := filepath.Join(t.TempDir(), "pn532")
	c := exec.Command(os.Args[0], "-test.run=^$")
	c.Env = append(os.Environ(), "KAZASHI_SIM_RUN_MAIN=1", "KAZASHI_SIM_ARGS=-link "+link+" -pki "+pkiDir+" -control 127.0.0.1:0")
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Scan()
		line <- sc.Text()
		io.Copy(io.Discard, out)
	}()
	select {
	case l := <-line:
		if !readyLine.MatchString(l) {
			c.Process.Kill()
			t.Fatalf("ready line %q; stderr: %s", l, stderr.String())
		}
	case <-time.After(20 * time.Second):
		c.Process.Kill()
		t.Fatalf("no ready line; stderr: %s", stderr.String())
	}
	if _, err := os.Lstat(link); err != nil {
		t.Fatalf("no symlink while running: %v", err)
	}
	if err := c.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v; stderr: %s", err, stderr.String())
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("symlink left after SIGTERM: %v", err)
	}
}

// APDUs of the tests (doc §1–§4).
var (
	selectJPKI    = []byte{0x00, 0xA4, 0x04, 0x0C, 0x0A, 0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01}
	selectSurface = []byte{0x00, 0xA4, 0x04, 0x0C, 0x0A, 0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x02}
	selectSupport = []byte{0x00, 0xA4, 0x04, 0x0C, 0x0A, 0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08}
)

func selectEF(fid uint16) []byte {
	return []byte{0x00, 0xA4, 0x02, 0x0C, 0x02, byte(fid >> 8), byte(fid)}
}

func verifyAPDU(secret string) []byte {
	return append([]byte{0x00, 0x20, 0x00, 0x80, byte(len(secret))}, secret...)
}

// tap lists the card on the reader and returns it.
func tap(t *testing.T, ctx context.Context, d *pn532.Dev) *pn532.Card {
	t.Helper()
	tg, err := d.ListTypeB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &pn532.Card{Dev: d, Target: tg}
}

// expectSW sends apdu and checks the status word of the answer.
func expectSW(t *testing.T, ctx context.Context, card *pn532.Card, apdu []byte, sw uint16) []byte {
	t.Helper()
	resp, err := card.Transmit(ctx, apdu)
	if err != nil {
		t.Fatalf("APDU % X: %v", apdu[:min(len(apdu), 5)], err)
	}
	if n := len(resp); n < 2 || uint16(resp[n-2])<<8|uint16(resp[n-1]) != sw {
		t.Fatalf("APDU % X answered % X, want SW %04X", apdu[:min(len(apdu), 5)], resp[max(len(resp)-2, 0):], sw)
	}
	return resp[:len(resp)-2]
}

// TestVerboseLogsFramesWithoutSecrets: -v logs every frame in hex, but no
// secret (VERIFY data in every AP) and no personal data (the answers to
// READ BINARY of the card-face record, the basic 4 information, the
// signature certificate) reaches the log.
func TestVerboseLogsFramesWithoutSecrets(t *testing.T) {
	r := start(t, "-v", "-card", "valid", "-pki", pkiDir, "-control", "127.0.0.1:0")
	tc := pki.Cards[testpki.KindValid]
	d := openDriver(t, r.pty)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	card := tap(t, ctx, d)
	expectSW(t, ctx, card, selectJPKI, 0x9000)
	expectSW(t, ctx, card, selectEF(0x0018), 0x9000)
	expectSW(t, ctx, card, verifyAPDU(tc.AuthPIN), 0x9000)
	expectSW(t, ctx, card, selectEF(0x001B), 0x9000)
	expectSW(t, ctx, card, verifyAPDU(tc.SignPassword), 0x9000)
	expectSW(t, ctx, card, selectEF(0x0001), 0x9000)
	expectSW(t, ctx, card, []byte{0x00, 0xB0, 0x00, 0x00, 0x00}, 0x9000)
	expectSW(t, ctx, card, selectSurface, 0x9000)
	expectSW(t, ctx, card, selectEF(0x0012), 0x9000)
	expectSW(t, ctx, card, verifyAPDU(tc.CollationB), 0x9000)
	expectSW(t, ctx, card, selectEF(0x0002), 0x9000)
	face := expectSW(t, ctx, card, []byte{0x00, 0xB0, 0x00, 0x00, 0x00}, 0x9000)
	if !bytes.Equal(face, tc.Surface.Face[:256]) {
		t.Fatal("the card-face record differs from the test PKI's")
	}
	expectSW(t, ctx, card, selectSupport, 0x9000)
	expectSW(t, ctx, card, selectEF(0x0011), 0x9000)
	expectSW(t, ctx, card, verifyAPDU(tc.SupportPIN), 0x9000)
	expectSW(t, ctx, card, selectEF(0x0002), 0x9000)
	expectSW(t, ctx, card, []byte{0x00, 0xB0, 0x00, 0x00, 0x00}, 0x6282)
	expectSW(t, ctx, card, selectEF(0x0001), 0x9000)
	expectSW(t, ctx, card, []byte{0x00, 0xB0, 0x00, 0x00, 0x00}, 0x6282)

	log := r.stderr.String()
	for _, want := range []string{"hex=d44a010300", "kind=ACK", "hex=0000ff", "hex=d44001002000800" + "4**", "d54100**"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	for name, v := range map[string]string{
		"auth PIN": tc.AuthPIN, "signature password": tc.SignPassword, "collation number B": tc.CollationB,
		"support PIN": tc.SupportPIN, "name": tc.Person.Name, "address": tc.Person.Address,
		"birth date": tc.Person.BirthDate, "individual number": tc.Person.IndividualNumber,
	} {
		if strings.Contains(log, hex.EncodeToString([]byte(v))) {
			t.Errorf("the %s is in the log", name)
		}
	}
	if strings.Contains(log, hex.EncodeToString(tc.Surface.Face[32:64])) || strings.Contains(log, hex.EncodeToString(tc.SignCert[32:64])) {
		t.Error("personal-data file bytes are in the log")
	}
}

// TestTriesAndClone: /status reports the tries left per credential of the
// card on the reader; counters persist between taps of the same kind; the
// clone (PUT kind=clone) has only the JPKI AP.
func TestTriesAndClone(t *testing.T) {
	r := start(t, "-pki", pkiDir, "-control", "127.0.0.1:0")
	d := openDriver(t, r.pty)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tries := func(v map[string]any) map[string]float64 {
		t.Helper()
		m, _ := v["tries"].(map[string]any)
		out := map[string]float64{}
		for k, n := range m {
			out[k] = n.(float64)
		}
		return out
	}
	if _, v := call(t, http.MethodGet, r.url+"/status"); v["tries"] != nil {
		t.Fatalf("tries without a card: %v", v)
	}
	_, v := call(t, http.MethodPut, r.url+"/card?kind=valid")
	want := map[string]float64{"auth-pin": 3, "sign-password": 5, "collation-b": 10, "support-pin": 3}
	if got := tries(v); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("tries %v, want %v", got, want)
	}

	tc := pki.Cards[testpki.KindValid]
	wrongB := []byte(tc.CollationB)
	wrongB[13] = '0' + (wrongB[13]-'0'+1)%10
	card := tap(t, ctx, d)
	expectSW(t, ctx, card, selectSurface, 0x9000)
	expectSW(t, ctx, card, selectEF(0x0012), 0x9000)
	expectSW(t, ctx, card, verifyAPDU(string(wrongB)), 0x63C9)
	expectSW(t, ctx, card, selectSupport, 0x9000)
	expectSW(t, ctx, card, selectEF(0x0011), 0x9000)
	expectSW(t, ctx, card, verifyAPDU(wrongPIN(tc.SupportPIN)), 0x63C2)

	// A new tap of the same kind: the counters persist.
	_, v = call(t, http.MethodPut, r.url+"/card?kind=valid")
	want = map[string]float64{"auth-pin": 3, "sign-password": 5, "collation-b": 9, "support-pin": 2}
	if got := tries(v); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("tries after a new tap %v, want %v", got, want)
	}
	card = tap(t, ctx, d)
	expectSW(t, ctx, card, selectSurface, 0x9000)
	expectSW(t, ctx, card, selectEF(0x0012), 0x9000)
	expectSW(t, ctx, card, []byte{0x00, 0x20, 0x00, 0x80}, 0x63C9)
	expectSW(t, ctx, card, verifyAPDU(tc.CollationB), 0x9000)
	if got := tries(expectStatus(t, r, "valid", true)); got["collation-b"] != 10 {
		t.Fatalf("tries after the right B %v", got)
	}

	// The clone: JPKI AP only, the valid card's certificate.
	_, v = call(t, http.MethodPut, r.url+"/card?kind=clone")
	if got, want := tries(v), map[string]float64{"auth-pin": 3, "sign-password": 5}; v["card"] != "clone" || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("clone status %v", v)
	}
	if got := readAuthCert(t, d); !bytes.Equal(got, tc.Cert) {
		t.Fatal("the clone does not carry the valid card's certificate")
	}
	call(t, http.MethodPut, r.url+"/card?kind=clone") // a new tap
	card = tap(t, ctx, d)
	expectSW(t, ctx, card, selectSurface, 0x6A82)
	expectSW(t, ctx, card, selectSupport, 0x6A82)
	expectSW(t, ctx, card, selectJPKI, 0x9000)
}

// wrongPIN returns a 4-digit PIN other than pin.
func wrongPIN(pin string) string {
	if pin == "0000" {
		return "1111"
	}
	return "0000"
}
