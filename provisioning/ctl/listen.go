package ctl

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kazashi/kazashi/gateway/mqtt"
	"github.com/kazashi/kazashi/gateway/topics"
	"github.com/kazashi/kazashi/provisioning/backend"
)

// tableFormat lays out one event per line for `listen` and `events`.
const tableFormat = "%-20s  %-16s  %-14s  %-8s  %-22s  %s\n"

func printTableHeader(w io.Writer) {
	fmt.Fprintf(w, tableFormat, "TIME", "DEVICE", "PROFILE", "OUTCOME", "REASON", "EVENT")
}

// printTableRow prints the columns an operator scans; never the payload
// (card pseudonyms stay in the database). DecodeEvent admits only
// printable text in these fields, so they cannot drive the terminal.
func printTableRow(w io.Writer, r backend.Row) {
	profile := r.Profile
	if profile == "" {
		profile = "-"
	}
	fmt.Fprintf(w, tableFormat, r.Time.UTC().Format(time.RFC3339), r.DeviceID, profile, r.Outcome, r.Reason, shortID(r.EventID))
}

// shortID is the first 8 characters of an event id (a UUID's first group).
func shortID(id string) string {
	if r := []rune(id); len(r) > 8 {
		return string(r[:8])
	}
	return id
}

// outcomes are the values of a tap event's "outcome" (firmware/tap.Outcome).
var outcomes = []string{"accepted", "rejected", "error"}

func listenCmd(ctx context.Context, args []string, io IO) error {
	fs := newFlags("listen", io)
	broker := fs.String("broker", "", "broker URL: tcp://host:port, or ssl://host:port with --tls-*")
	db := fs.String("db", "", "SQLite database file (created if missing)")
	prefix := fs.String("prefix", backend.DefaultPrefix, "topic prefix")
	group := fs.String("group", backend.DefaultGroup, `shared-subscription group ("" for a plain subscription)`)
	host, _ := os.Hostname()
	defaultID := ""
	if host != "" {
		defaultID = "kazashi-backend-" + host
	}
	clientID := fs.String("client-id", defaultID, "MQTT client id: stable across restarts, one per instance")
	ca := fs.String("tls-ca", "", "broker CA certificate (PEM); the only CA trusted")
	cert := fs.String("tls-cert", "", "client certificate (PEM)")
	key := fs.String("tls-key", "", "client private key (PEM, mode 0600)")
	serverName := fs.String("tls-server-name", "", "broker name to verify (default: the URL's host)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() != 0:
		fs.Usage()
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *broker == "":
		fs.Usage()
		return errors.New("--broker is required")
	case *db == "":
		fs.Usage()
		return errors.New("--db is required")
	case *clientID == "":
		return errors.New("--client-id must not be empty: the broker keeps the session under it")
	}
	if _, err := topics.New(*prefix, "x"); err != nil {
		return fmt.Errorf("--prefix: %w", err)
	}
	if strings.ContainsAny(*group, "/+#\x00") {
		return fmt.Errorf("--group %q: a share name has no '/', '+', '#' or NUL", *group)
	}
	tlsConf, err := listenTLS(*broker, *ca, *cert, *key, *serverName)
	if err != nil {
		return err
	}
	store, err := backend.Open(ctx, *db)
	if err != nil {
		return err
	}
	defer store.Close()

	log := slog.New(slog.NewTextHandler(io.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var outMu sync.Mutex
	l := &backend.Listener{
		MQTT:   mqtt.Options{Broker: *broker, ClientID: *clientID, TLSConfig: tlsConf, Logger: log},
		Store:  store,
		Prefix: *prefix,
		Group:  *group,
		Log:    log,
		OnStored: func(r backend.Row) {
			outMu.Lock()
			defer outMu.Unlock()
			printTableRow(io.Stdout, r)
		},
	}
	l.OnListening = func() {
		fmt.Fprintf(io.Stderr, "kazashictl listen: subscribed to %s as %s, storing in %s\n", l.Filter(), *clientID, *db)
		if io.listening != nil {
			io.listening(l.Stats)
		}
	}
	// Failed connection attempts are logged at debug level only; say what
	// listen waits for.
	u, _ := url.Parse(*broker) // listenTLS parsed it
	fmt.Fprintf(io.Stderr, "kazashictl listen: connecting to %s as %s\n", u.Redacted(), *clientID)
	printTableHeader(io.Stdout)
	runErr := l.Run(ctx)
	outMu.Lock()
	fmt.Fprintln(io.Stdout, summary(l.Stats()))
	outMu.Unlock()
	if ctx.Err() != nil && errors.Is(runErr, ctx.Err()) {
		// Interrupted while still connecting: a clean stop, nothing was
		// received.
		return nil
	}
	return runErr
}

// summary is the counters line printed when listen ends.
func summary(s backend.Stats) string {
	var b strings.Builder
	var rejected uint64
	for _, n := range s.Rejected {
		rejected += n
	}
	fmt.Fprintf(&b, "received %d, new %d, duplicates %d, rejected %d", s.Received, s.Stored, s.Duplicates, rejected)
	if rejected > 0 {
		var parts []string
		for _, r := range slices.Sorted(maps.Keys(s.Rejected)) {
			parts = append(parts, fmt.Sprintf("%s %d", r, s.Rejected[r]))
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintf(&b, ", storage errors %d", s.StorageErrors)
	return b.String()
}

// listenTLS checks --broker and builds the TLS configuration of `listen`
// with mqtt.TLSFiles, as the kiosk daemon does: the given CA as the only
// root (the broker CA pinned), the client certificate for mutual TLS (its
// key file readable by its owner only), TLS 1.2 at least. nil for a tcp://
// broker.
func listenTLS(broker, ca, cert, key, serverName string) (*tls.Config, error) {
	u, err := url.Parse(broker)
	if err != nil {
		return nil, fmt.Errorf("--broker: %w", err)
	}
	var secure bool
	switch u.Scheme {
	case "tcp", "mqtt":
	case "ssl", "tls", "mqtts":
		secure = true
	default:
		return nil, fmt.Errorf("--broker %s: scheme %q, want tcp://host:port or ssl://host:port", u.Redacted(), u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("--broker %s: no host", u.Redacted())
	}
	if !secure {
		if ca != "" || cert != "" || key != "" || serverName != "" {
			return nil, fmt.Errorf("--tls-* options need an ssl:// or mqtts:// broker, not %s://", u.Scheme)
		}
		return nil, nil
	}
	if ca == "" {
		return nil, errors.New("--tls-ca is required for a TLS broker: the broker's CA is pinned, system roots are not used")
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	// Its errors name the file and the problem, never key bytes.
	return mqtt.TLSFiles{CAFile: ca, CertFile: cert, KeyFile: key, ServerName: serverName}.Config()
}

func eventsCmd(ctx context.Context, args []string, io IO) error {
	fs := newFlags("events", io)
	db := fs.String("db", "", "SQLite database file written by kazashictl listen")
	since := fs.String("since", "", "events at or after this: a duration back from now (1h, 30m) or RFC 3339")
	outcome := fs.String("outcome", "", "only this outcome ("+strings.Join(outcomes, ", ")+")")
	reason := fs.String("reason", "", "only this reason code")
	device := fs.String("device", "", "only this device id")
	limit := fs.Int("limit", 100, "at most this many events, newest first (0: all)")
	asJSON := fs.Bool("json", false, "one JSON object per line (the stored columns, never the payload)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() != 0:
		fs.Usage()
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *db == "":
		fs.Usage()
		return errors.New("--db is required")
	case *limit < 0:
		return errors.New("--limit must not be negative")
	case *outcome != "" && !slices.Contains(outcomes, *outcome):
		return fmt.Errorf("--outcome %q: want one of %s", *outcome, strings.Join(outcomes, ", "))
	}
	f := backend.Filter{Outcome: *outcome, Reason: *reason, Device: *device, Limit: *limit}
	var err error
	if f.Since, err = parseSince(*since, time.Now()); err != nil {
		return err
	}
	if _, err := os.Stat(*db); err != nil {
		return fmt.Errorf("--db: %w", err) // do not create an empty database
	}
	store, err := backend.Open(ctx, *db)
	if err != nil {
		return err
	}
	defer store.Close()
	rows, err := store.Query(ctx, f)
	if err != nil {
		return err
	}
	if f.Limit > 0 && len(rows) == f.Limit {
		total, err := store.Count(ctx, f)
		if err != nil {
			return err
		}
		if total > len(rows) {
			fmt.Fprintf(io.Stderr, "kazashictl events: the newest %d of %d matching events (--limit)\n", len(rows), total)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(io.Stdout)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil { // never the payload (backend.Row)
				return err
			}
		}
		return nil
	}
	printTableHeader(io.Stdout)
	for _, r := range rows {
		printTableRow(io.Stdout, r)
	}
	return nil
}

// parseSince reads --since: empty (no bound), a positive Go duration back
// from now, or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("--since %s: the duration must be positive", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q: neither a duration (1h, 30m) nor an RFC 3339 time", s)
	}
	return t, nil
}
