package board

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		model string
		want  string // "" = no profile
	}{
		{"Raspberry Pi 4 Model B Rev 1.4", "pi4"},
		{"Raspberry Pi 4 Model B Rev 1.5", "pi4"},
		{"Raspberry Pi 400 Rev 1.0", "pi4"},
		{"Raspberry Pi 5 Model B Rev 1.0", "pi5"},
		{"Raspberry Pi 5", "pi5"}, // the kernel DT's own model string
		{"Raspberry Pi 3 Model B Plus Rev 1.3", "pi3"},
		{"Raspberry Pi 3 Model B Rev 1.2", "pi3"},
		{"Raspberry Pi 3 Model A Plus Rev 1.0", "pi3"},
		{"Raspberry Pi Zero 2 W Rev 1.0", "zero2w"},
		{"Raspberry Pi Zero W Rev 1.1", "zerow"},
		// As read from /proc/device-tree/model: NUL-terminated.
		{"Raspberry Pi 4 Model B Rev 1.4\x00", "pi4"},
		{" Raspberry Pi 5 Model B Rev 1.1\n", "pi5"},
		// No profile: different pins, no header, or not a Pi.
		{"Raspberry Pi 500 Rev 1.0", ""},
		{"Raspberry Pi Compute Module 4 Rev 1.0", ""},
		{"Raspberry Pi Zero Rev 1.3", ""},
		{"Raspberry Pi 2 Model B Rev 1.1", ""},
		{"Raspberry Pi 40", ""},
		{"Raspberry Pi", ""},
		{"", ""},
		{"Pine64 RockPro64 v2.1", ""},
	} {
		p, ok := Detect(tc.model)
		if ok != (tc.want != "") || p.Name != tc.want {
			t.Errorf("Detect(%q) = %q, %v; want %q", tc.model, p.Name, ok, tc.want)
		}
	}
}

func TestProfiles(t *testing.T) {
	ps := Profiles()
	if len(ps) == 0 {
		t.Fatal("no profiles")
	}
	seen := map[string]bool{}
	for _, p := range ps {
		if p.Name == "" || seen[p.Name] {
			t.Errorf("profile name %q empty or repeated", p.Name)
		}
		seen[p.Name] = true
		if len(p.Models) == 0 || p.UART == "" || p.SPI == "" || p.I2CBus == "" || p.ResetGPIO == "" || p.IRQGPIO == "" || len(p.UARTConfig) == 0 {
			t.Errorf("%s: incomplete: %+v", p.Name, p)
		}
		if p.SPIMaxHz <= 0 || p.SPIMaxHz > MaxSPIHz {
			t.Errorf("%s: SPIMaxHz %d", p.Name, p.SPIMaxHz)
		}
		if p.ResetGPIO == p.IRQGPIO {
			t.Errorf("%s: RSTPD_N and IRQ on one pin", p.Name)
		}
		q, ok := ByName(p.Name)
		if !ok || q.Name != p.Name {
			t.Errorf("ByName(%q) = %v, %v", p.Name, q.Name, ok)
		}
		for _, m := range p.Models {
			if d, ok := Detect(m + " Rev 1.0"); !ok || d.Name != p.Name {
				t.Errorf("%s: its own model %q detects as %q", p.Name, m, d.Name)
			}
		}
	}
	if _, ok := ByName("pi9"); ok {
		t.Error("ByName found pi9")
	}
	// Profiles hands out a copy.
	ps[0].Name = "changed"
	if Profiles()[0].Name == "changed" {
		t.Error("Profiles exposes the table")
	}
}

func TestProfileFacts(t *testing.T) {
	pi4, _ := ByName("pi4")
	pi5, _ := ByName("pi5")
	if !pi4.MiniUARTPrimary || pi5.MiniUARTPrimary {
		t.Error("mini UART: primary on Pi 4 out of the box, absent on Pi 5")
	}
	if got := pi4.ConfigTxt(BusUART); !slices.Equal(got, []string{"enable_uart=1", "dtoverlay=disable-bt"}) {
		t.Errorf("pi4 uart config %q", got)
	}
	if got := pi5.ConfigTxt(BusUART); !slices.Equal(got, []string{"dtparam=uart0=on"}) {
		t.Errorf("pi5 uart config %q", got)
	}
	for _, p := range []Profile{pi4, pi5} {
		if p.UART != "/dev/ttyAMA0" || p.SPI != "/dev/spidev0.0" || p.I2CBus != "1" {
			t.Errorf("%s: buses %s %s %s", p.Name, p.UART, p.SPI, p.I2CBus)
		}
		if got := p.ConfigTxt(BusSPI); !slices.Equal(got, []string{"dtparam=spi=on"}) {
			t.Errorf("%s spi config %q", p.Name, got)
		}
		if got := p.ConfigTxt(BusI2C); !slices.Equal(got, []string{"dtparam=i2c_arm=on"}) {
			t.Errorf("%s i2c config %q", p.Name, got)
		}
		if p.ConfigTxt("usb") != nil {
			t.Errorf("%s: config for an unknown bus", p.Name)
		}
	}
	// ConfigTxt returns a copy.
	pi4.ConfigTxt(BusUART)[0] = "changed"
	if again, _ := ByName("pi4"); again.UARTConfig[0] != "enable_uart=1" {
		t.Error("ConfigTxt exposes the table")
	}
}

func TestReadModel(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	model := filepath.Join(dir, "model")
	if err := os.WriteFile(model, []byte("Raspberry Pi 5 Model B Rev 1.0\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := readModel([]string{missing, model})
	if err != nil || got != "Raspberry Pi 5 Model B Rev 1.0" {
		t.Fatalf("readModel = %q, %v", got, err)
	}
	if _, err := readModel([]string{missing}); !errors.Is(err, ErrNoModel) {
		t.Fatalf("no model: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readModel([]string{empty}); !errors.Is(err, ErrNoModel) {
		t.Fatalf("empty model: %v", err)
	}
	if _, err := readModel([]string{dir}); err == nil || errors.Is(err, ErrNoModel) {
		t.Fatalf("a directory as model file: %v", err)
	}
	// The real thing, where there is one.
	if m, err := ReadModel(); err == nil {
		t.Logf("this host: %q", m)
	} else if !errors.Is(err, ErrNoModel) {
		t.Logf("ReadModel: %v", err)
	}
}

func ExampleDetect() {
	p, ok := Detect("Raspberry Pi 4 Model B Rev 1.4")
	fmt.Println(p.Name, ok, p.UART, p.ConfigTxt(BusUART))
	// Output: pi4 true /dev/ttyAMA0 [enable_uart=1 dtoverlay=disable-bt]
}
