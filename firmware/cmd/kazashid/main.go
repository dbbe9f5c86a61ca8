// Command kazashid is the kiosk daemon: it polls the NFC frontend, reads
// and verifies My Number Cards offline, and publishes one event per tap
// over MQTT.
//
//	kazashid -config /etc/kazashi/kazashid.json
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kazashi/kazashi/firmware/holder"
	"github.com/kazashi/kazashi/firmware/tap"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "kazashid:", err)
		os.Exit(1)
	}
}

// run is the whole daemon; it returns when ctx ends or start-up fails.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kazashid", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (JSON)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cfgPath == "" {
		fs.Usage()
		return errors.New("-config is required")
	}
	cfg, err := LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel).With("device", cfg.DeviceID)

	key, err := readPseudonymKey(cfg.PseudonymKeyFile)
	if err != nil {
		return err
	}
	tl, err := openTrust(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer tl.Close()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	trigger := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case trigger <- struct{}{}:
				default:
				}
			}
		}
	}()
	trustDone := make(chan struct{})
	trustCtx, stopTrust := context.WithCancel(ctx)
	go func() { tl.Run(trustCtx, trigger); close(trustDone) }()
	defer func() { stopTrust(); <-trustDone }()
	cv, err := loadCVAnchors(cfg)
	if err != nil {
		return err
	}

	var document func(context.Context) ([]byte, error)
	if cfg.needsSign() {
		doc, err := os.ReadFile(cfg.Profile.DocumentFile)
		if err != nil {
			return fmt.Errorf("profile.document_file: %w", err)
		}
		sum := sha256.Sum256(doc)
		document = func(context.Context) ([]byte, error) { return sum[:], nil }
	}
	var input *holder.Server
	if cfg.needsInput() {
		input, err = holder.Listen(cfg.HolderInput.Socket, &holder.Options{Timeout: time.Duration(cfg.HolderInput.Timeout), Logger: log.With("component", "holder-input")})
		if err != nil {
			return err
		}
		defer input.Close()
	}

	reader, err := newReader(cfg, hostBuses, log)
	if err != nil {
		return err
	}
	defer reader.Close()
	ul, closeUplink, err := startUplink(ctx, cfg, *cfgPath, tl, readerHealth(reader), log)
	if err != nil {
		return err
	}
	defer closeUplink()
	sink := &eventSink{uplink: ul}

	p := &tap.Pipeline{
		Reader:   reader,
		Verifier: tl,
		CV:       cv,
		Profile: tap.Profile{
			Name:                      cfg.Profile.Name,
			Service:                   cfg.Profile.Service,
			TriesFloor:                cfg.Profile.TriesFloor,
			IndividualNumberPermitted: cfg.Profile.IndividualNumberPermitted,
		},
		Document:      document,
		Sink:          sink,
		Display:       &consoleDisplay{w: stdout},
		DeviceID:      cfg.DeviceID,
		PseudonymKey:  key,
		Now:           time.Now,
		Clock:         tl.EventClock,
		RevocationAge: tl.RevocationAge,
		Logger:        log.With("component", "tap"),
	}
	if input != nil {
		p.Input, p.Local = input, input
	}
	log.Info("kazashid running", "profile", cfg.Profile.Name, "reader", cfg.Reader.Driver, "events", cfg.MQTT.TopicPrefix+"/"+cfg.DeviceID+"/events", "test_mode", cfg.Trust.AllowTest)
	return p.Run(ctx)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
