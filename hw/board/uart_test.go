package board

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

func TestOpenUARTOverPTY(t *testing.T) {
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()
	p, err := OpenUART(slave.Name(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Write([]byte{0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00}); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 6)
	if _, err := io.ReadFull(master, got); err != nil || !bytes.Equal(got, []byte{0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00}) {
		t.Fatalf("master read % X, %v", got, err)
	}
	// Raw mode and the 100 ms read timeout: a read with nothing to read
	// returns with no data instead of blocking.
	start := time.Now()
	n, _ := p.Read(make([]byte, 8))
	if n != 0 || time.Since(start) > 2*time.Second {
		t.Fatalf("idle read returned %d bytes after %v", n, time.Since(start))
	}
}

func TestOpenUARTMissingDevice(t *testing.T) {
	_, err := OpenUART("/dev/does-not-exist-kazashi", 115200)
	if err == nil || !strings.Contains(err.Error(), "board: open /dev/does-not-exist-kazashi") {
		t.Fatalf("err %v", err)
	}
}
