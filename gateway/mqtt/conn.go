package mqtt

import (
	"context"
	"net"
	"sync"
	"time"
)

// handshakeConn ties the MQTT handshake to the connection attempt's ctx.
// paho bounds CONNECT/CONNACK with SetDeadline(now+ConnectTimeout) and clears
// it with SetDeadline(zero) once connected. Until that clearing call, this
// wrapper clamps deadlines to ctx's deadline and, if ctx is cancelled, forces
// an expired deadline so a broker that accepted TCP but never answers cannot
// hold Connect (or Close) past ctx. After the handshake it is a plain
// pass-through and ctx no longer matters.
type handshakeConn struct {
	net.Conn

	mu       sync.Mutex
	limit    time.Time   // ctx's deadline, zero if none
	done     bool        // handshake finished; stop interfering
	stopWait func() bool // unregisters the ctx watcher
}

func newHandshakeConn(ctx context.Context, conn net.Conn) *handshakeConn {
	h := &handshakeConn{Conn: conn}
	h.limit, _ = ctx.Deadline()
	h.stopWait = context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if !h.done {
			_ = h.Conn.SetDeadline(time.Unix(1, 0)) // in the past: unblock reads and writes now
		}
	})
	return h
}

func (h *handshakeConn) SetDeadline(t time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.done {
		if t.IsZero() { // paho: handshake succeeded
			h.done = true
			h.stopWait()
		} else if !h.limit.IsZero() && h.limit.Before(t) {
			t = h.limit
		}
	}
	return h.Conn.SetDeadline(t)
}
