package isodep

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// h decodes hex written like the standard's examples: "02 00 A4 04 0C".
func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(fmt.Sprintf("bad hex %q: %v", s, err))
	}
	return b
}

// seq returns n bytes 00 01 02 ... as sample APDU data.
func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// cat concatenates byte slices.
func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// step is one expected exchange: the frame the reader must send and what
// the card side answers (a frame, or err).
type step struct {
	send    []byte
	answer  []byte
	err     error
	timeout time.Duration // 0 = do not check
}

func ex(send, answer []byte) step          { return step{send: send, answer: answer} }
func lost(send []byte) step                { return step{send: send, err: ErrNoResponse} }
func damaged(send []byte) step             { return step{send: send, err: ErrTransmission} }
func (s step) within(d time.Duration) step { s.timeout = d; return s }

// script is a Transceiver that replays hand-written exchanges and fails the
// test on any deviation, like periph's conntest playback.
type script struct {
	t        *testing.T
	steps    []step
	i        int
	timeouts []time.Duration
}

func newScript(t *testing.T, steps ...step) *script {
	t.Helper()
	s := &script{t: t, steps: steps}
	t.Cleanup(func() {
		if s.i != len(s.steps) {
			t.Errorf("script: %d of %d exchanges used; next expected frame % X", s.i, len(s.steps), s.steps[s.i].send)
		}
	})
	return s
}

func (s *script) Transceive(_ context.Context, frame []byte, timeout time.Duration) ([]byte, error) {
	if s.i >= len(s.steps) {
		s.t.Errorf("script: unexpected frame % X after the last exchange", frame)
		return nil, errors.New("script exhausted")
	}
	st := s.steps[s.i]
	s.i++
	s.timeouts = append(s.timeouts, timeout)
	if !bytes.Equal(frame, st.send) {
		s.t.Errorf("script: exchange %d: reader sent\n\t% X\nwant\n\t% X", s.i, frame, st.send)
	}
	if st.timeout != 0 && timeout != st.timeout {
		s.t.Errorf("script: exchange %d: timeout %v, want %v", s.i, timeout, st.timeout)
	}
	if st.err != nil {
		return nil, fmt.Errorf("script: %w", st.err)
	}
	return append([]byte(nil), st.answer...), nil
}

// conn builds a session over s with the given FSC and FWI; cid < 0 means
// no CID.
func conn(t *testing.T, tr Transceiver, fsc int, fwi byte, cid int, opts *Opts) *Conn {
	t.Helper()
	p := Params{FSC: fsc, FWT: FrameWaitingTime(fwi)}
	if cid >= 0 {
		p.CID, p.UseCID = byte(cid), true
	}
	c, err := New(tr, p, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func noSleep(context.Context, time.Duration) error { return nil }
