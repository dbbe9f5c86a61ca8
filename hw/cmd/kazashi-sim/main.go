// Command kazashi-sim runs a simulated NXP PN532 on a pseudo-terminal with
// virtual My Number Cards from a test PKI, for demos, integration tests and
// development without hardware. The daemon (or libnfc's nfc-list) opens the
// pty like a real /dev/ttyUSB0 at 115200 baud.
//
// Usage:
//
//	kazashi-sim [-link PATH] [-card KIND] [-pki DIR] [-control ADDR] [-v]
//
//	-link PATH     make PATH a symlink to the pty slave (removed on exit)
//	-card KIND     card on the reader at start: valid, revoked, expired,
//	               unknown-ca, clone or none (default none)
//	-pki DIR       load the cards from a test PKI directory (written by
//	               kazashi-pki / testpki.WriteDir); without it a fresh PKI is
//	               generated in memory
//	-control ADDR  loopback address of the HTTP control interface
//	               (default 127.0.0.1:7532; port 0 picks a free port;
//	               non-loopback addresses are refused)
//	-v             log every PN532 frame in hex to stderr (secrets and
//	               personal data masked: the data of VERIFY, CHANGE
//	               REFERENCE DATA and CHANGE KEY APDUs, and the answers to
//	               READ BINARY of personal-data files)
//
// Once ready it prints exactly one line to stdout, which scripts wait for:
//
//	kazashi-sim: pty /dev/pts/N link PATH control http://127.0.0.1:PORT
//
// (PATH is "-" without -link.) SIGINT or SIGTERM stops it cleanly and
// removes the symlink.
//
// # Control interface
//
// All answers are JSON. Errors are {"error": "..."} with a 4xx status.
//
//	GET /status
//	    200 {"card": "valid", "present": true, "apdus": 12, "apdus_total": 40,
//	         "remove_after_apdus": 0, "pty": "/dev/pts/3", "link": "/tmp/pn532",
//	         "chip": {"asleep": false, "rf": true, "target": true, "card_state": "active"},
//	         "tries": {"auth-pin": 3, "sign-password": 5, "collation-b": 10, "support-pin": 3}}
//	    card: kind of the card on the reader, "" when none; present: a card
//	    is on the reader; apdus: APDUs the current card answered;
//	    apdus_total: APDUs answered since start; remove_after_apdus: the card
//	    leaves by itself after this many APDUs (0: never); chip: PN532 state
//	    (asleep = LowVbat/PowerDown, rf = field on, target = a card is
//	    activated, card_state = ISO/IEC 14443-3 state idle/ready/active/halt);
//	    tries: tries left of each credential of the card on the reader, named
//	    like firmware/holder's Kind values: auth-pin (JPKI 0018),
//	    sign-password (JPKI 001B), collation-b (card surface AP 0012),
//	    support-pin (input support AP 0011); a credential the card lacks
//	    (the clone has no card surface or input support AP) is left out,
//	    and tries is absent when no card is on the reader. 0 = blocked.
//	PUT /card?kind=KIND[&remove_after_apdus=N]
//	    Places the card of that kind on the reader, replacing any card (a new
//	    tap). kind=none removes the card. With remove_after_apdus the card is
//	    pulled right after answering N APDUs (to test removal mid-read).
//	    200 with the status; 400 for an unknown kind or a bad N.
//	DELETE /card
//	    Takes the card off the reader. 200 with the status.
//	POST /reset
//	    Pulses the chip's RSTPD_N: it restarts in LowVbat mode. 200 with the
//	    status.
//
// Card kinds are those of provisioning/testpki: valid, revoked, expired and
// unknown-ca carry the JPKI AP (both key pairs and certificates), the card
// surface AP and the input support AP; clone is a programmable card with
// the valid card's certificates copied byte for byte, keys of its own and
// the JPKI AP only. Each kind is one card for the whole run: its retry
// counters persist between taps like a real card's, while the verified
// state is lost when the card leaves the field.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kazashi/kazashi/hw/sim"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "kazashi-sim:", err)
		os.Exit(1)
	}
}

// kindNone is the -card value and PUT kind for an empty reader.
const kindNone = "none"

// run starts the simulator and its control interface and blocks until ctx
// is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kazashi-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	link := fs.String("link", "", "make `PATH` a symlink to the pty slave")
	card := fs.String("card", kindNone, "card on the reader at start: "+strings.Join(append(testpki.Kinds(), kindNone), ", "))
	pkiDir := fs.String("pki", "", "load cards from a test PKI `DIR` (default: generate one in memory)")
	control := fs.String("control", "127.0.0.1:7532", "loopback `ADDR` of the HTTP control interface")
	verbose := fs.Bool("v", false, "log every PN532 frame in hex to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := checkLoopback(*control); err != nil {
		return err
	}
	if *card != kindNone && !slices.Contains(testpki.Kinds(), *card) {
		return fmt.Errorf("unknown card kind %q (want one of %s)", *card, strings.Join(append(testpki.Kinds(), kindNone), ", "))
	}

	level := slog.LevelError
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	var (
		pki *testpki.PKI
		err error
	)
	if *pkiDir != "" {
		pki, err = testpki.LoadDir(*pkiDir)
	} else {
		pki, err = testpki.Generate(time.Now())
	}
	if err != nil {
		return fmt.Errorf("test PKI: %w", err)
	}
	cards, err := buildCards(pki)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *control)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	defer ln.Close()

	opts := sim.Options{Link: *link, Logger: log}
	if *card != kindNone {
		opts.Card = cards[*card]
	}
	s, err := sim.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer s.Close()

	ctl := &controller{sim: s, cards: cards}
	srv := &http.Server{Handler: ctl.handler(), ReadHeaderTimeout: 5 * time.Second}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()

	shown := *link
	if shown == "" {
		shown = "-"
	}
	fmt.Fprintf(stdout, "kazashi-sim: pty %s link %s control http://%s\n", s.Path(), shown, ln.Addr())

	select {
	case <-ctx.Done():
	case <-s.Done():
		if ctx.Err() == nil { // not just the shutdown racing ctx.Done
			err = errors.New("simulator stopped")
		}
	case e := <-srvErr:
		err = fmt.Errorf("control: %w", e)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if cerr := s.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// checkLoopback refuses control addresses reachable from other hosts: the
// control interface has no authentication.
func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-control %q: %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("-control %q: bad port", addr)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-control %q: not a loopback address (the control interface has no authentication)", addr)
	}
	return nil
}

// buildCards makes one virtual card per kind of the test PKI.
func buildCards(pki *testpki.PKI) (map[string]*sim.JPKICard, error) {
	cards := make(map[string]*sim.JPKICard, len(pki.Cards))
	for _, kind := range testpki.Kinds() {
		c, ok := pki.Cards[kind]
		if !ok {
			return nil, fmt.Errorf("test PKI has no %q card", kind)
		}
		jc, err := sim.FromTestPKI(c)
		if err != nil {
			return nil, err
		}
		cards[kind] = jc
	}
	return cards, nil
}

// controller serves the HTTP control interface.
type controller struct {
	sim   *sim.Sim
	cards map[string]*sim.JPKICard
	mu    sync.Mutex // serialises card changes
}

type chipStatus struct {
	Asleep    bool   `json:"asleep"`
	RF        bool   `json:"rf"`
	Target    bool   `json:"target"`
	CardState string `json:"card_state"`
}

type status struct {
	Card             string         `json:"card"`
	Present          bool           `json:"present"`
	APDUs            int            `json:"apdus"`
	APDUsTotal       int            `json:"apdus_total"`
	RemoveAfterAPDUs int            `json:"remove_after_apdus"`
	PTY              string         `json:"pty"`
	Link             string         `json:"link"`
	Chip             chipStatus     `json:"chip"`
	Tries            map[string]int `json:"tries,omitempty"`
}

// credentials are the secrets reported in /status, by firmware/holder Kind
// name.
var credentials = []struct {
	name string
	ap   string
	fid  uint16
}{
	{"auth-pin", sim.APJPKI, sim.JPKIAuthPIN},
	{"sign-password", sim.APJPKI, sim.JPKISignPassword},
	{"collation-b", sim.APSurface, sim.SurfaceCollationB},
	{"support-pin", sim.APSupport, sim.SupportPIN},
}

func (c *controller) status() status {
	f := c.sim.Field()
	st := f.State()
	cs := c.sim.Chip().State()
	out := status{
		Present:          st.Present,
		APDUs:            st.APDUs,
		APDUsTotal:       st.TotalAPDUs,
		RemoveAfterAPDUs: st.RemoveAfter,
		PTY:              c.sim.Path(),
		Link:             c.sim.Link(),
		Chip:             chipStatus{Asleep: cs.Asleep, RF: cs.RF, Target: cs.Target, CardState: cs.CardState},
	}
	if card := f.Card(); card != nil {
		for kind, jc := range c.cards {
			if sim.Target(jc) == card {
				out.Card = kind
				out.Tries = map[string]int{}
				for _, cr := range credentials {
					if n := jc.TriesOf(cr.ap, cr.fid); n >= 0 {
						out.Tries[cr.name] = n
					}
				}
			}
		}
	}
	return out
}

func (c *controller) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.status())
	})
	mux.HandleFunc("PUT /card", func(w http.ResponseWriter, r *http.Request) {
		kind := r.URL.Query().Get("kind")
		n := 0
		if v := r.URL.Query().Get("remove_after_apdus"); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil || n < 0 {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("remove_after_apdus %q: want a count ≥ 0", v))
				return
			}
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		switch card, ok := c.cards[kind]; {
		case kind == kindNone:
			c.sim.Remove()
		case ok:
			c.sim.Field().Place(card, n)
		default:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown card kind %q (want one of %s)", kind, strings.Join(append(testpki.Kinds(), kindNone), ", ")))
			return
		}
		writeJSON(w, http.StatusOK, c.status())
	})
	mux.HandleFunc("DELETE /card", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.sim.Remove()
		writeJSON(w, http.StatusOK, c.status())
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		c.sim.Chip().Reset()
		writeJSON(w, http.StatusOK, c.status())
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: GET /status, PUT /card?kind=KIND, DELETE /card, POST /reset")
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
