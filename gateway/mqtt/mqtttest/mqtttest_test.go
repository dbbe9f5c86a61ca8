package mqtttest_test

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
)

func dialOK(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestMosquittoStopRestart(t *testing.T) {
	t.Parallel()
	m := mqtttest.StartMosquitto(t)
	if !strings.HasPrefix(m.URL(), "tcp://127.0.0.1:") || m.URL() != "tcp://"+m.Addr() {
		t.Fatalf("URL() = %q, Addr() = %q", m.URL(), m.Addr())
	}
	if !dialOK(m.Addr()) {
		t.Fatal("broker not accepting after Start")
	}
	m.Stop()
	if dialOK(m.Addr()) {
		t.Fatal("broker still accepting after Stop")
	}
	m.Stop() // idempotent
	url := m.URL()
	m.Restart()
	if m.URL() != url || !dialOK(m.Addr()) {
		t.Fatal("broker not back on the same port after Restart")
	}
}

func TestProxyCut(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // echo server
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	p := mqtttest.StartProxy(t, ln.Addr().String())
	c, err := net.Dial("tcp", strings.TrimPrefix(p.URL(), "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4)
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo through proxy: %q, %v", buf, err)
	}
	p.Cut()
	if _, err := c.Read(buf); err == nil {
		t.Fatal("connection survived Cut")
	}
}
