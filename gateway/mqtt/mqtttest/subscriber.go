package mqtttest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Message is one PUBLISH as a Subscriber received it.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool
}

// Subscriber is a minimal MQTT 3.1.1 subscriber on its own TCP connection
// that records messages in the order the broker sends them (gateway/mqtt
// and paho run handlers on goroutines of their own, which loses that
// order). It speaks CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH and PUBACK
// only (MQTT 3.1.1 §3.1-3.4, §3.8-3.9), with a clean session and QoS 1.
type Subscriber struct {
	conn net.Conn
	mu   sync.Mutex
	got  []Message
	err  error
}

var subscriberSeq atomic.Int64

// dialTimeout bounds the subscriber's connect and subscribe on loopback.
const dialTimeout = 10 * time.Second

// Subscribe connects to the broker at addr (host:port, plain TCP) and
// subscribes to filter; the connection closes with the test.
func Subscribe(tb testing.TB, addr, filter string) *Subscriber {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, dialTimeout)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(dialTimeout))
	s := &Subscriber{conn: c}
	// CONNECT: protocol "MQTT" level 4, clean session, keep-alive 0 (off).
	v := appendString(nil, "MQTT")
	v = append(v, 4, 0x02, 0, 0)
	v = appendString(v, fmt.Sprintf("kz-ordered-sub-%d", subscriberSeq.Add(1)))
	writePacket(tb, c, 0x10, v)
	r := bufio.NewReader(c)
	if typ, body := readPacket(tb, r); typ != 0x20 || len(body) != 2 || body[1] != 0 {
		tb.Fatalf("mqtttest: CONNACK %#x %x", typ, body)
	}
	// SUBSCRIBE packet id 1, QoS 1.
	v = binary.BigEndian.AppendUint16(nil, 1)
	v = appendString(v, filter)
	v = append(v, 1)
	writePacket(tb, c, 0x82, v)
	if typ, body := readPacket(tb, r); typ != 0x90 || len(body) != 3 || body[2] != 1 {
		tb.Fatalf("mqtttest: SUBACK %#x %x", typ, body)
	}
	_ = c.SetDeadline(time.Time{})
	go s.read(r)
	return s
}

// Received returns the messages so far, in arrival order, and the error
// that ended the connection (nil while it is up).
func (s *Subscriber) Received() ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.got...), s.err
}

func (s *Subscriber) read(r *bufio.Reader) {
	for {
		h, err := r.ReadByte()
		if err != nil {
			s.fail(err)
			return
		}
		body, err := readBody(r)
		if err != nil {
			s.fail(err)
			return
		}
		if h>>4 != 3 { // not PUBLISH
			continue
		}
		if len(body) < 2 || len(body) < 2+int(binary.BigEndian.Uint16(body)) {
			s.fail(errors.New("mqtttest: short PUBLISH"))
			return
		}
		n := int(binary.BigEndian.Uint16(body))
		m := Message{Topic: string(body[2 : 2+n]), Retained: h&1 != 0}
		rest := body[2+n:]
		if (h>>1)&3 > 0 {
			if len(rest) < 2 {
				s.fail(errors.New("mqtttest: PUBLISH without packet id"))
				return
			}
			// PUBACK after recording: the broker's next message waits
			// for nothing of ours but the socket.
			if _, err := s.conn.Write([]byte{0x40, 2, rest[0], rest[1]}); err != nil {
				s.fail(err)
				return
			}
			rest = rest[2:]
		}
		m.Payload = rest
		s.mu.Lock()
		s.got = append(s.got, m)
		s.mu.Unlock()
	}
}

func (s *Subscriber) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// writePacket writes a control packet: header byte, remaining length
// (§2.2.3), body.
func writePacket(tb testing.TB, w io.Writer, header byte, body []byte) {
	tb.Helper()
	p := []byte{header}
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		p = append(p, b)
		if n == 0 {
			break
		}
	}
	if _, err := w.Write(append(p, body...)); err != nil {
		tb.Fatal(err)
	}
}

func readPacket(tb testing.TB, r *bufio.Reader) (byte, []byte) {
	tb.Helper()
	h, err := r.ReadByte()
	if err != nil {
		tb.Fatal(err)
	}
	body, err := readBody(r)
	if err != nil {
		tb.Fatal(err)
	}
	return h & 0xf0, body
}

// readBody reads the remaining length (§2.2.3) and the rest of a packet.
func readBody(r *bufio.Reader) ([]byte, error) {
	n, mul := 0, 1
	for i := 0; ; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		n += int(b&0x7f) * mul
		if b&0x80 == 0 {
			break
		}
		if mul *= 128; i == 3 {
			return nil, errors.New("mqtttest: remaining length too long")
		}
	}
	body := make([]byte, n)
	_, err := io.ReadFull(r, body)
	return body, err
}
