// Package mqtttest runs a real Mosquitto broker (and a cuttable loopback TCP
// proxy) for tests of any package that talks MQTT. It is a normal package so
// other packages' tests can import it; it never fakes the MQTT client.
package mqtttest

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// debianMosquitto is where the Debian package installs the broker; /usr/sbin
// is often missing from an unprivileged PATH.
const debianMosquitto = "/usr/sbin/mosquitto"

const (
	// readyTimeout bounds the wait for a fresh mosquitto to accept TCP
	// connections; it normally takes a few milliseconds.
	readyTimeout = 5 * time.Second
	// readyPoll is the dial interval while waiting for readiness.
	readyPoll = 10 * time.Millisecond
	// stopTimeout is how long mosquitto gets to exit after SIGTERM before it
	// is killed; it exits immediately in practice.
	stopTimeout = 5 * time.Second
	// portAttempts bounds retries when the probed free port is taken by
	// someone else between probing and mosquitto binding it.
	portAttempts = 5
)

// Mosquitto is one mosquitto process listening on 127.0.0.1 only. With
// StartMosquitto it allows anonymous access and keeps nothing (a restart
// forgets retained messages and sessions, like a freshly installed broker);
// StartMosquittoConf takes any configuration.
type Mosquitto struct {
	tb   testing.TB
	bin  string
	dir  string
	port int
	conf func(port int, dir string) string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	log    *Buffer       // stdout+stderr of every run
}

// StartMosquitto starts a broker on a free loopback port, waits until it
// accepts connections and stops it when the test ends. It fails the test (never
// skips) if mosquitto is not installed.
func StartMosquitto(tb testing.TB) *Mosquitto {
	tb.Helper()
	return StartMosquittoConf(tb, AnonymousConf)
}

// AnonymousConf is StartMosquitto's configuration: one plain listener on
// 127.0.0.1, anonymous access, no persistence, log to stderr.
func AnonymousConf(port int, dir string) string {
	return fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n", port)
}

// PersistentConf is AnonymousConf with persistence in the broker's
// directory: sessions, their queued QoS 1 messages and retained messages
// survive Stop/Restart (mosquitto writes its database on SIGTERM).
func PersistentConf(port int, dir string) string {
	return fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nautosave_interval 1\nlog_dest stderr\n", port, dir)
}

// StartMosquittoConf is StartMosquitto with the whole configuration file
// written by conf, for the port chosen and the broker's own directory
// (Dir), on every start. conf must make mosquitto listen on
// 127.0.0.1:port; files it names may be placed in Dir before the test
// starts the broker (or in a directory of the test's own).
func StartMosquittoConf(tb testing.TB, conf func(port int, dir string) string) *Mosquitto {
	tb.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, statErr := os.Stat(debianMosquitto); statErr != nil {
			tb.Fatalf("mosquitto not found: apt-get install -y mosquitto")
		}
		bin = debianMosquitto
	}
	m := &Mosquitto{tb: tb, bin: bin, dir: tb.TempDir(), log: new(Buffer), conf: conf}
	tb.Cleanup(func() {
		m.Stop()
		if tb.Failed() {
			tb.Logf("mosquitto log:\n%s", m.log.String())
		}
	})
	var lastErr error
	for range portAttempts {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("mqtttest: find a free port: %v", err)
		}
		m.port = port
		if lastErr = m.start(); lastErr == nil {
			return m
		}
	}
	tb.Fatalf("mqtttest: start mosquitto: %v\n%s", lastErr, m.log.String())
	return nil
}

// Dir is the broker's own directory (configuration, persistence).
func (m *Mosquitto) Dir() string { return m.dir }

// Log returns what mosquitto printed so far, over all its runs.
func (m *Mosquitto) Log() string { return m.log.String() }

// URL is the broker address for an MQTT client, e.g. "tcp://127.0.0.1:41234".
func (m *Mosquitto) URL() string { return "tcp://" + m.Addr() }

// Addr is the broker's host:port.
func (m *Mosquitto) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port))
}

// Stop terminates the broker (SIGTERM, SIGKILL if it lingers) and waits for
// it to exit. Connected clients see their TCP connection closed. Stopping a
// stopped broker does nothing.
func (m *Mosquitto) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(stopTimeout):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
	m.cmd = nil
}

// Restart stops the broker if it runs and starts it again on the same port.
func (m *Mosquitto) Restart() {
	m.tb.Helper()
	m.Stop()
	if err := m.start(); err != nil {
		m.tb.Fatalf("mqtttest: restart mosquitto on port %d: %v\n%s", m.port, err, m.log.String())
	}
}

// start launches mosquitto on m.port and waits until it accepts connections.
func (m *Mosquitto) start() error {
	conf := filepath.Join(m.dir, "mosquitto.conf")
	cfg := m.conf(m.port, m.dir)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(m.bin, "-c", conf)
	cmd.Stdout = m.log
	cmd.Stderr = m.log
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	m.mu.Lock()
	m.cmd, m.exited = cmd, exited
	m.mu.Unlock()

	deadline := time.Now().Add(readyTimeout)
	for {
		c, err := net.DialTimeout("tcp", m.Addr(), readyPoll*10)
		if err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-exited:
			m.mu.Lock()
			m.cmd = nil
			m.mu.Unlock()
			return errors.New("mosquitto exited during startup (port taken?)")
		case <-time.After(readyPoll):
		}
		if time.Now().After(deadline) {
			m.Stop()
			return fmt.Errorf("mosquitto not accepting on %s after %v", m.Addr(), readyTimeout)
		}
	}
}

// freePort asks the kernel for an unused loopback port. Another process may
// grab it before mosquitto binds; StartMosquitto retries in that case.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Buffer is a bytes.Buffer safe for concurrent writers and readers: it
// collects the output of a process or a logger while a test polls it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Logger returns a debug logger that collects what it is given and prints
// it only if the test fails.
func Logger(tb testing.TB) *slog.Logger {
	buf := new(Buffer)
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
