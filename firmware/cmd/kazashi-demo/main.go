// Command kazashi-demo runs the whole product on simulated hardware: it
// generates a test PKI and CRL, starts the PN532 simulator on a
// pseudo-terminal and the real daemon (which starts its embedded MQTT
// broker), subscribes to the daemon's events, taps a valid, a revoked, an
// expired and an unknown-CA card through the simulator's control interface,
// prints the events, and exits 0 when each got the expected reason.
//
//	kazashi-demo [-bin DIR] [-work DIR] [-keep]
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kazashi/kazashi/firmware/tap"
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

// taps are the demo's cards and the reason each must produce.
var taps = []struct{ kind, reason string }{
	{"valid", "ok"},
	{"revoked", "revoked"},
	{"expired", "expired"},
	{"unknown-ca", "untrusted"},
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
	ctx, cancel := context.WithTimeout(ctx, 50*time.Second)
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

	// 1. Test PKI and CRL, generated now.
	start := time.Now()
	pki, err := testpki.Generate(start)
	if err != nil {
		return err
	}
	pkiDir := filepath.Join(*work, "pki")
	if err := pki.WriteDir(pkiDir); err != nil {
		return err
	}
	say("generated test PKI and CRL in %s (%v)", pkiDir, time.Since(start).Round(time.Millisecond))

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

	// 3. The daemon, with its embedded broker on a free loopback port.
	brokerAddr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	keyFile := filepath.Join(*work, "pseudonym.key")
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return err
	}
	cfg := map[string]any{
		"device_id": "demo-kiosk-01",
		"reader":    map[string]any{"driver": "pn532-uart", "port": link, "ack_timeout": "1s"},
		"trust": map[string]any{
			"anchors":    []string{filepath.Join(pkiDir, "anchors", "jpki-test-auth.pem")},
			"crls":       []string{filepath.Join(pkiDir, "crl", "jpki-test-auth.crl")},
			"allow_test": true,
		},
		"mqtt":               map[string]any{"embedded_listen": brokerAddr},
		"pseudonym_key_file": keyFile,
	}
	cfgFile := filepath.Join(*work, "kazashid.json")
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		return err
	}
	daemon, _, err := startProcess(ctx, out, "kazashid", filepath.Join(*binDir, "kazashid"), []string{"-config", cfgFile}, "kazashid running")
	if err != nil {
		return err
	}
	defer daemon.stop()

	// 4. A backend-side subscriber.
	events := make(chan tap.Event, 16)
	var sub *mqtt.Client
	for sub == nil {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		sub, err = mqtt.Connect(cctx, mqtt.Options{Broker: "tcp://" + brokerAddr, ClientID: "demo-backend"})
		ccancel()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("subscriber: %w", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
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
	say("backend subscribed to kazashi/+/events on tcp://%s", brokerAddr)

	// 5. The taps.
	var failures []string
	for _, tp := range taps {
		say("--- tapping a %q card", tp.kind)
		if err := simControl(ctx, ctlURL, http.MethodPut, "/card?kind="+tp.kind); err != nil {
			return err
		}
		var e tap.Event
		select {
		case e = <-events:
		case <-time.After(15 * time.Second):
			return fmt.Errorf("no event for the %q card within 15 s", tp.kind)
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := simControl(ctx, ctlURL, http.MethodDelete, "/card"); err != nil {
			return err
		}
		mark := "as expected"
		if e.Reason != tp.reason {
			mark = "UNEXPECTED, wanted " + tp.reason
			failures = append(failures, fmt.Sprintf("%s card: reason %q, want %q", tp.kind, e.Reason, tp.reason))
		}
		say("%s card -> outcome %s, reason %s (%s)", tp.kind, e.Outcome, e.Reason, mark)
		// Let the daemon see the card leave before the next one comes.
		time.Sleep(600 * time.Millisecond)
	}
	if len(failures) > 0 {
		return fmt.Errorf("demo failed: %s", strings.Join(failures, "; "))
	}
	say("all %d taps verified and published in %v", len(taps), time.Since(start).Round(time.Millisecond))
	return nil
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

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
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
