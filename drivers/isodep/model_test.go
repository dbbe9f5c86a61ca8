package isodep

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// modelCard is a card-side ISO-DEP model written from the PICC rules of
// ISO/IEC 14443-4:2008 §7.5.3.2 (rules C, D, E) and §7.5.4.3 (rules 9–13),
// used to check Conn end to end under injected faults.
type modelCard struct {
	t        testing.TB
	fsc      int // the card's FSC: reader frames must fit (CRC included)
	fsd      int // the reader's FSD: the card cuts its chain to fit
	cid      int // -1: none
	wtxm     byte
	num      byte // rule C: 1 at activation
	rx       []byte
	tx       []byte
	last     []byte
	pending  []byte // command waiting for the S(WTX) response
	executed int
}

func newModelCard(t testing.TB, fsc, cid int, wtxm byte) *modelCard {
	return &modelCard{t: t, fsc: fsc, fsd: FSD, cid: cid, wtxm: wtxm, num: 1}
}

// execute answers an APDU with a response derived from it: len(apdu)*3
// bytes of data (at most 300) and 90 00.
func modelResponse(apdu []byte) []byte {
	n := min(len(apdu)*3, 300)
	out := make([]byte, 0, n+2)
	for i := range n {
		out = append(out, apdu[i%len(apdu)]^byte(i))
	}
	return append(out, 0x90, 0x00)
}

func (m *modelCard) header(pcb byte) []byte {
	if m.cid >= 0 {
		return []byte{pcb | pcbCID, byte(m.cid)}
	}
	return []byte{pcb}
}

func (m *modelCard) send(b []byte) []byte { m.last = b; return b }

func (m *modelCard) nextI() []byte {
	h := m.header(pcbI | m.num)
	room := m.fsd - len(h) - 2
	chunk := m.tx
	if len(chunk) > room {
		chunk = chunk[:room]
		h[0] |= pcbChaining
	}
	m.tx = m.tx[len(chunk):]
	return m.send(append(h, chunk...))
}

func (m *modelCard) run(cmd []byte) []byte {
	m.executed++
	m.tx = modelResponse(cmd)
	return m.nextI()
}

// handle returns the card's answer to one frame, nil for silence.
func (m *modelCard) handle(frame []byte) []byte {
	if len(frame)+2 > m.fsc {
		m.t.Errorf("reader frame of %d bytes (+CRC) exceeds FSC %d", len(frame), m.fsc)
	}
	b, err := ParseBlock(frame)
	if err != nil {
		m.t.Errorf("reader sent an invalid block % X: %v", frame, err)
		return nil
	}
	if (m.cid >= 0) != b.HasCID || (b.HasCID && int(b.CID) != m.cid) {
		return nil // §7.1.1.2: not addressed to this card
	}
	switch b.Type {
	case IBlock:
		m.num ^= 1 // rule D
		if b.Chaining {
			m.rx = append(m.rx, b.INF...)
			return m.send(m.header(pcbR | m.num)) // rule 2
		}
		cmd := append(m.rx, b.INF...)
		m.rx = nil
		if m.wtxm != 0 { // rule 9
			m.pending = cmd
			return m.send(append(m.header(pcbWTX), m.wtxm))
		}
		return m.run(cmd) // rule 10
	case RACK, RNAK:
		if b.Num == m.num { // rule 11
			return m.last
		}
		if b.Type == RNAK { // rule 12
			return m.send(m.header(pcbR | m.num))
		}
		if len(m.tx) > 0 { // rules E and 13
			m.num ^= 1
			return m.nextI()
		}
		return nil
	case SWTX:
		if m.pending == nil || b.WTXM() != m.wtxm {
			m.t.Errorf("unexpected S(WTX) response % X", frame)
			return nil
		}
		cmd := m.pending
		m.pending = nil
		return m.run(cmd)
	case SDeselect:
		return m.header(pcbDeselect)
	}
	return nil
}

// faulty puts a modelCard behind a lossy RF link.
type faulty struct {
	card                     *modelCard
	rng                      *rand.Rand
	dropReq, dropAns, damage float64
}

func (f *faulty) Transceive(_ context.Context, frame []byte, _ time.Duration) ([]byte, error) {
	if f.rng.Float64() < f.dropReq {
		return nil, ErrNoResponse // the card never saw it
	}
	ans := f.card.handle(frame)
	switch {
	case ans == nil:
		return nil, ErrNoResponse
	case f.rng.Float64() < f.dropAns:
		return nil, ErrNoResponse
	case f.rng.Float64() < f.damage:
		return nil, ErrTransmission
	}
	return append([]byte(nil), ans...), nil
}

// Under random losses every successful Transmit returns the right answer
// and ran the command exactly once; every failure is a clean error.
func TestTransmitAgainstModelCard(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	var ok, failed int
	for session := range 200 {
		fsc := FrameSize(byte(rng.IntN(9)))
		cid := -1
		if session%3 == 0 {
			cid = 1 + rng.IntN(14)
		}
		var wtxm byte
		if session%4 == 1 {
			wtxm = byte(1 + rng.IntN(59))
		}
		card := newModelCard(t, fsc, cid, wtxm)
		f := &faulty{card: card, rng: rng, dropReq: 0.05, dropAns: 0.05, damage: 0.05}
		p := Params{FSC: fsc, FWT: FrameWaitingTime(4)}
		if cid >= 0 {
			p.CID, p.UseCID = byte(cid), true
		}
		c, err := New(f, p, &Opts{Retries: 3})
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			apdu := make([]byte, 1+rng.IntN(300))
			for i := range apdu {
				apdu[i] = byte(rng.Uint32())
			}
			before := card.executed
			resp, err := c.Transmit(ctx, apdu)
			if err != nil {
				// A lossy link alone must never look like a rule
				// violation of the card.
				if !errors.Is(err, ErrNoResponse) && !errors.Is(err, ErrTransmission) {
					t.Errorf("session %d: unexpected error: %v", session, err)
				}
				failed++
				break
			}
			ok++
			if !bytes.Equal(resp, modelResponse(apdu)) {
				t.Fatalf("session %d: wrong response (%d bytes)", session, len(resp))
			}
			if n := card.executed - before; n != 1 {
				t.Fatalf("session %d: command executed %d times", session, n)
			}
		}
	}
	t.Logf("%d exchanges succeeded, %d sessions ended in errors", ok, failed)
	if ok < 500 {
		t.Errorf("only %d exchanges succeeded: recovery too weak", ok)
	}
}

// Without faults Present sees the model card between exchanges and does
// not disturb the block numbering.
func TestPresentAgainstModelCard(t *testing.T) {
	card := newModelCard(t, 64, -1, 0)
	c, err := New(&faulty{card: card, rng: rand.New(rand.NewPCG(3, 4))}, Params{FSC: 64}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 4 {
		if ok, err := c.Present(ctx); !ok || err != nil {
			t.Fatalf("Present #%d: %v %v", i, ok, err)
		}
		apdu := seq(10 + i*40)
		if resp := transmit(t, c, apdu); !bytes.Equal(resp, modelResponse(apdu)) {
			t.Fatalf("response #%d wrong", i)
		}
	}
	if err := c.Deselect(ctx); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkTransmit reads a 256-byte record from a My Number Card-like
// model (FSC 256, no CID): one command block, two response blocks.
func BenchmarkTransmit(b *testing.B) {
	card := newModelCard(b, 256, -1, 0)
	c, err := New(&faulty{card: card, rng: rand.New(rand.NewPCG(5, 6))}, Params{FSC: 256, FWT: FrameWaitingTime(10)}, nil)
	if err != nil {
		b.Fatal(err)
	}
	apdu := seq(86) // → 258-byte response
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Transmit(ctx, apdu); err != nil {
			b.Fatal(err)
		}
	}
	st := c.Stats()
	b.ReportMetric(float64(st.BlocksSent)/float64(b.N), "blocks/op")
}
