package mqtttest

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a loopback TCP relay between MQTT clients and a broker. Cut drops
// every relayed connection at once, which looks to the broker like a client
// whose network died (no DISCONNECT packet), the case that fires a last will.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup

	blackhole atomic.Bool
}

// StartProxy listens on 127.0.0.1 and relays each connection to target
// ("host:port" or "tcp://host:port", loopback only). It closes with the test.
func StartProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	target = strings.TrimPrefix(target, "tcp://")
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		tb.Fatalf("mqtttest: proxy target %q: %v", target, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		tb.Fatalf("mqtttest: proxy target %q is not a loopback IP", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("mqtttest: proxy listen: %v", err)
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.close)
	return p
}

// URL is the address clients dial instead of the broker's.
func (p *Proxy) URL() string { return "tcp://" + p.ln.Addr().String() }

// Cut closes every connection relayed so far, on both sides. The proxy keeps
// accepting, so clients can reconnect through it.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// Blackhole makes the proxy silently drop every byte in both directions while
// on (connections stay open), like a network that lost its route: neither end
// notices until a keep-alive or an acknowledgement times out.
func (p *Proxy) Blackhole(on bool) { p.blackhole.Store(on) }

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	_ = p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // listener closed
		}
		upstream, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = client.Close()
			_ = upstream.Close()
			return
		}
		p.conns[client] = struct{}{}
		p.conns[upstream] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(upstream, client)
		go p.pipe(client, upstream)
	}
}

// pipe copies src to dst (dropping bytes while blackholed); when either side
// ends, both are closed so the other direction ends too.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.blackhole.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}
