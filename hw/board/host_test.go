package board

import (
	"strings"
	"testing"
)

func TestOpenSPIValidates(t *testing.T) {
	for _, tc := range []struct {
		dev  string
		hz   int
		want string
	}{
		{"", 0, "board: no SPI device"},
		{"/dev/spidev0.0", -1, "allows 1..5000000 Hz"},
		{"/dev/spidev0.0", 6_000_000, "allows 1..5000000 Hz"},
		{"/dev/spidev-kazashi9.9", 0, "board: open SPI /dev/spidev-kazashi9.9"},
		{"/dev/spidev-kazashi9.9", 1_000_000, "board: open SPI /dev/spidev-kazashi9.9"},
	} {
		c, closer, err := OpenSPI(tc.dev, tc.hz)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OpenSPI(%q, %d) = %v, %v, %v; want error with %q", tc.dev, tc.hz, c, closer, err, tc.want)
		}
		if c != nil || closer != nil {
			t.Errorf("OpenSPI(%q, %d) returned a connection with an error", tc.dev, tc.hz)
		}
	}
}

func TestOpenI2CMissing(t *testing.T) {
	for _, bus := range []string{"", "kazashi-no-such-bus"} {
		if b, err := OpenI2C(bus); err == nil || !strings.HasPrefix(err.Error(), "board: ") {
			t.Errorf("OpenI2C(%q) = %v, %v", bus, b, err)
		}
	}
}

func TestOpenPinMissing(t *testing.T) {
	if _, err := OpenPin("NO_SUCH_GPIO_KAZASHI"); err == nil || !strings.Contains(err.Error(), `board: no GPIO named "NO_SUCH_GPIO_KAZASHI"`) {
		t.Fatalf("err %v", err)
	}
	// The host drivers load once; the second call sees the same state.
	if _, err := OpenPin("NO_SUCH_GPIO_KAZASHI"); err == nil {
		t.Fatal("second call found the pin")
	}
}

// Host is the Buses the daemon gets; check it forwards, not what it finds.
func TestHostForwards(t *testing.T) {
	var b Buses = Host{}
	if _, _, err := b.OpenSPI("", 0); err == nil {
		t.Error("Host.OpenSPI")
	}
	if _, err := b.OpenI2C(""); err == nil {
		t.Error("Host.OpenI2C")
	}
	if _, err := b.OpenPin("NO_SUCH_GPIO_KAZASHI"); err == nil {
		t.Error("Host.OpenPin")
	}
}
