package iso7816

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

func TestCommandBytes(t *testing.T) {
	cases := []struct {
		c    Command
		want []byte
	}{
		{Command{INS: 0xA4, P1: 0x04, P2: 0x0C, Data: []byte{1, 2}}, []byte{0, 0xA4, 4, 0x0C, 2, 1, 2}},
		{Command{INS: 0xB0, Le: 256}, []byte{0, 0xB0, 0, 0, 0}},
		{Command{INS: 0xB0, P1: 0x01, P2: 0x02, Le: 4}, []byte{0, 0xB0, 1, 2, 4}},
		{Command{INS: 0x20, P2: 0x80}, []byte{0, 0x20, 0, 0x80}},
		{Command{CLA: 0x80, INS: 0x2A, P2: 0x80, Data: []byte{9}, Le: 256}, []byte{0x80, 0x2A, 0, 0x80, 1, 9, 0}},
	}
	for _, c := range cases {
		got, err := c.c.Bytes()
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%+v: % X, %v; want % X", c.c, got, err, c.want)
		}
	}
	for _, bad := range []Command{{Data: make([]byte, 256)}, {Le: 257}, {Le: -1}} {
		if _, err := bad.Bytes(); !errors.Is(err, ErrEncoding) {
			t.Errorf("%+v encoded without error", bad)
		}
	}
}

func TestParseResponse(t *testing.T) {
	r, err := ParseResponse([]byte{1, 2, 0x90, 0x00})
	if err != nil || r.SW != SWOK || !bytes.Equal(r.Data, []byte{1, 2}) {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := ParseResponse([]byte{0x90}); !errors.Is(err, ErrShortResponse) {
		t.Fatalf("short: %v", err)
	}
}

// scripted answers APDUs from a list and records them.
type scripted struct {
	answers [][]byte
	sent    [][]byte
}

func (s *scripted) Transmit(_ context.Context, apdu []byte) ([]byte, error) {
	s.sent = append(s.sent, apdu)
	if len(s.answers) == 0 {
		return nil, errors.New("script exhausted")
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	return a, nil
}

func TestTransceiveGetResponse(t *testing.T) {
	s := &scripted{answers: [][]byte{{1, 0x61, 0x02}, {2, 3, 0x90, 0x00}}}
	got, err := Transceive(context.Background(), s, Command{INS: 0xB0, Le: 256})
	if err != nil || !bytes.Equal(got, []byte{1, 2, 3}) {
		t.Fatalf("% X %v", got, err)
	}
	if !bytes.Equal(s.sent[1], []byte{0, 0xC0, 0, 0, 2}) {
		t.Fatalf("GET RESPONSE % X", s.sent[1])
	}
}

func TestTransceiveWrongLe(t *testing.T) {
	s := &scripted{answers: [][]byte{{0x6C, 0x03}, {7, 8, 9, 0x90, 0x00}}}
	got, err := Transceive(context.Background(), s, Command{INS: 0xB0, Le: 256})
	if err != nil || !bytes.Equal(got, []byte{7, 8, 9}) || !bytes.Equal(s.sent[1], []byte{0, 0xB0, 0, 0, 3}) {
		t.Fatalf("% X %v % X", got, err, s.sent)
	}
}

func TestTransceiveStatusError(t *testing.T) {
	s := &scripted{answers: [][]byte{{0x63, 0xC2}}}
	_, err := Transceive(context.Background(), s, Command{INS: 0x20, P2: 0x80})
	var se *StatusError
	if !errors.As(err, &se) || se.SW != 0x63C2 || se.INS != 0x20 {
		t.Fatalf("%v", err)
	}
	if SWText(se.SW) != "verification failed, 2 tries left" {
		t.Fatalf("text %q", SWText(se.SW))
	}
}

func TestTransceiveEndlessGetResponse(t *testing.T) {
	s := &scripted{}
	for i := 0; i < maxGetResponse+2; i++ {
		s.answers = append(s.answers, []byte{0x61, 0x01})
	}
	if _, err := Transceive(context.Background(), s, Command{INS: 0xB0, Le: 1}); err == nil {
		t.Fatal("endless 61xx accepted")
	}
}

func FuzzTransceive(f *testing.F) {
	f.Add([]byte{0x61, 0x02}, []byte{1, 2, 0x90, 0x00})
	f.Add([]byte{0x6C, 0x00}, []byte{0x90, 0x00})
	f.Add([]byte{0x90}, []byte{})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		s := &scripted{answers: [][]byte{a, b, b, b}}
		data, err := Transceive(context.Background(), s, Command{INS: 0xB0, Le: 256})
		if err == nil && len(data) > len(a)+3*len(b) {
			t.Fatalf("more data than the card sent")
		}
	})
}
