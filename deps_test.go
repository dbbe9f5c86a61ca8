package kazashi_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// pkg is the part of `go list -json` the fence needs.
type pkg struct {
	ImportPath string
	Name       string
	Imports    []string
	Deps       []string
	CgoFiles   []string
}

const module = "github.com/kazashi/kazashi/"

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("only %d packages listed", len(pkgs))
	}
	return pkgs
}

func hasPrefixAny(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if s == p || strings.HasPrefix(s, p+"/") {
			return true
		}
	}
	return false
}

// TestDependencyFence keeps the architecture's dependency rules true:
// hardware libraries only in hw/ and main packages, paho only in
// gateway/mqtt, drivers free of the rest of the tree, and the tap pipeline
// free of the PN532 driver and MQTT.
func TestDependencyFence(t *testing.T) {
	hardware := []string{"periph.io/x/host/v3", "github.com/tarm/serial", "github.com/creack/pty"}
	paho := "github.com/eclipse/paho.mqtt.golang"
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(p.ImportPath, module)
		isMain := p.Name == "main"
		for _, d := range p.Deps {
			if hasPrefixAny(d, hardware...) && !isMain && !strings.HasPrefix(rel, "hw/") {
				t.Errorf("%s depends on hardware library %s: only hw/ and main packages may", rel, d)
			}
			if strings.HasPrefix(rel, "drivers/") && strings.HasPrefix(d, module) && !strings.HasPrefix(d, module+"drivers/") {
				t.Errorf("driver %s depends on %s outside drivers/", rel, d)
			}
			if rel == "firmware/tap" && (d == module+"drivers/pn532" || hasPrefixAny(d, paho)) {
				t.Errorf("the tap pipeline depends on %s; adapt it in the composition root", d)
			}
		}
		for _, i := range p.Imports {
			if hasPrefixAny(i, paho) && rel != "gateway/mqtt" {
				t.Errorf("%s imports paho; only gateway/mqtt may", rel)
			}
		}
		if len(p.CgoFiles) > 0 {
			t.Errorf("%s uses cgo: Kazashi is pure Go", rel)
		}
	}
}
