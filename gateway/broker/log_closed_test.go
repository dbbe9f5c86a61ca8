package broker

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
)

func TestQuietHandlerDropsClosedConnectionNoise(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(&quietHandler{inner: slog.NewTextHandler(&buf, nil), min: slog.LevelWarn})
	log.Warn("", "error", fmt.Errorf("read tcp 127.0.0.1:1->127.0.0.1:2: %w", net.ErrClosed))
	if buf.Len() != 0 {
		t.Fatalf("closed-connection noise logged: %s", buf.String())
	}
	log.Warn("listener failed", "error", fmt.Errorf("accept: permission denied"))
	if !strings.Contains(buf.String(), "listener failed") {
		t.Fatalf("real warning dropped: %q", buf.String())
	}
}
