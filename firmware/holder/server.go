package holder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultTimeout is how long Ask waits for the holder when Options.Timeout is zero.
const DefaultTimeout = 60 * time.Second

// DefaultMaxClients is the number of concurrent clients when Options.MaxClients is zero.
const DefaultMaxClients = 8

// writeTimeout bounds one write to a client: a client that does not read
// for this long is dropped instead of stalling the others.
const writeTimeout = 5 * time.Second

// Errors of the server.
var (
	ErrClosed    = errors.New("holder: closed")
	ErrBusy      = errors.New("holder: another request is pending")
	ErrNoClient  = errors.New("holder: no client connected")
	ErrNotSocket = errors.New("holder: path exists and is not a socket")
	ErrInUse     = errors.New("holder: socket is in use by a running server")
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// Timeout is how long Ask waits for an answer; DefaultTimeout if zero.
	Timeout time.Duration
	// Logger receives connection events (never secrets or personal
	// data); discarded if nil.
	Logger *slog.Logger
	// MaxClients limits concurrent clients; DefaultMaxClients if zero.
	MaxClients int

	// peerUID reads the uid of a connection's peer (SO_PEERCRED); tests
	// replace it.
	peerUID func(*net.UnixConn) (uint32, error)
	// ownUID, when hasOwnUID, replaces os.Getuid() as the uid a peer
	// must have (besides root); tests set it.
	ownUID    uint32
	hasOwnUID bool
}

// Server is the local holder-input endpoint. It implements Input and
// firmware/tap's LocalRecipient (Deliver).
type Server struct {
	path       string
	ln         *net.UnixListener
	fi         os.FileInfo // the socket file, to remove only our own in Close
	timeout    time.Duration
	log        *slog.Logger
	maxClients int
	peerUID    func(*net.UnixConn) (uint32, error)
	ownUID     uint32

	mu      sync.Mutex
	clients map[*conn]struct{}
	pend    *pending
	nextID  uint64
	closed  bool
	done    chan struct{}
	wg      sync.WaitGroup
}

type pending struct {
	id       uint64
	req      Request
	line     []byte
	ready    chan struct{} // closed when answered or cancelled by a client
	finished bool
	secret   *Secret
	err      error
}

// conn is one connected client.
type conn struct {
	c    *net.UnixConn
	out  chan outMsg
	quit chan struct{}
	once sync.Once
}

type outMsg struct {
	line []byte
	zero bool         // zero line after writing (personal data)
	sent chan<- error // optional: the write's result
}

var tmpSeq atomic.Uint64

// Listen creates the socket at path and starts serving. The parent
// directory is created with mode 0700 if missing. An existing socket that
// no server answers on is removed; an existing file that is not a socket
// is refused (ErrNotSocket), and so is a socket a server answers on
// (ErrInUse). The socket is bound under a temporary name, set to mode
// 0600 and renamed into place, so it never appears at path with a wider
// mode; the process umask is not touched because it is process-wide and
// would race with other goroutines creating files. Peers are checked
// with SO_PEERCRED regardless.
func Listen(path string, opts *Options) (*Server, error) {
	if opts == nil {
		opts = &Options{}
	}
	s := &Server{
		path:       filepath.Clean(path),
		timeout:    opts.Timeout,
		log:        opts.Logger,
		maxClients: opts.MaxClients,
		peerUID:    opts.peerUID,
		ownUID:     uint32(os.Getuid()),
		clients:    make(map[*conn]struct{}),
		done:       make(chan struct{}),
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxClients <= 0 {
		s.maxClients = DefaultMaxClients
	}
	if s.peerUID == nil {
		s.peerUID = peerUID
	}
	if opts.hasOwnUID {
		s.ownUID = opts.ownUID
	}
	if err := s.listen(); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

func (s *Server) listen() error {
	dir := filepath.Dir(s.path)
	switch fi, err := os.Stat(dir); {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("holder: %w", err)
		}
		if err := os.Chmod(dir, 0o700); err != nil { // MkdirAll's mode is reduced by the umask only
			return fmt.Errorf("holder: %w", err)
		}
	case err != nil:
		return fmt.Errorf("holder: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("holder: %s is not a directory", dir)
	case fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0:
		s.log.Warn("holder: socket directory is writable by others", "dir", dir)
	}
	if fi, err := os.Lstat(s.path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("%w: %s", ErrNotSocket, s.path)
		}
		if c, err := net.DialTimeout("unix", s.path, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("%w: %s", ErrInUse, s.path)
		}
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("holder: removing stale socket: %w", err)
		}
		s.log.Info("holder: removed stale socket", "path", s.path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("holder: %w", err)
	}

	tmp := fmt.Sprintf("%s.%d.%d.tmp", s.path, os.Getpid(), tmpSeq.Add(1))
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return fmt.Errorf("holder: %w", err)
	}
	// The name changes below (so peers see the temporary name as the
	// server's address); Close removes path itself.
	ln.SetUnlinkOnClose(false)
	fail := func(err error) error {
		ln.Close()
		os.Remove(tmp)
		return fmt.Errorf("holder: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	if err := renameNoReplace(tmp, s.path); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(s.path)
	if err != nil {
		ln.Close()
		return fmt.Errorf("holder: %w", err)
	}
	s.ln, s.fi = ln, fi
	return nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// peerAllowed is the access rule: the server's own uid, or root.
func peerAllowed(peer, own uint32) bool { return peer == own || peer == 0 }

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// E.g. EMFILE: back off instead of spinning; a client retries.
			s.log.Warn("holder: accept failed", "err", err)
			select {
			case <-s.done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		s.admit(c)
	}
}

func (s *Server) admit(c *net.UnixConn) {
	uid, err := s.peerUID(c)
	if err != nil {
		s.log.Warn("holder: refused a client: peer credentials unavailable", "err", err)
		c.Close()
		return
	}
	if !peerAllowed(uid, s.ownUID) {
		s.log.Warn("holder: refused a client of another user", "peer_uid", uid, "own_uid", s.ownUID)
		c.Close()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return
	}
	if len(s.clients) >= s.maxClients {
		s.log.Warn("holder: refused a client: too many clients", "max", s.maxClients)
		s.wg.Add(1)
		go func() { // not under s.mu: the write may take up to its deadline
			defer s.wg.Done()
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			c.Write(errorLine(0, "too many clients"))
			c.Close()
		}()
		return
	}
	cl := &conn{c: c, out: make(chan outMsg, 16), quit: make(chan struct{})}
	s.clients[cl] = struct{}{}
	if s.pend != nil {
		s.enqueueLocked(cl, outMsg{line: s.pend.line})
	}
	s.log.Debug("holder: client connected", "clients", len(s.clients))
	s.wg.Add(2)
	go s.writeLoop(cl)
	go s.readLoop(cl)
}

// enqueueLocked queues m for cl; a client whose queue is full is dropped.
func (s *Server) enqueueLocked(cl *conn, m outMsg) {
	select {
	case cl.out <- m:
	default:
		s.log.Warn("holder: dropped a client that does not read")
		failMsg(m, ErrClosed)
		s.dropLocked(cl)
	}
}

func failMsg(m outMsg, err error) {
	if m.zero {
		clear(m.line)
	}
	if m.sent != nil {
		m.sent <- err
	}
}

func (s *Server) dropLocked(cl *conn) {
	delete(s.clients, cl)
	cl.once.Do(func() {
		close(cl.quit)
		cl.c.Close()
	})
}

func (s *Server) drop(cl *conn) {
	s.mu.Lock()
	s.dropLocked(cl)
	s.mu.Unlock()
}

func (s *Server) writeLoop(cl *conn) {
	defer s.wg.Done()
	for {
		select {
		case m := <-cl.out:
			cl.c.SetWriteDeadline(time.Now().Add(writeTimeout))
			_, err := cl.c.Write(m.line)
			failMsg(m, err) // zeroes and reports; err may be nil
			if err != nil {
				s.log.Debug("holder: write to client failed", "err", err)
				s.drop(cl)
			}
		case <-cl.quit:
			for {
				select {
				case m := <-cl.out:
					failMsg(m, ErrClosed)
				default:
					return
				}
			}
		}
	}
}

func (s *Server) readLoop(cl *conn) {
	defer s.wg.Done()
	defer s.drop(cl)
	buf := make([]byte, maxLine)
	defer clear(buf)
	n := 0
	for {
		r, err := cl.c.Read(buf[n:])
		n += r
		for {
			i := bytes.IndexByte(buf[:n], '\n')
			if i < 0 {
				break
			}
			line := buf[:i]
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			s.handleLine(cl, line)
			clear(buf[:i+1])
			copy(buf, buf[i+1:n])
			clear(buf[n-(i+1) : n]) // the moved tail's old copy
			n -= i + 1
		}
		if n == len(buf) {
			s.log.Warn("holder: dropped a client: line too long", "max", maxLine)
			return
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("holder: read from client failed", "err", err)
			}
			return
		}
	}
}

func (s *Server) handleLine(cl *conn, line []byte) {
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	m, err := parseClientLine(line)
	clear(line)
	if err != nil {
		s.log.Info("holder: ignored a malformed message")
		s.mu.Lock()
		s.enqueueLocked(cl, outMsg{line: errorLine(0, "malformed message")})
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pend
	if p == nil || p.id != m.id || p.finished {
		clear(m.value)
		s.log.Debug("holder: ignored a message for a request that is not pending", "id", m.id)
		return
	}
	switch m.typ {
	case msgCancel:
		p.finished, p.err = true, ErrCancelled
		close(p.ready)
	case msgAnswer:
		var ferr error
		if m.overlong {
			ferr = fmt.Errorf("%w: value too long", ErrFormat)
		} else {
			Canonicalize(p.req.Kind, m.value)
			ferr = CheckFormat(p.req.Kind, m.value)
		}
		if ferr != nil {
			clear(m.value)
			s.log.Info("holder: refused an answer: bad format", "id", p.id, "kind", p.req.Kind)
			s.enqueueLocked(cl, outMsg{line: errorLine(p.id, strings.TrimPrefix(ferr.Error(), "holder: "))})
			return
		}
		p.finished, p.secret = true, NewSecret(m.value)
		close(p.ready)
	}
}

// Ask sends r to every connected client (and to clients connecting while
// it is pending) and waits for the first well-formed answer. It returns
// ErrCancelled when a client cancels, ErrTimeout after Options.Timeout,
// ctx.Err() when ctx ends, ErrClosed when the server closes, and ErrBusy
// while another Ask is pending. Whichever happens first wins. When Ask
// returns, every client gets "done" for the request.
func (s *Server) Ask(ctx context.Context, r Request) (*Secret, error) {
	if !r.Kind.Valid() {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKind, string(r.Kind))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if s.pend != nil {
		s.mu.Unlock()
		return nil, ErrBusy
	}
	s.nextID++
	p := &pending{id: s.nextID, req: r, ready: make(chan struct{})}
	p.line = requestLine(p.id, r)
	s.pend = p
	for cl := range s.clients {
		s.enqueueLocked(cl, outMsg{line: p.line})
	}
	s.mu.Unlock()
	s.log.Debug("holder: input requested", "id", p.id, "kind", r.Kind, "tries_left", r.TriesLeft, "profile", r.Profile)

	t := time.NewTimer(s.timeout)
	defer t.Stop()
	var reason error
	select {
	case <-p.ready:
	case <-t.C:
		reason = ErrTimeout
	case <-ctx.Done():
		reason = ctx.Err()
	case <-s.done:
		reason = ErrClosed
	}
	s.mu.Lock()
	if !p.finished {
		p.finished, p.err = true, reason
	}
	s.pend = nil
	done := doneLine(p.id)
	for cl := range s.clients {
		s.enqueueLocked(cl, outMsg{line: done})
	}
	s.mu.Unlock()
	if p.err != nil {
		s.log.Debug("holder: input ended without an answer", "id", p.id, "err", p.err)
		return nil, p.err
	}
	s.log.Debug("holder: input answered", "id", p.id)
	return p.secret, nil
}

// Deliver sends verified attributes to the clients connected now and waits
// until each write finished or ctx ends. It fails with ErrNoClient when no
// client is connected and when no write succeeded. The attributes are
// never logged; the encoded lines are zeroed after writing.
func (s *Server) Deliver(ctx context.Context, a Attributes) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	n := len(s.clients)
	if n == 0 {
		s.mu.Unlock()
		return ErrNoClient
	}
	sent := make(chan error, n)
	for cl := range s.clients {
		s.enqueueLocked(cl, outMsg{line: attributesLine(a), zero: true, sent: sent})
	}
	s.mu.Unlock()
	ok := 0
	var last error
	for range n {
		select {
		case err := <-sent:
			if err == nil {
				ok++
			} else {
				last = err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.log.Debug("holder: attributes delivered", "profile", a.Profile, "clients", ok)
	if ok == 0 {
		return fmt.Errorf("%w: attributes not delivered: %w", ErrNoClient, last)
	}
	return nil
}

// Close stops the server: a pending Ask returns ErrClosed, clients are
// disconnected, the socket file is removed (if it is still ours) and all
// goroutines have ended when Close returns.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	for cl := range s.clients {
		s.dropLocked(cl)
	}
	s.mu.Unlock()
	err := s.ln.Close()
	if fi, lerr := os.Lstat(s.path); lerr == nil && os.SameFile(fi, s.fi) {
		os.Remove(s.path)
	}
	s.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("holder: %w", err)
	}
	return nil
}
