package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kazashi/kazashi/firmware/trustlayer"
	"github.com/kazashi/kazashi/gateway/broker"
	"github.com/kazashi/kazashi/gateway/mqtt"
	"github.com/kazashi/kazashi/gateway/outbox"
	"github.com/kazashi/kazashi/gateway/topics"
	"github.com/kazashi/kazashi/gateway/uplink"
)

// version is the firmware version, set at build time with
// -ldflags "-X main.version=…".
var version = "dev"

// startUplink composes the outbox, the broker connection and (when
// configured) the embedded broker; the returned function shuts them down
// within cfg.ShutdownGrace.
func startUplink(ctx context.Context, cfg *Config, cfgPath string, tl *trustlayer.Layer, reader func() uplink.ReaderHealth, log *slog.Logger) (*uplink.Uplink, func(), error) {
	tree, err := topics.New(cfg.MQTT.TopicPrefix, cfg.DeviceID)
	if err != nil {
		return nil, nil, err
	}
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	digest := sha256.Sum256(raw)
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	brokerURL := cfg.MQTT.Broker
	if cfg.MQTT.Embedded {
		b, err := broker.Start(ctx, cfg.MQTT.EmbeddedListen, log.With("component", "broker"))
		if err != nil {
			return nil, nil, fmt.Errorf("embedded broker: %w", err)
		}
		closers = append(closers, func() { b.Close() })
		brokerURL = b.Addr()
		log.Info("embedded MQTT broker (configured explicitly)", "addr", brokerURL)
	}
	o := mqtt.Options{Broker: brokerURL, ClientID: cfg.MQTT.ClientID, Username: cfg.MQTT.Username}
	if cfg.MQTT.PasswordFile != "" {
		p, err := os.ReadFile(cfg.MQTT.PasswordFile)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("mqtt password file: %w", err)
		}
		o.Password = strings.TrimSpace(string(p))
	}
	if t := cfg.MQTT.TLS; t.CAFile != "" || t.CertFile != "" {
		tc, err := mqtt.TLSFiles{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName}.Config()
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		if id := mqtt.ClientIdentity(tc); tc.Certificates != nil && id != cfg.DeviceID {
			closeAll()
			// Under the shipped broker configuration every event would be
			// acknowledged and silently dropped by the ACL.
			return nil, nil, fmt.Errorf("config: mqtt.tls.cert_file is a certificate for %q but device_id is %q: the broker takes the device's identity from its certificate (deploy/mosquitto: use_identity_as_username) and would let it publish only under %s/%s/",
				id, cfg.DeviceID, cfg.MQTT.TopicPrefix, id)
		}
		o.TLSConfig = tc
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Outbox.Path), 0o750); err != nil {
		closeAll()
		return nil, nil, fmt.Errorf("outbox: %w", err)
	}
	ob, err := outbox.Open(cfg.Outbox.Path, outbox.Options{MaxMessages: cfg.Outbox.MaxMessages, MaxBytes: cfg.Outbox.MaxBytes})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	closers = append(closers, func() { ob.Close() })
	d := &outbox.Deliverer{
		Refused:    func(err error) bool { return errors.Is(err, mqtt.ErrInvalidTopic) },
		MaxPayload: cfg.MQTT.MaxPayload,
	}
	ul, err := uplink.Start(uplink.Config{
		Tree: tree, MQTT: o, Outbox: ob, Deliverer: d,
		Firmware: version, ConfigSHA256: hex.EncodeToString(digest[:]),
		Grace: time.Duration(cfg.ShutdownGrace), TelemetryInterval: time.Duration(cfg.MQTT.TelemetryInterval),
		Clock: tl.EventClock, RevocationAge: tl.RevocationAge,
		Reader: reader,
		Log:    log,
	})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	closers = append(closers, ul.Close)
	repCtx, stopRep := context.WithCancel(ctx)
	closers = append(closers, stopRep)
	go tl.Report(repCtx, time.Minute, func(ctx context.Context, b []byte) error {
		return ul.Publish(ctx, tree.Revocation(), b, true)
	})
	return ul, closeAll, nil
}
