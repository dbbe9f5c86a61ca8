// Command kazashi-demo runs the whole product on simulated hardware: it
// generates a test PKI (JPKI-TEST authentication and signature
// hierarchies, a test CV hierarchy for the card applications, virtual
// cards and a clone), starts the PN532 simulator on a pseudo-terminal, an
// MQTT broker on loopback and, once per service profile, the real daemon.
// A PIN pad on the daemon's holder-input socket types each card's secrets.
// It taps cards through the simulator's control interface, prints the
// events, and exits 0 only when each got the expected reason and
// assurance.
//
//	kazashi-demo [-bin DIR] [-work DIR] [-keep]
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kazashi/kazashi/firmware/holder"
	"github.com/kazashi/kazashi/firmware/tap"
	"github.com/kazashi/kazashi/gateway/broker"
	"github.com/kazashi/kazashi/gateway/mqtt"
	"github.com/kazashi/kazashi/provisioning/testpki"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kazashi-demo:", err)
		os.Exit(1)
	}
}

// demoTap is one card placed on the reader and what its event must say.
type demoTap struct{ kind, reason, assurance string }

// phases run the daemon once per service profile. The clone carries a
// genuine certificate copied from the valid card: card-check accepts it
// (and says only "certificate read"); every profile that proves more
// refuses it.
//
// The last phase is a CRL update while the kiosk runs: the demo, as the
// fleet manager, imports a newer CRL that also lists the valid card with
// kazashictl into the kiosk's store and sends SIGHUP; the next tap of the
// valid card is revoked.
var phases = []struct {
	profile   string
	crlUpdate bool
	taps      []demoTap
}{
	{"card-check", false, []demoTap{
		{testpki.KindValid, "ok", "certificate-read"},
		{testpki.KindRevoked, "revoked", "none"},
		{testpki.KindExpired, "expired", "none"},
		{testpki.KindUnknownCA, "untrusted", "none"},
		{testpki.KindClone, "ok", "certificate-read"},
	}},
	{"face-check", false, []demoTap{
		{testpki.KindValid, "ok", "genuine-card"},
		{testpki.KindClone, "not-genuine", "none"},
	}},
	{"pin-auth", false, []demoTap{
		{testpki.KindValid, "ok", "possession-proven"},
		{testpki.KindClone, "not-genuine", "none"},
	}},
	{"card-check", true, []demoTap{
		{testpki.KindValid, "revoked", "none"},
	}},
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("kazashi-demo", flag.ContinueOnError)
	self, _ := os.Executable()
	binDir := fs.String("bin", filepath.Dir(self), "directory holding kazashid and kazashi-sim")
	work := fs.String("work", "", "working directory (default: a fresh temporary one)")
	keep := fs.Bool("keep", false, "keep the working directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if *work == "" {
		d, err := os.MkdirTemp("", "kazashi-demo-")
		if err != nil {
			return err
		}
		*work = d
		if !*keep {
			defer os.RemoveAll(d)
		}
	}
	say := func(format string, a ...any) { fmt.Fprintf(out, "demo: "+format+"\n", a...) }

	// 1. Test PKI, CRLs and virtual cards, generated now.
	start := time.Now()
	pki, err := testpki.Generate(start)
	if err != nil {
		return err
	}
	pkiDir := filepath.Join(*work, "pki")
	if err := pki.WriteDir(pkiDir); err != nil {
		return err
	}
	say("generated test PKI, CRLs, CV hierarchy and %d virtual cards in %s (%v)", len(pki.Cards), pkiDir, time.Since(start).Round(time.Millisecond))

	// 2. The simulator on a pty.
	link := filepath.Join(*work, "pn532")
	sim, simLine, err := startProcess(ctx, out, "sim", filepath.Join(*binDir, "kazashi-sim"),
		[]string{"-link", link, "-pki", pkiDir, "-control", "127.0.0.1:0", "-card", "none"}, "control http://")
	if err != nil {
		return err
	}
	defer sim.stop()
	ctlURL := "http://" + strings.Fields(simLine[strings.Index(simLine, "control http://")+len("control http://"):])[0]
	say("PN532 simulator on %s, control %s", link, ctlURL)

	// 3. The backend's broker on loopback, and a subscriber.
	b, err := broker.Start(ctx, "127.0.0.1:0", nil)
	if err != nil {
		return err
	}
	defer b.Close()
	events := make(chan tap.Event, 16)
	sub, err := mqtt.Connect(ctx, mqtt.Options{Broker: b.Addr(), ClientID: "demo-backend"})
	if err != nil {
		return fmt.Errorf("subscriber: %w", err)
	}
	defer sub.Close()
	err = sub.Subscribe(ctx, "kazashi/+/events", 1, func(topic string, payload []byte) {
		var e tap.Event
		if json.Unmarshal(payload, &e) == nil {
			fmt.Fprintf(out, "demo: event on %s:\n%s\n", topic, indent(payload))
			events <- e
		}
	})
	if err != nil {
		return err
	}
	revStatus := make(chan []byte, 16)
	err = sub.Subscribe(ctx, "kazashi/+/status/revocation", 1, func(_ string, payload []byte) {
		select {
		case revStatus <- payload:
		default: // only the latest matter
		}
	})
	if err != nil {
		return err
	}
	say("backend subscribed to kazashi/+/events and kazashi/+/status/revocation on %s", b.Addr())

	keyFile := filepath.Join(*work, "pseudonym.key")
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return err
	}

	// 4. One daemon run per profile.
	var failures []string
	n := 0
	for _, ph := range phases {
		f, err := runPhase(ctx, out, phaseEnv{
			bin: *binDir, work: *work, pkiDir: pkiDir, pki: pki, link: link, ctlURL: ctlURL,
			broker: b.Addr(), keyFile: keyFile, events: events, revStatus: revStatus,
		}, ph.profile, ph.crlUpdate, ph.taps)
		if err != nil {
			return err
		}
		failures = append(failures, f...)
		n += len(ph.taps)
	}
	if len(failures) > 0 {
		return fmt.Errorf("demo failed: %s", strings.Join(failures, "; "))
	}
	say("all %d taps in %d daemon runs verified and published as expected, a CRL update included, in %v", n, len(phases), time.Since(start).Round(time.Millisecond))
	return nil
}

type phaseEnv struct {
	bin, work, pkiDir, link, ctlURL, broker, keyFile string
	pki                                              *testpki.PKI
	events                                           chan tap.Event
	revStatus                                        chan []byte
}

// runPhase starts the daemon with one profile, taps the cards and stops it.
func runPhase(ctx context.Context, out io.Writer, env phaseEnv, profile string, crlUpdate bool, taps []demoTap) ([]string, error) {
	say := func(format string, a ...any) { fmt.Fprintf(out, "demo: "+format+"\n", a...) }
	say("=== profile %s", profile)
	socket := filepath.Join(env.work, "run-"+profile, "holder.sock")
	var cv []map[string]string
	for _, a := range env.pki.CVAnchors {
		cv = append(cv, map[string]string{"id": a.IDString, "purpose": a.Purpose, "file": filepath.Join(env.pkiDir, testpki.CVAnchorFile(a))})
	}
	cfg := map[string]any{
		"device_id":    "demo-kiosk-01",
		"reader":       map[string]any{"driver": "pn532-uart", "port": env.link, "ack_timeout": "1s"},
		"profile":      map[string]any{"name": profile, "service": "demo-clinic"},
		"holder_input": map[string]any{"socket": socket, "timeout": "20s"},
		"trust": map[string]any{
			"anchors":      []string{filepath.Join(env.pkiDir, testpki.AnchorFile)},
			"crls":         []string{filepath.Join(env.pkiDir, testpki.CRLFile)},
			"sign_anchors": []string{filepath.Join(env.pkiDir, testpki.SignAnchorFile)},
			"sign_crls":    []string{filepath.Join(env.pkiDir, testpki.SignCRLFile)},
			"cv_anchors":   cv,
			"allow_test":   true,
		},
		"mqtt":               map[string]any{"broker": env.broker},
		"state_dir":          filepath.Join(env.work, "state"),
		"pseudonym_key_file": env.keyFile,
	}
	cfgFile := filepath.Join(env.work, "kazashid-"+profile+".json")
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		return nil, err
	}
	daemon, _, err := startProcess(ctx, out, "kazashid", filepath.Join(env.bin, "kazashid"), []string{"-config", cfgFile}, "kazashid running")
	if err != nil {
		return nil, err
	}
	defer daemon.stop()

	// The PIN pad: it types the secret of whichever card is on the reader.
	var mu sync.Mutex
	current := ""
	padCtx, stopPad := context.WithCancel(ctx)
	defer stopPad()
	var pad *holder.Client
	if profile != "card-check" {
		if pad, err = holder.Dial(padCtx, socket); err != nil {
			return nil, fmt.Errorf("PIN pad: %w", err)
		}
		defer pad.Close()
	}
	go func() {
		if pad == nil {
			return
		}
		for {
			req, err := pad.Next(padCtx)
			if err != nil {
				return
			}
			mu.Lock()
			card := env.pki.Cards[current]
			mu.Unlock()
			secret := map[holder.Kind]string{
				holder.AuthPIN: card.AuthPIN, holder.SignPassword: card.SignPassword,
				holder.CollationB: card.CollationB, holder.SupportPIN: card.SupportPIN,
			}[req.Kind]
			fmt.Fprintf(out, "  [pin pad] the kiosk asks for the %s (%d tries left): typing %d characters\n", req.Kind, req.TriesLeft, len(secret))
			if err := pad.Answer(padCtx, []byte(secret)); err != nil && !errors.Is(err, context.Canceled) {
				fmt.Fprintf(out, "  [pin pad] %v\n", err)
			}
		}
	}()

	if crlUpdate {
		if err := updateCRL(ctx, out, env, daemon); err != nil {
			return nil, err
		}
	}

	var failures []string
	for _, tp := range taps {
		say("--- %s: tapping the %q card", profile, tp.kind)
		mu.Lock()
		current = tp.kind
		mu.Unlock()
		if err := simControl(ctx, env.ctlURL, http.MethodPut, "/card?kind="+tp.kind); err != nil {
			return nil, err
		}
		var e tap.Event
		select {
		case e = <-env.events:
		case <-time.After(30 * time.Second):
			return nil, fmt.Errorf("%s: no event for the %q card within 30 s", profile, tp.kind)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if err := simControl(ctx, env.ctlURL, http.MethodDelete, "/card"); err != nil {
			return nil, err
		}
		mark := "as expected"
		if e.Reason != tp.reason || string(e.Assurance) != tp.assurance || e.Profile != profile {
			mark = fmt.Sprintf("UNEXPECTED, wanted reason %s, assurance %s", tp.reason, tp.assurance)
			failures = append(failures, fmt.Sprintf("%s/%s: reason %q assurance %q profile %q, want %q %q", profile, tp.kind, e.Reason, e.Assurance, e.Profile, tp.reason, tp.assurance))
		}
		say("%s card -> outcome %s, reason %s, assurance %s (%s)", tp.kind, e.Outcome, e.Reason, e.Assurance, mark)
		// Let the daemon see the card leave before the next one comes.
		time.Sleep(600 * time.Millisecond)
	}
	return failures, nil
}

// updateCRL plays the fleet manager: a newer CRL of the test root that
// also lists the valid card goes into the running kiosk's store with
// `kazashictl crl import`, then SIGHUP; it waits until the kiosk's retained
// revocation status shows the new CRL number.
func updateCRL(ctx context.Context, out io.Writer, env phaseEnv, daemon *process) error {
	say := func(format string, a ...any) { fmt.Fprintf(out, "demo: "+format+"\n", a...) }
	old, err := x509.ParseRevocationList(env.pki.CRL)
	if err != nil {
		return err
	}
	root, err := x509.ParseCertificate(env.pki.Root)
	if err != nil {
		return err
	}
	valid, err := x509.ParseCertificate(env.pki.Cards[testpki.KindValid].Cert)
	if err != nil {
		return err
	}
	number := new(big.Int).Add(old.Number, big.NewInt(1))
	now := time.Now()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: number, ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(47 * time.Hour),
		RevokedCertificateEntries: append(old.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: valid.SerialNumber, RevocationTime: now.Add(-time.Minute), ReasonCode: 1}),
	}, root, env.pki.RootKey)
	if err != nil {
		return err
	}
	file := filepath.Join(env.work, "crl-update.crl")
	if err := os.WriteFile(file, der, 0o644); err != nil {
		return err
	}
	say("=== fleet update: CRL #%s, which also lists the valid card, into the running kiosk", number)
	cmd := exec.CommandContext(ctx, filepath.Join(env.bin, "kazashictl"), "crl", "import",
		"--issuer", filepath.Join(env.pkiDir, testpki.AnchorFile), "--index", filepath.Join(env.work, "state", "revocation"), file)
	res, err := cmd.CombinedOutput()
	for _, l := range strings.Split(strings.TrimSpace(string(res)), "\n") {
		fmt.Fprintf(out, "  [kazashictl] %s\n", l)
	}
	if err != nil {
		return fmt.Errorf("kazashictl crl import: %w", err)
	}
	if err := daemon.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return err
	}
	say("sent SIGHUP to kazashid; waiting for its revocation status to show CRL #%s", number)
	want := `"number":` + number.String()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case st := <-env.revStatus:
			if bytes.Contains(st, []byte(want)) {
				say("the kiosk now judges taps by CRL #%s", number)
				return nil
			}
		case <-deadline:
			return fmt.Errorf("the kiosk did not report CRL #%s within 15 s", number)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func simControl(ctx context.Context, base, method, path string) error {
	req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("simulator control: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("simulator control %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

func indent(b []byte) string {
	var buf bytes.Buffer
	if json.Indent(&buf, b, "  ", "  ") != nil {
		return string(b)
	}
	return "  " + buf.String()
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startProcess runs a child, prefixes its output lines with its name, and
// waits until a line containing ready appears; it returns that line.
func startProcess(ctx context.Context, out io.Writer, name, path string, args []string, ready string) (*process, string, error) {
	cmd := exec.Command(path, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s (run `make build` first?): %w", name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	readyc := make(chan string, 1)
	var once sync.Once
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintf(out, "  [%s] %s\n", name, line)
			if strings.Contains(line, ready) {
				once.Do(func() { readyc <- line })
			}
		}
	}()
	select {
	case line := <-readyc:
		return p, line, nil
	case <-p.done:
		return nil, "", fmt.Errorf("%s exited before it was ready: %v", name, cmd.ProcessState)
	case <-time.After(15 * time.Second):
		p.stop()
		return nil, "", fmt.Errorf("%s not ready within 15 s", name)
	case <-ctx.Done():
		p.stop()
		return nil, "", ctx.Err()
	}
}

func (p *process) stop() {
	if p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
