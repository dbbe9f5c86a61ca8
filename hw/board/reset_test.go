package board

import (
	"context"
	"errors"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// levels records every level driven on a fake pin.
type levels struct {
	gpiotest.Pin
	seen []gpio.Level
	at   []time.Time
}

func (l *levels) Out(v gpio.Level) error {
	l.seen = append(l.seen, v)
	l.at = append(l.at, time.Now())
	return l.Pin.Out(v)
}

func TestResetLinePulse(t *testing.T) {
	p := &levels{Pin: gpiotest.Pin{N: "GPIO17"}}
	r, err := NewResetLine(p)
	if err != nil {
		t.Fatal(err)
	}
	r.Hold, r.Boot = 5*time.Millisecond, time.Millisecond
	if err := r.Pulse(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []gpio.Level{gpio.High, gpio.Low, gpio.High}
	if len(p.seen) != len(want) {
		t.Fatalf("levels %v, want %v", p.seen, want)
	}
	for i := range want {
		if p.seen[i] != want[i] {
			t.Fatalf("levels %v, want %v", p.seen, want)
		}
	}
	if held := p.at[2].Sub(p.at[1]); held < r.Hold {
		t.Fatalf("held low for %v, want ≥ %v", held, r.Hold)
	}
	if p.Read() != gpio.High {
		t.Fatal("chip left in reset")
	}
}

func TestResetLineCancelledReleasesReset(t *testing.T) {
	p := &levels{Pin: gpiotest.Pin{N: "GPIO17"}}
	r, err := NewResetLine(p)
	if err != nil {
		t.Fatal(err)
	}
	r.Hold = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := r.Pulse(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	if p.Read() != gpio.High {
		t.Fatal("a cancelled pulse left the chip held in reset")
	}
}

func TestOpenResetLineUnknownPin(t *testing.T) {
	if _, err := OpenResetLine("NO_SUCH_GPIO_KAZASHI"); err == nil {
		t.Fatal("opened a GPIO that does not exist")
	}
}
