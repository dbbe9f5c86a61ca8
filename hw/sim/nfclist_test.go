package sim

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// nfcListTarget is exactly what nfc-list (libnfc 1.8.0) prints for the
// virtual My Number Card of newTestCard (PUPI 12 34 56 78).
var nfcListTarget = []string{
	"1 ISO14443B passive target(s) found:",
	"ISO/IEC 14443-4B (106 kbps) target:",
	"               PUPI: 12  34  56  78  ",
	"   Application Data: 00  00  00  00  ",
	"      Protocol Info: b3  81  a1  ",
}

// runNFCList runs libnfc's nfc-list against the simulator's pty with
// LIBNFC_LOG_LEVEL=3, so a failure shows every frame libnfc sent.
func runNFCList(t *testing.T, path string) (stdout string) {
	t.Helper()
	bin, err := exec.LookPath("nfc-list")
	if err != nil {
		t.Fatalf("nfc-list not found (%v): install libnfc-bin (apt-get install libnfc-bin)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, bin)
	c.Env = append(os.Environ(),
		"LIBNFC_DEFAULT_DEVICE=pn532_uart:"+path,
		"LIBNFC_LOG_LEVEL=3",
		"LIBNFC_AUTO_SCAN=false",
		"LIBNFC_INTRUSIVE_SCAN=false",
	)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		t.Fatalf("nfc-list: %v\nstdout:\n%s\nlibnfc log:\n%s", err, out.String(), tail(errb.String(), 120))
	}
	if !strings.Contains(out.String(), "NFC device: user defined default device opened") {
		t.Fatalf("nfc-list did not open the simulator\nstdout:\n%s\nlibnfc log:\n%s", out.String(), tail(errb.String(), 120))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("libnfc log:\n%s", tail(errb.String(), 200))
		}
	})
	return out.String()
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// TestNFCList is the project's acceptance test for the simulator: libnfc's
// own PN532 UART driver finds the virtual My Number Card as an ISO/IEC
// 14443-4B target, twice in a row on the same pty (libnfc powers the chip
// down on close and wakes it on open), and finds nothing on an empty field.
func TestNFCList(t *testing.T) {
	s := startSim(t, Options{Card: newTestCard(t)})
	for range 2 {
		out := runNFCList(t, s.Path())
		lines := strings.Split(out, "\n")
		for _, want := range nfcListTarget {
			found := false
			for _, l := range lines {
				if l == want {
					found = true
				}
			}
			if !found {
				t.Fatalf("nfc-list output lacks %q:\n%s", want, out)
			}
		}
		if strings.Count(out, "passive target(s) found") != 1 {
			t.Fatalf("nfc-list found more than the Type B card:\n%s", out)
		}
	}
	if st := s.Chip().State(); !st.Asleep || st.RF {
		t.Errorf("after nfc-list the chip should be powered down with RF off: %+v", st)
	}

	s.Remove()
	out := runNFCList(t, s.Path())
	if strings.Contains(out, "target(s) found") {
		t.Fatalf("nfc-list found a target on an empty field:\n%s", out)
	}
}
