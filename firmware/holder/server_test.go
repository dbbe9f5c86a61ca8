package holder

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func startServer(t *testing.T, opts *Options) (*Server, string) {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	path := filepath.Join(t.TempDir(), "holder.sock")
	s, err := Listen(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func dial(t *testing.T, path string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type askResult struct {
	s   *Secret
	err error
}

func askAsync(ctx context.Context, s *Server, r Request) <-chan askResult {
	ch := make(chan askResult, 1)
	go func() {
		sec, err := s.Ask(ctx, r)
		ch <- askResult{sec, err}
	}()
	return ch
}

// roundTrip asks for a PIN, has c answer it, and fails unless the answer
// arrives: the server and its client work.
func roundTrip(t *testing.T, s *Server, c *Client) {
	t.Helper()
	res := askAsync(tctx(t), s, Request{Kind: AuthPIN, TriesLeft: 3})
	if _, err := c.Next(tctx(t)); err != nil {
		t.Fatal(err)
	}
	c.Answer(tctx(t), []byte(pinA))
	if r := wait(t, res); r.err != nil {
		t.Fatal(r.err)
	}
}

func wait(t *testing.T, ch <-chan askResult) askResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			assertNoSecret(t, "Ask error", r.err.Error())
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Ask did not return")
		return askResult{}
	}
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rawConn is a client speaking the wire protocol by hand.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, path string) *rawConn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t, c, bufio.NewReader(c)}
}

func (r *rawConn) send(line string) {
	r.t.Helper()
	if _, err := r.c.Write([]byte(line + "\n")); err != nil {
		r.t.Fatal(err)
	}
}

// read returns the next message as a map and its raw line.
func (r *rawConn) read() (map[string]any, string) {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := r.r.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		r.t.Fatalf("bad server line %q: %v", line, err)
	}
	assertNoSecret(r.t, "server line", line)
	return m, line
}

func (r *rawConn) expect(typ string) map[string]any {
	r.t.Helper()
	m, line := r.read()
	if m["type"] != typ {
		r.t.Fatalf("got %s, want type %s", line, typ)
	}
	return m
}

func TestAnswer(t *testing.T) {
	s, path := startServer(t, nil)
	c := dial(t, path)
	want := Request{Kind: AuthPIN, TriesLeft: 3, Profile: "pin-auth"}
	res := askAsync(tctx(t), s, want)
	got, err := c.Next(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("Next = %+v, want %+v", got, want)
	}
	if err := c.Answer(tctx(t), []byte(pinA)); err != nil {
		t.Fatal(err)
	}
	r := wait(t, res)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if string(r.s.Bytes()) != pinA {
		t.Errorf("secret = %q", r.s.Bytes())
	}
	r.s.Zero()
}

func TestWireFormat(t *testing.T) {
	s, path := startServer(t, nil)
	rc := dialRaw(t, path)
	res := askAsync(tctx(t), s, Request{Kind: CollationB, TriesLeft: 10, Profile: "face-check"})
	_, line := rc.read()
	if want := `{"type":"request","id":1,"kind":"collation-b","tries_left":10,"profile":"face-check"}` + "\n"; line != want {
		t.Errorf("request line %q, want %q", line, want)
	}
	rc.send(`{"type":"answer","id":1,"value":"` + collation + `"}`)
	if _, line := rc.read(); line != `{"type":"done","id":1}`+"\n" {
		t.Errorf("done line %q", line)
	}
	r := wait(t, res)
	if r.err != nil || string(r.s.Bytes()) != collation {
		t.Fatalf("Ask = %v, %v", r.s, r.err)
	}
	r.s.Zero()
}

func TestSignPasswordUpperCased(t *testing.T) {
	s, path := startServer(t, nil)
	c := dial(t, path)
	res := askAsync(tctx(t), s, Request{Kind: SignPassword, TriesLeft: 5, Profile: "sign"})
	if _, err := c.Next(tctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.Answer(tctx(t), []byte(passLower)); err != nil {
		t.Fatal(err)
	}
	r := wait(t, res)
	if r.err != nil || string(r.s.Bytes()) != passUpper {
		t.Fatalf("Ask = %q, %v", r.s.Bytes(), r.err)
	}
	r.s.Zero()
}

func TestCancel(t *testing.T) {
	s, path := startServer(t, nil)
	c := dial(t, path)
	res := askAsync(tctx(t), s, Request{Kind: SupportPIN, TriesLeft: 3, Profile: "attributes"})
	if _, err := c.Next(tctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.Cancel(tctx(t)); err != nil {
		t.Fatal(err)
	}
	if r := wait(t, res); !errors.Is(r.err, ErrCancelled) || r.s != nil {
		t.Fatalf("Ask = %v, %v; want ErrCancelled", r.s, r.err)
	}
}

func TestTimeout(t *testing.T) {
	s, path := startServer(t, &Options{Timeout: 50 * time.Millisecond})
	rc := dialRaw(t, path)
	start := time.Now()
	res := askAsync(context.Background(), s, Request{Kind: AuthPIN, TriesLeft: 3, Profile: "pin-auth"})
	rc.expect("request")
	if r := wait(t, res); !errors.Is(r.err, ErrTimeout) || r.s != nil {
		t.Fatalf("Ask = %v, %v; want ErrTimeout", r.s, r.err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("timed out after %v", d)
	}
	if m := rc.expect("done"); m["id"] != 1.0 {
		t.Errorf("done %v", m)
	}
	// A late answer is stale: ignored, the next request works.
	rc.send(`{"type":"answer","id":1,"value":"` + pinA + `"}`)
	res = askAsync(tctx(t), s, Request{Kind: AuthPIN, TriesLeft: 3, Profile: "pin-auth"})
	if m := rc.expect("request"); m["id"] != 2.0 {
		t.Errorf("second request %v", m)
	}
	rc.send(`{"type":"answer","id":2,"value":"` + pinB + `"}`)
	if r := wait(t, res); r.err != nil || string(r.s.Bytes()) != pinB {
		t.Fatalf("Ask = %v, %v", r.s, r.err)
	}
}

func TestDefaultTimeout(t *testing.T) {
	s, _ := startServer(t, nil)
	if s.timeout != DefaultTimeout || DefaultTimeout != 60*time.Second {
		t.Errorf("timeout %v", s.timeout)
	}
}

func TestContextCancel(t *testing.T) {
	s, path := startServer(t, nil)
	rc := dialRaw(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	res := askAsync(ctx, s, Request{Kind: AuthPIN, TriesLeft: 3, Profile: "pin-auth"})
	rc.expect("request")
	cancel()
	if r := wait(t, res); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Ask = %v; want context.Canceled", r.err)
	}
	rc.expect("done")

	// An already ended context: no request at all.
	if _, err := s.Ask(ctx, Request{Kind: AuthPIN}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ask(done ctx) = %v", err)
	}
	// A deadline is the caller's, reported as such, not as ErrTimeout.
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	if _, err := s.Ask(dctx, Request{Kind: AuthPIN}); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) {
		t.Fatalf("Ask(deadline) = %v", err)
	}
}

func TestBadFormatThenGoodAnswer(t *testing.T) {
	s, path := startServer(t, nil)
	c := dial(t, path)
	rc := dialRaw(t, path)
	res := askAsync(tctx(t), s, Request{Kind: AuthPIN, TriesLeft: 3, Profile: "pin-auth"})
	if _, err := c.Next(tctx(t)); err != nil {
		t.Fatal(err)
	}
	rc.expect("request")
	err := c.Answer(tctx(t), []byte(pinBad))
	if !errors.Is(err, ErrFormat) {
		t.Fatalf("Answer(bad) = %v, want ErrFormat", err)
	}
	assertNoSecret(t, "Answer error", err.Error())
	// Raw: the error line names the format, never the value.
	rc.send(`{"type":"answer","id":1,"value":"` + collation + `"}`)
	m := rc.expect("error")
	if m["id"] != 1.0 || !strings.HasPrefix(m["error"].(string), "format: ") {
		t.Errorf("error message %v", m)
	}
	// Overlong values are a format error too.
	rc.send(`{"type":"answer","id":1,"value":"` + strings.Repeat("1", 200) + `"}`)
	if m := rc.expect("error"); m["error"] != "format: value too long" {
		t.Errorf("overlong: %v", m)
	}
	select {
	case r := <-res:
		t.Fatalf("Ask returned after a bad answer: %v", r.err)
	default:
	}
	if err := c.Answer(tctx(t), []byte(pinA)); err != nil {
		t.Fatal(err)
	}
	if r := wait(t, res); r.err != nil || string(r.s.Bytes()) != pinA {
		t.Fatalf("Ask = %v, %v", r.s, r.err)
	}
	rc.expect("done")
}

func TestMalformedLine(t *testing.T) {
	s, path := startServer(t, nil)
	rc := dialRaw(t, path)
	res := askAsync(tctx(t), s, Request{Kind: AuthPIN, TriesLeft: 3, Profile: "pin-auth"})
	rc.expect("request")
	for _, l := range []string{
		`not json ` + pinA,
		`{"type":"answer","id":1,"value":"` + pinA + `"`,
		`{"type":"answer","id":1,"value":"` + pinA + `","value":"` + pinA + `"}`,
		`{"type":"answer","id":1,"value":["` + pinA + `"]}`,
		`{"type":"answer","id":1}`,
		`{"type":"answer","id":"1","value":"` + pinA + `"}`,
	} {
		rc.send(l)
		if m := rc.expect("error"); m["id"] != 0.0 || m["error"] != "malformed message" {
			t.Errorf("%s: %v", l, m)
		}
	}
	select {
	case r := <-res:
		t.Fatalf("Ask returned after a malformed answer: %v", r.err)
	default:
	}
	rc.send(`{"id":1,"value":"\u0034\u0037\u0032\u0039","type":"answer","x":null}`) // escapes are JSON too
	if r := wait(t, res); r.err != nil || string(r.s.Bytes()) != pinA {
		t.Fatalf("Ask = %v, %v", r.s, r.err)
	}
}

func TestStaleID(t *testing.T) {
	s, path := startServer(t, nil)
	rc := dialRaw(t, path)
	res := askAsync(tctx(t), s, Request{Kind: AuthPIN, TriesLeft: 3, Profile: "pin-auth"})
	rc.expect("request")
	rc.send(`{"type":"answer","id":0,"value":"` + pinB + `"}`)
	rc.send(`{"type":"answer","id":2,"value":"` + pinB + `"}`)
	rc.send(`{"type":"cancel","id":7}`)
	rc.send(`{"type":"answer","id":1,"value":"` + pinA + `"}`)
	if r := wait(t, res); r.err != nil || string(r.s.Bytes()) != pinA {
		t.Fatalf("Ask = %v, %v", r.s, r.err)
	}
	if m := rc.expect("done"); m["id"] != 1.0 { // nothing was sent for the stale lines
		t.Errorf("got %v", m)
	}
}

func TestBusy(t *testing.T) {
	s, path := startServer(t, nil)
	c := dial(t, path)
	res := askAsync(tctx(t), s, Request{Kind: AuthPIN, TriesLeft: 3, Profile: "pin-auth"})
	if _, err := c.Next(tctx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ask(tctx(t), Request{Kind: AuthPIN}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Ask = %v, want ErrBusy", err)
	}
	if _, err := s.Ask(tctx(t), Request{Kind: "pin"}); !errors.Is(err, ErrUnknownKind) {
		t.Fatalf("Ask(unknown kind) = %v", err)
	}
	if err := c.Answer(tctx(t), []byte(pinA)); err != nil {
		t.Fatal(err)
	}
	if r := wait(t, res); r.err != nil {
		t.Fatal(r.err)
	}
}

func TestTwoClientsFirstAnswerWins(t *testing.T) {
	s, path := startServer(t, nil)
	a := dial(t, path)
	b := dialRaw(t, path)
	res := askAsync(tctx(t), s, Request{Kind: AuthPIN, TriesLeft: 2, Profile: "pin-auth"})
	if _, err := a.Next(tctx(t)); err != nil {
		t.Fatal(err)
	}
	b.expect("request")
	if err := a.Answer(tctx(t), []byte(pinA)); err != nil {
		t.Fatal(err)
	}
	r := wait(t, res)
	if r.err != nil || string(r.s.Bytes()) != pinA {
		t.Fatalf("Ask = %v, %v", r.s, r.err)
	}
	if m := b.expect("done"); m["id"] != 1.0 {
		t.Errorf("b got %v", m)
	}
	b.send(`{"type":"answer","id":1,"value":"` + pinB + `"}`) // too late: ignored
	// The next request goes to both again and b may win it.
	res = askAsync(tctx(t), s, Request{Kind: AuthPIN, TriesLeft: 3, Profile: "pin-auth"})
	b.expect("request")
	if _, err := a.Next(tctx(t)); err != nil {
		t.Fatal(err)
	}
	b.send(`{"type":"answer","id":2,"value":"` + pinB + `"}`)
	if r := wait(t, res); r.err != nil || string(r.s.Bytes()) != pinB {
		t.Fatalf("Ask = %v, %v", r.s, r.err)
	}
	// a's answer after b won: the request is over, Answer reports that.
	if err := a.Answer(tctx(t), []byte(pinA)); err != nil {
		t.Fatal(err)
	}
}

func TestClientConnectingWhilePending(t *testing.T) {
	s, path := startServer(t, nil)
	res := askAsync(tctx(t), s, Request{Kind: CollationB, TriesLeft: 10, Profile: "face-check"})
	// Let Ask publish the request before anyone is connected.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		p := s.pend
		s.mu.Unlock()
		if p != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no pending request")
		}
		time.Sleep(time.Millisecond)
	}
	c := dial(t, path)
	r, err := c.Next(tctx(t))
	if err != nil || r.Kind != CollationB || r.TriesLeft != 10 {
		t.Fatalf("Next = %+v, %v", r, err)
	}
	if err := c.Answer(tctx(t), []byte(collation)); err != nil {
		t.Fatal(err)
	}
	if r := wait(t, res); r.err != nil || string(r.s.Bytes()) != collation {
		t.Fatalf("Ask = %v, %v", r.s, r.err)
	}
	// After done, a new client gets nothing stale.
	late := dial(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if r, err := late.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("late Next = %+v, %v", r, err)
	}
}

func TestAskNoClientTimesOut(t *testing.T) {
	s, _ := startServer(t, &Options{Timeout: 20 * time.Millisecond})
	if _, err := s.Ask(tctx(t), Request{Kind: AuthPIN, TriesLeft: 3}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Ask = %v", err)
	}
}

func TestClosePendingAsk(t *testing.T) {
	s, path := startServer(t, nil)
	c := dial(t, path)
	res := askAsync(tctx(t), s, Request{Kind: AuthPIN, TriesLeft: 3, Profile: "pin-auth"})
	if _, err := c.Next(tctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if r := wait(t, res); !errors.Is(r.err, ErrClosed) {
		t.Fatalf("Ask = %v", r.err)
	}
	if _, err := c.Next(tctx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after server close = %v", err)
	}
	if _, err := s.Ask(tctx(t), Request{Kind: AuthPIN}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ask after Close = %v", err)
	}
	if err := s.Deliver(tctx(t), personal); !errors.Is(err, ErrClosed) {
		t.Fatalf("Deliver after Close = %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestSocketAndDirModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "kazashi")
	path := filepath.Join(dir, "holder.sock")
	s, err := Listen(path, &Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", fi.Mode().Perm())
	}
	fi, err = os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want socket 0600", fi.Mode())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the socket", len(ents))
	}
}

func TestNonSocketRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "holder.sock")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Listen(path, &Options{Logger: testLogger()}); !errors.Is(err, ErrNotSocket) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Listen = %v, want ErrNotSocket", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Errorf("file replaced: %q", b)
	}
	dir := filepath.Join(t.TempDir(), "d")
	os.Mkdir(dir, 0o700)
	if _, err := Listen(dir, nil); !errors.Is(err, ErrNotSocket) {
		t.Fatalf("Listen(dir) = %v, want ErrNotSocket", err)
	}
}

func TestStaleSocketReplacedLiveRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "holder.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // a crashed server's socket
	s, err := Listen(path, &Options{Logger: testLogger()})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer s.Close()
	if _, err := Listen(path, &Options{Logger: testLogger()}); !errors.Is(err, ErrInUse) {
		t.Fatalf("Listen over a live socket = %v, want ErrInUse", err)
	}
	c := dial(t, path) // the first server is unharmed
	roundTrip(t, s, c)
}

func TestPeerAllowed(t *testing.T) {
	tests := []struct {
		peer, own uint32
		ok        bool
	}{
		{1000, 1000, true},
		{0, 1000, true}, // root
		{1001, 1000, false},
		{0, 0, true},
		{1000, 0, false}, // a server run as root accepts only root
		{65534, 1000, false},
	}
	for _, tt := range tests {
		if got := peerAllowed(tt.peer, tt.own); got != tt.ok {
			t.Errorf("peerAllowed(%d, %d) = %v", tt.peer, tt.own, got)
		}
	}
}

func TestPeerUIDReal(t *testing.T) {
	s, path := startServer(t, nil)
	_ = s
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	uid, err := peerUID(c.(*net.UnixConn))
	if err != nil {
		t.Fatal(err)
	}
	if uid != uint32(os.Getuid()) {
		t.Errorf("peerUID = %d, want %d", uid, os.Getuid())
	}
}

func TestPeerRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func(*net.UnixConn) (uint32, error)
	}{
		{"other uid", func(*net.UnixConn) (uint32, error) { return 4242, nil }},
		{"no credentials", func(*net.UnixConn) (uint32, error) { return 0, errors.New("no cred") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, path := startServer(t, &Options{peerUID: tc.f, ownUID: 1000, hasOwnUID: true})
			rc := dialRaw(t, path)
			res := askAsync(tctx(t), s, Request{Kind: AuthPIN, TriesLeft: 3})
			rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if line, err := rc.r.ReadString('\n'); err == nil {
				t.Fatalf("refused peer got %q", line)
			}
			rc.c.Write([]byte(`{"type":"answer","id":1,"value":"` + pinA + `"}` + "\n")) // fails or is never read
			time.Sleep(20 * time.Millisecond)
			select {
			case r := <-res:
				t.Fatalf("refused peer answered: %v", r.err)
			default:
			}
			s.Close()
			wait(t, res)
		})
	}
	if !strings.Contains(logs.String(), "refused a client of another user") {
		t.Error("refusal not logged")
	}
	// Root is let in even when the server's uid differs.
	s, path := startServer(t, &Options{peerUID: func(*net.UnixConn) (uint32, error) { return 0, nil }, ownUID: 1000, hasOwnUID: true})
	c := dial(t, path)
	roundTrip(t, s, c)
}

func TestMaxClients(t *testing.T) {
	_, path := startServer(t, &Options{MaxClients: 2})
	a, b := dialRaw(t, path), dialRaw(t, path)
	_, _ = a, b
	c := dialRaw(t, path)
	if m := c.expect("error"); m["error"] != "too many clients" {
		t.Errorf("got %v", m)
	}
	if _, err := c.r.ReadString('\n'); err == nil {
		t.Error("third client not closed")
	}
}

func TestLineTooLong(t *testing.T) {
	s, path := startServer(t, nil)
	rc := dialRaw(t, path)
	res := askAsync(tctx(t), s, Request{Kind: AuthPIN, TriesLeft: 3})
	rc.expect("request")
	rc.c.Write([]byte(`{"type":"answer","id":1,"value":"` + strings.Repeat("9", maxLine)))
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := rc.r.ReadString('\n'); err == nil {
		t.Fatalf("got %q, want the connection closed", line)
	}
	c := dial(t, path) // others are unaffected; the request is still pending
	if _, err := c.Next(tctx(t)); err != nil {
		t.Fatal(err)
	}
	c.Answer(tctx(t), []byte(pinA))
	if r := wait(t, res); r.err != nil {
		t.Fatal(r.err)
	}
}

func TestManyLinesInOneWrite(t *testing.T) {
	s, path := startServer(t, nil)
	rc := dialRaw(t, path)
	res := askAsync(tctx(t), s, Request{Kind: AuthPIN, TriesLeft: 3})
	rc.expect("request")
	// A bad answer, blank lines and the good answer in one segment, CRLF.
	rc.c.Write([]byte(`{"type":"answer","id":1,"value":"12"}` + "\r\n\n  \n" + `{"type":"answer","id":1,"value":"` + pinA + `"}` + "\r\n"))
	rc.expect("error")
	if r := wait(t, res); r.err != nil || string(r.s.Bytes()) != pinA {
		t.Fatalf("Ask = %v, %v", r.s, r.err)
	}
}

func TestDeliver(t *testing.T) {
	s, path := startServer(t, nil)
	if err := s.Deliver(tctx(t), personal); !errors.Is(err, ErrNoClient) {
		t.Fatalf("Deliver without clients = %v", err)
	}
	c := dial(t, path)
	rc := dialRaw(t, path)
	waitClients(t, s, 2)
	if err := s.Deliver(tctx(t), personal); err != nil {
		t.Fatal(err)
	}
	if line := rc.readAny(); !strings.Contains(line, `"type":"attributes"`) {
		t.Errorf("raw client got %q", line)
	}
	// Next skips attributes, Attributes returns them.
	res := askAsync(tctx(t), s, Request{Kind: SupportPIN, TriesLeft: 3, Profile: "attributes"})
	if r, err := c.Next(tctx(t)); err != nil || r.Kind != SupportPIN {
		t.Fatalf("Next = %v, %v", r, err)
	}
	a, err := c.Attributes(tctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if a != personal {
		t.Errorf("Attributes differ (profile %q)", a.Profile)
	}
	c.Cancel(tctx(t))
	wait(t, res)
	// Without the individual number, the member is omitted.
	noNumber := personal
	noNumber.IndividualNumber = ""
	if err := s.Deliver(tctx(t), noNumber); err != nil {
		t.Fatal(err)
	}
	if a, err := c.Attributes(tctx(t)); err != nil || a != noNumber {
		t.Fatalf("Attributes = %v, %v", a, err)
	}
}

func (r *rawConn) readAny() string {
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := r.r.ReadString('\n')
	if err != nil {
		r.t.Fatal(err)
	}
	return line
}

func TestDeliverWire(t *testing.T) {
	s, path := startServer(t, nil)
	rc := dialRaw(t, path)
	waitClients(t, s, 1)
	a := personal
	a.Name = "a\"b\\c\n\x01" + personal.Name
	if err := s.Deliver(tctx(t), a); err != nil {
		t.Fatal(err)
	}
	line := rc.readAny()
	var m map[string]string
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("attributes line is not JSON: %v", err)
	}
	want := map[string]string{"type": "attributes", "profile": a.Profile, "name": a.Name, "address": a.Address,
		"birth_date": a.BirthDate, "sex": a.Sex, "individual_number": a.IndividualNumber}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("member %s differs", k)
		}
	}
	if len(m) != len(want) {
		t.Errorf("%d members, want %d", len(m), len(want))
	}
	rc.c.Close()
	waitClients(t, s, 0)
	if err := s.Deliver(tctx(t), a); !errors.Is(err, ErrNoClient) {
		t.Fatalf("Deliver after the client left = %v", err)
	}
}

func waitClients(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		got := len(s.clients)
		s.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d clients, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHandleLineZeroesLine(t *testing.T) {
	s := &Server{log: testLogger(), clients: map[*conn]struct{}{}}
	cl := &conn{out: make(chan outMsg, 4), quit: make(chan struct{})}
	for _, l := range []string{
		`{"type":"answer","id":1,"value":"` + pinA + `"}`,
		`{"type":"answer","id":1,"value":"` + pinA,
	} {
		line := []byte(l)
		s.handleLine(cl, line)
		for _, b := range line {
			if b != 0 {
				t.Fatalf("line not zeroed: %q", line)
			}
		}
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	path := filepath.Join(t.TempDir(), "holder.sock")
	s, err := Listen(path, &Options{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var clients []*Client
	for range 3 {
		c, err := Dial(tctx(t), path)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	rc, _ := net.Dial("unix", path)
	res := askAsync(context.Background(), s, Request{Kind: AuthPIN, TriesLeft: 3})
	if _, err := clients[0].Next(tctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wait(t, res)
	for _, c := range clients {
		c.Close()
	}
	rc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}
