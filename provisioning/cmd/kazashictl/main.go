// Command kazashictl is the operator tool: verify a certificate the way a
// kiosk does; import, inspect and compare CRLs; and run the reference
// backend (listen: store every kiosk's tap events in SQLite; events: query
// them). Run without arguments for usage; the subcommands live in package
// provisioning/ctl.
//
// Negative serial numbers are non-conforming (RFC 5280 §4.1.2.2) but occur
// in the field and in NIST PKITS 4.4.14/15: the operator tool parses them
// (the kiosk daemon keeps Go's default and refuses such certificates).
//
//go:debug x509negativeserial=1
package main

import (
	"context"
	"encoding/json"
	"os"
	"os/signal"
	"syscall"

	"github.com/kazashi/kazashi/hw/board"
	"github.com/kazashi/kazashi/provisioning/ctl"
)

// openReader opens the PN532 bus of a daemon "reader" configuration on
// this host's hardware.
func openReader(_ context.Context, reader json.RawMessage, record bool) (*ctl.ReaderLink, error) {
	var c board.PN532Config
	if err := json.Unmarshal(reader, &c); err != nil {
		return nil, err
	}
	if c.SPIHz == 0 {
		c.SPIHz = board.DefaultSPIHz
	}
	l, err := board.OpenPN532(board.Host{}, c, record)
	if err != nil {
		return nil, err
	}
	return &ctl.ReaderLink{Transport: l.Transport, Bus: l.Bus, Close: l.Close, Recording: l.Recording}, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ctl.Main(ctx, os.Args[1:], ctl.IO{Stdout: os.Stdout, Stderr: os.Stderr, Terminal: ctl.IsTerminal(os.Stderr), OpenReader: openReader})
	stop()
	os.Exit(code)
}
