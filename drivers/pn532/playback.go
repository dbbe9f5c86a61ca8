package pn532

// Recordings of bus transactions, so that a field report becomes a test.
//
// A Recording is what one host did with one chip on one bus, transaction
// by transaction, in a JSON form meant to be read next to the datasheet.
// Recorders wrap a live spi.Conn, i2c.Bus or serial port and append what
// passes; SPIPlayback, I2CPlayback and UARTPlayback turn a recording back
// into a fake bus that fails on the first transaction the host makes
// differently and reports the recorded transactions it never made.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"periph.io/x/conn/v3"
	"periph.io/x/conn/v3/conntest"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/spi"
	"periph.io/x/conn/v3/spi/spitest"
)

// Bus names in a Recording.
const (
	BusUART = "uart"
	BusSPI  = "spi"
	BusI2C  = "i2c"
)

// ErrPlayback is wrapped by every error a playback reports: the host did
// something the recording did not, or left recorded transactions unused.
var ErrPlayback = errors.New("pn532: playback mismatch")

// Recording is a sequence of bus transactions.
type Recording struct {
	// Bus is BusUART, BusSPI or BusI2C.
	Bus string `json:"bus"`
	// Note says where the recording comes from (a board, a field report,
	// a datasheet figure).
	Note string `json:"note,omitempty"`
	// ReverseBits (SPI only) says the host reversed each byte's bits in
	// software (SPIOpts.HardwareLSBFirst false). The ops always hold the
	// bytes as the PN532 means them (DW is 01, frames read as in
	// UM0701-02); SPIPlayback reverses them into what the MSB-first
	// controller sees when ReverseBits is set.
	ReverseBits bool `json:"reverse_bits,omitempty"`
	Ops         []Op `json:"ops"`
}

// Op is one transaction.
//
// SPI: one transfer, W out and R in (full duplex: equal lengths, or R
// empty for a write). I2C: one transaction at Addr (0 means I2CAddr), W
// written, then R read. UART: W is what the host writes, then R is what
// the chip sends; an op may hold either or both, and the byte stream may
// be cut into writes and reads anywhere.
type Op struct {
	Addr uint16 `json:"addr,omitempty"`
	W    Hex    `json:"w,omitempty"`
	R    Hex    `json:"r,omitempty"`
}

// Hex is bytes that JSON holds as a string of space-separated hex bytes,
// "01 a0 b0". A run of hexRun or more equal bytes is written "00*275" (the
// byte, a star, the count); reading accepts both forms, upper or lower
// case, and tokens of several bytes ("0102").
type Hex []byte

// hexRun is the shortest run of equal bytes Hex writes as "xx*n".
const hexRun = 8

// hexMax bounds what a Hex string may decode to (1 MiB).
const hexMax = 1 << 20

func (h Hex) String() string {
	var sb strings.Builder
	for i := 0; i < len(h); {
		j := i + 1
		for j < len(h) && h[j] == h[i] {
			j++
		}
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		if j-i >= hexRun {
			fmt.Fprintf(&sb, "%02x*%d", h[i], j-i)
			i = j
			continue
		}
		fmt.Fprintf(&sb, "%02x", h[i])
		i++
	}
	return sb.String()
}

// MarshalText implements encoding.TextMarshaler.
func (h Hex) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hex) UnmarshalText(text []byte) error {
	var out []byte
	for _, tok := range strings.Fields(string(text)) {
		b, n, run := tok, 1, false
		if k := strings.IndexByte(tok, '*'); k >= 0 {
			c, err := strconv.Atoi(tok[k+1:])
			if err != nil || c < 1 || c > hexMax {
				return fmt.Errorf("pn532: hex %q: bad repeat count", tok)
			}
			b, n, run = tok[:k], c, true
		}
		v, err := hex.DecodeString(b)
		if err != nil {
			return fmt.Errorf("pn532: hex %q: %w", tok, err)
		}
		if run && len(v) != 1 {
			return fmt.Errorf("pn532: hex %q: a repeat takes one byte", tok)
		}
		if len(out)+len(v)*n > hexMax {
			return fmt.Errorf("pn532: hex: more than %d bytes", hexMax)
		}
		for range n {
			out = append(out, v...)
		}
	}
	*h = out
	return nil
}

// ReadRecording reads one JSON recording and checks it.
func ReadRecording(r io.Reader) (*Recording, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var rec Recording
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("pn532: recording: %w", err)
	}
	if err := rec.Check(); err != nil {
		return nil, err
	}
	return &rec, nil
}

// WriteRecording writes rec as indented JSON, one op a line.
func WriteRecording(w io.Writer, rec *Recording) error {
	if err := rec.Check(); err != nil {
		return err
	}
	var b bytes.Buffer
	head := struct {
		Bus         string `json:"bus"`
		Note        string `json:"note,omitempty"`
		ReverseBits bool   `json:"reverse_bits,omitempty"`
	}{rec.Bus, rec.Note, rec.ReverseBits}
	h, err := json.Marshal(head)
	if err != nil {
		return fmt.Errorf("pn532: recording: %w", err)
	}
	b.Write(h[:len(h)-1]) // without the closing brace
	b.WriteString(`,"ops":[`)
	for i, op := range rec.Ops {
		o, err := json.Marshal(op)
		if err != nil {
			return fmt.Errorf("pn532: recording: %w", err)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n  ")
		b.Write(o)
	}
	b.WriteString("\n]}\n")
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("pn532: recording: %w", err)
	}
	return nil
}

// Check reports a recording that no playback can serve.
func (r *Recording) Check() error {
	switch r.Bus {
	case BusUART, BusSPI, BusI2C:
	default:
		return fmt.Errorf("pn532: recording: unknown bus %q (want %q, %q or %q)", r.Bus, BusUART, BusSPI, BusI2C)
	}
	if r.ReverseBits && r.Bus != BusSPI {
		return fmt.Errorf("pn532: recording: reverse_bits on a %s recording", r.Bus)
	}
	for i, op := range r.Ops {
		if len(op.W) == 0 && len(op.R) == 0 {
			return fmt.Errorf("pn532: recording: op %d is empty", i)
		}
		if op.Addr != 0 && r.Bus != BusI2C {
			return fmt.Errorf("pn532: recording: op %d has an address on %s", i, r.Bus)
		}
		if op.Addr > 0x7F {
			return fmt.Errorf("pn532: recording: op %d: address %#x is not 7-bit", i, op.Addr)
		}
		if r.Bus == BusSPI && len(op.W) != 0 && len(op.R) != 0 && len(op.W) != len(op.R) {
			return fmt.Errorf("pn532: recording: op %d: SPI transfer writes %d bytes and reads %d", i, len(op.W), len(op.R))
		}
	}
	return nil
}

// SPIPlayback returns a periph playback port serving the recording (Bus
// BusSPI). Connect it once to get the spi.Conn for NewSPI; its Close
// reports recorded transfers left unused. It returns errors rather than
// panicking.
func (r *Recording) SPIPlayback() *spitest.Playback {
	ops := make([]conntest.IO, len(r.Ops))
	for i, op := range r.Ops {
		w, rd := busClone(op.W), busClone(op.R)
		if r.ReverseBits {
			busReverse(w)
			busReverse(rd)
		}
		ops[i] = conntest.IO{W: w, R: rd}
	}
	return &spitest.Playback{Playback: conntest.Playback{Ops: ops, D: conn.Full, DontPanic: true}}
}

// I2CPlayback returns a periph playback bus serving the recording (Bus
// BusI2C). Its Close reports recorded transactions left unused. It
// returns errors rather than panicking.
func (r *Recording) I2CPlayback() *i2ctest.Playback {
	ops := make([]i2ctest.IO, len(r.Ops))
	for i, op := range r.Ops {
		addr := op.Addr
		if addr == 0 {
			addr = I2CAddr
		}
		ops[i] = i2ctest.IO{Addr: addr, W: busClone(op.W), R: busClone(op.R)}
	}
	return &i2ctest.Playback{Ops: ops, DontPanic: true}
}

// UARTPlayback returns a serial port serving the recording (Bus BusUART).
func (r *Recording) UARTPlayback() *UARTPlayback {
	p := &UARTPlayback{ops: make([]Op, len(r.Ops))}
	for i, op := range r.Ops {
		p.ops[i] = Op{W: busClone(op.W), R: busClone(op.R)}
	}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// UARTPlayback is an io.ReadWriter that plays a UART recording: each op's
// W must be what the host writes next, byte for byte, and then the op's R
// is what reads return. A read blocks until the recording reaches chip
// bytes (or Close). A mismatched write fails with an error naming the op
// and the bytes expected and written; the playback then stays failed.
type UARTPlayback struct {
	mu   sync.Mutex
	cond *sync.Cond
	ops  []Op
	// next is the op being played; off counts its bytes played, W's first
	// and then R's.
	next, off int
	err       error
	closed    bool
}

// Write matches b against the recording.
func (p *UARTPlayback) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.cond.Broadcast()
	if p.err != nil {
		return 0, p.err
	}
	if p.closed {
		return 0, fmt.Errorf("%w: write %v after Close", ErrPlayback, Hex(b))
	}
	for n := 0; n < len(b); {
		p.skipDone()
		if p.next >= len(p.ops) {
			return n, p.fail(fmt.Errorf("%w: host wrote %v after the last of %d recorded ops", ErrPlayback, Hex(b[n:]), len(p.ops)))
		}
		op := p.ops[p.next]
		if p.off >= len(op.W) {
			return n, p.fail(fmt.Errorf("%w: op %d: host wrote %v while the chip is still to send %v", ErrPlayback, p.next, Hex(b[n:]), op.R[p.off-len(op.W):]))
		}
		want := op.W[p.off:]
		k := min(len(want), len(b)-n)
		if !bytes.Equal(b[n:n+k], want[:k]) {
			return n, p.fail(fmt.Errorf("%w: op %d: host wrote %v, recording expects %v", ErrPlayback, p.next, Hex(b[n:]), want))
		}
		n += k
		p.off += k
	}
	p.skipDone()
	return len(b), nil
}

// Read returns the chip's recorded bytes once the host has written
// everything recorded before them. After Close it returns io.EOF.
func (p *UARTPlayback) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.closed {
			return 0, io.EOF
		}
		p.skipDone()
		if p.err == nil && p.next < len(p.ops) {
			op := p.ops[p.next]
			if p.off >= len(op.W) {
				n := copy(b, op.R[p.off-len(op.W):])
				p.off += n
				p.skipDone()
				p.cond.Broadcast()
				return n, nil
			}
		}
		p.cond.Wait()
	}
}

// Done reports the first mismatch, or the recorded ops not played.
func (p *UARTPlayback) Done() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.skipDone()
	if p.next < len(p.ops) {
		op := p.ops[p.next]
		return fmt.Errorf("%w: %d of %d recorded ops unused, from op %d (w %q, r %q; %d bytes of it played)",
			ErrPlayback, len(p.ops)-p.next, len(p.ops), p.next, op.W, op.R, p.off)
	}
	return nil
}

// Close ends the playback: reads return io.EOF. It returns Done().
func (p *UARTPlayback) Close() error {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	return p.Done()
}

// skipDone moves past a fully played op.
func (p *UARTPlayback) skipDone() {
	for p.next < len(p.ops) && p.off >= len(p.ops[p.next].W)+len(p.ops[p.next].R) {
		p.next++
		p.off = 0
	}
}

func (p *UARTPlayback) fail(err error) error {
	if p.err == nil {
		p.err = err
	}
	return p.err
}

// SPIRecorder is an spi.Conn that passes transfers to a live connection
// and records them (with periph's conntest.Record). With reverseBits it
// records the bytes as the chip means them, for a host that reverses bits
// in software.
type SPIRecorder struct {
	rec     conntest.Record
	c       spi.Conn
	reverse bool
}

// NewSPIRecorder wraps c.
func NewSPIRecorder(c spi.Conn, reverseBits bool) *SPIRecorder {
	return &SPIRecorder{rec: conntest.Record{Conn: c}, c: c, reverse: reverseBits}
}

func (r *SPIRecorder) String() string { return "record(" + r.c.String() + ")" }

// Tx implements spi.Conn.
func (r *SPIRecorder) Tx(w, read []byte) error { return r.rec.Tx(w, read) }

// Duplex implements spi.Conn.
func (r *SPIRecorder) Duplex() conn.Duplex { return r.c.Duplex() }

// TxPackets implements spi.Conn; each packet is recorded as one op.
func (r *SPIRecorder) TxPackets(p []spi.Packet) error {
	if err := r.c.TxPackets(p); err != nil {
		return err
	}
	r.rec.Lock()
	defer r.rec.Unlock()
	for _, pk := range p {
		r.rec.Ops = append(r.rec.Ops, conntest.IO{W: busClone(pk.W), R: busClone(pk.R)})
	}
	return nil
}

// Recording returns what was recorded so far.
func (r *SPIRecorder) Recording(note string) *Recording {
	r.rec.Lock()
	defer r.rec.Unlock()
	rec := &Recording{Bus: BusSPI, Note: note, ReverseBits: r.reverse, Ops: make([]Op, len(r.rec.Ops))}
	for i, x := range r.rec.Ops {
		w, rd := busClone(x.W), busClone(x.R)
		if r.reverse {
			busReverse(w)
			busReverse(rd)
		}
		rec.Ops[i] = Op{W: w, R: rd}
	}
	return rec
}

// I2CRecorder is an i2c.Bus that passes transactions to a live bus and
// records them (with periph's i2ctest.Record).
type I2CRecorder struct {
	rec i2ctest.Record
}

// NewI2CRecorder wraps b.
func NewI2CRecorder(b i2c.Bus) *I2CRecorder {
	return &I2CRecorder{rec: i2ctest.Record{Bus: b}}
}

func (r *I2CRecorder) String() string { return "record(" + r.rec.Bus.String() + ")" }

// Tx implements i2c.Bus.
func (r *I2CRecorder) Tx(addr uint16, w, read []byte) error { return r.rec.Tx(addr, w, read) }

// SetSpeed implements i2c.Bus.
func (r *I2CRecorder) SetSpeed(f physic.Frequency) error { return r.rec.SetSpeed(f) }

// Recording returns what was recorded so far.
func (r *I2CRecorder) Recording(note string) *Recording {
	r.rec.Lock()
	defer r.rec.Unlock()
	rec := &Recording{Bus: BusI2C, Note: note, Ops: make([]Op, len(r.rec.Ops))}
	for i, x := range r.rec.Ops {
		rec.Ops[i] = Op{Addr: x.Addr, W: busClone(x.W), R: busClone(x.R)}
	}
	return rec
}

// UARTRecorder is an io.ReadWriter that passes reads and writes to a
// live serial port and records them: one op per write, the bytes read
// until the next write gathered into one op. It does not pass on a
// port's SetBaud: record at one speed.
type UARTRecorder struct {
	rw  io.ReadWriter
	mu  sync.Mutex
	ops []Op
}

// NewUARTRecorder wraps rw.
func NewUARTRecorder(rw io.ReadWriter) *UARTRecorder { return &UARTRecorder{rw: rw} }

// Read implements io.Reader.
func (r *UARTRecorder) Read(b []byte) (int, error) {
	n, err := r.rw.Read(b)
	if n > 0 {
		r.mu.Lock()
		if k := len(r.ops); k > 0 && len(r.ops[k-1].W) == 0 {
			r.ops[k-1].R = append(r.ops[k-1].R, b[:n]...)
		} else {
			r.ops = append(r.ops, Op{R: busClone(b[:n])})
		}
		r.mu.Unlock()
	}
	return n, err
}

// Write implements io.Writer.
func (r *UARTRecorder) Write(b []byte) (int, error) {
	n, err := r.rw.Write(b)
	if n > 0 {
		r.mu.Lock()
		r.ops = append(r.ops, Op{W: busClone(b[:n])})
		r.mu.Unlock()
	}
	return n, err
}

// Recording returns what was recorded so far.
func (r *UARTRecorder) Recording(note string) *Recording {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := &Recording{Bus: BusUART, Note: note, Ops: make([]Op, len(r.ops))}
	for i, op := range r.ops {
		rec.Ops[i] = Op{W: busClone(op.W), R: busClone(op.R)}
	}
	return rec
}

// busClone copies b; nil and empty stay nil.
func busClone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

var (
	_ spi.Conn      = (*SPIRecorder)(nil)
	_ i2c.Bus       = (*I2CRecorder)(nil)
	_ io.ReadWriter = (*UARTRecorder)(nil)
	_ io.ReadWriter = (*UARTPlayback)(nil)
)
