package board

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Bus names a PN532 host interface.
type Bus string

// The PN532's three host interfaces.
const (
	BusUART Bus = "uart" // HSU
	BusSPI  Bus = "spi"
	BusI2C  Bus = "i2c"
)

// SPI clock limits for the PN532: at most 5 MHz, start at 1 MHz
// (protocols.md §1, from the PN532 datasheet).
const (
	DefaultSPIHz = 1_000_000
	MaxSPIHz     = 5_000_000
)

// Profile describes how a PN532 is attached to one family of boards: the
// device nodes of the three buses, the GPIOs we use for RSTPD_N and IRQ and
// the /boot/firmware/config.txt lines that enable each bus.
//
// Pin facts and their sources (40-pin header, same on every profile here):
//
//	UART  TXD GPIO14 pin 8, RXD GPIO15 pin 10        raspberrypi/documentation configuration/uart.adoc ("Primary UART")
//	SPI0  MOSI GPIO10 pin 19, MISO GPIO9 pin 21,     raspberrypi/documentation raspberry-pi/spi-bus-on-raspberry-pi.adoc (SPI0 table)
//	      SCLK GPIO11 pin 23, CE0 GPIO8 pin 24
//	I2C1  SDA GPIO2 pin 3, SCL GPIO3 pin 5,           pinout.xyz (third party); on Pi 5 the pins are confirmed by
//	      fixed 1.8 kΩ pull-ups to 3.3 V              raspberrypi/linux bcm2712-rpi.dtsi (i2c_arm = rp1_i2c1_2_3)
//	GPIO17 pin 11, GPIO27 pin 13                      pinout.xyz (third party); free of UART0, SPI0 and I2C1
//
// ResetGPIO and IRQGPIO are this project's convention, not a standard: any
// free GPIO works, the configuration may name another.
type Profile struct {
	// Name is the short name used in configuration ("pi4").
	Name string
	// Models are the prefixes of the device-tree model string
	// (/proc/device-tree/model) this profile covers, e.g. "Raspberry Pi 4
	// Model B" matches "Raspberry Pi 4 Model B Rev 1.4".
	Models []string
	// UART is the PL011 on GPIO14/15 once UARTConfig is applied.
	UART string
	// MiniUARTPrimary is true when, out of the box, the mini UART
	// (/dev/ttyS0) sits on GPIO14/15 and the PL011 serves Bluetooth. The
	// mini UART's baud rate follows the VPU clock and it loses characters
	// at high rates: UARTConfig moves the PL011 back to the header.
	MiniUARTPrimary bool
	// UARTConfig are the config.txt lines that put UART on GPIO14/15.
	UARTConfig []string
	// SPI is the spidev node of SPI0 with CE0 (GPIO8, pin 24).
	SPI string
	// SPIMaxHz is the highest SPI clock to use: the PN532's limit.
	SPIMaxHz int
	// I2CBus is the periph i2creg name of the header's I2C bus ("1" is
	// /dev/i2c-1 on GPIO2/3).
	I2CBus string
	// ResetGPIO drives RSTPD_N; IRQGPIO reads P70_IRQ (active low). Our
	// convention: GPIO17 (pin 11) and GPIO27 (pin 13).
	ResetGPIO, IRQGPIO string
	// Notes are for the technician.
	Notes string
}

// config.txt lines shared by every profile (raspberrypi/linux
// arch/arm/boot/dts/overlays/README, base DTB parameters "spi" and
// "i2c_arm"; spi-bus-on-raspberry-pi.adoc: "SPI0 is disabled by default").
var (
	spiConfig = []string{"dtparam=spi=on"}
	i2cConfig = []string{"dtparam=i2c_arm=on"}
)

// ConfigTxt returns the /boot/firmware/config.txt lines that enable bus on
// this board, nil for an unknown bus.
func (p Profile) ConfigTxt(bus Bus) []string {
	switch bus {
	case BusUART:
		return append([]string(nil), p.UARTConfig...)
	case BusSPI:
		return append([]string(nil), spiConfig...)
	case BusI2C:
		return append([]string(nil), i2cConfig...)
	}
	return nil
}

func (p Profile) String() string { return "board profile " + p.Name }

// Our RSTPD_N and IRQ convention; see Profile.
const (
	defaultResetGPIO = "GPIO17"
	defaultIRQGPIO   = "GPIO27"
)

// btBoards are the BCM283x/BCM2711 boards with Bluetooth: the PL011
// (ttyAMA0) drives the Bluetooth chip and the mini UART is primary until
// dtoverlay=disable-bt (raspberrypi/documentation configuration/uart.adoc,
// "Primary and Secondary UART" table and "UARTs and Device Tree"). enable_uart=1
// keeps the serial hardware enabled; the kernel console is disabled
// separately (raspi-config, cmdline.txt).
var btUARTConfig = []string{"enable_uart=1", "dtoverlay=disable-bt"}

const btNotes = "dtoverlay=disable-bt turns Bluetooth off; also run " +
	"`systemctl disable hciuart` (uart.adoc). dtoverlay=miniuart-bt keeps " +
	"Bluetooth on the mini UART instead but needs core_freq=250 or force_turbo=1. " +
	"Disable the serial console on ttyAMA0/serial0."

var profiles = []Profile{
	{
		Name:            "pi3",
		Models:          []string{"Raspberry Pi 3 Model B", "Raspberry Pi 3 Model A"},
		UART:            "/dev/ttyAMA0",
		MiniUARTPrimary: true,
		UARTConfig:      btUARTConfig,
		SPI:             "/dev/spidev0.0",
		SPIMaxHz:        MaxSPIHz,
		I2CBus:          "1",
		ResetGPIO:       defaultResetGPIO,
		IRQGPIO:         defaultIRQGPIO,
		Notes:           "BCM2837. I2C: the controller mishandles clock stretching; prefer UART or SPI. " + btNotes,
	},
	{
		Name:            "pi4",
		Models:          []string{"Raspberry Pi 4 Model B", "Raspberry Pi 400"},
		UART:            "/dev/ttyAMA0",
		MiniUARTPrimary: true,
		UARTConfig:      btUARTConfig,
		SPI:             "/dev/spidev0.0",
		SPIMaxHz:        MaxSPIHz,
		I2CBus:          "1",
		ResetGPIO:       defaultResetGPIO,
		IRQGPIO:         defaultIRQGPIO,
		Notes:           "BCM2711. I2C: the controller mishandles clock stretching; prefer UART or SPI. " + btNotes,
	},
	{
		Name:            "zero2w",
		Models:          []string{"Raspberry Pi Zero 2 W"},
		UART:            "/dev/ttyAMA0",
		MiniUARTPrimary: true,
		UARTConfig:      btUARTConfig,
		SPI:             "/dev/spidev0.0",
		SPIMaxHz:        MaxSPIHz,
		I2CBus:          "1",
		ResetGPIO:       defaultResetGPIO,
		IRQGPIO:         defaultIRQGPIO,
		Notes:           "RP3A0 (BCM2710A1): linux/arm64 or GOARM=7. I2C: clock stretching is mishandled; prefer UART or SPI. " + btNotes,
	},
	{
		Name:            "zerow",
		Models:          []string{"Raspberry Pi Zero W"},
		UART:            "/dev/ttyAMA0",
		MiniUARTPrimary: true,
		UARTConfig:      btUARTConfig,
		SPI:             "/dev/spidev0.0",
		SPIMaxHz:        MaxSPIHz,
		I2CBus:          "1",
		ResetGPIO:       defaultResetGPIO,
		IRQGPIO:         defaultIRQGPIO,
		Notes:           "BCM2835, ARMv6: build with GOARM=6. I2C: clock stretching is mishandled; prefer UART or SPI. " + btNotes,
	},
	{
		Name: "pi5",
		// "Raspberry Pi 5" is the kernel DT's model; the firmware fills in
		// "Raspberry Pi 5 Model B Rev 1.0" and the like.
		Models: []string{"Raspberry Pi 5"},
		// UART0 of the RP1 on GPIO14/15 (bcm2712-rpi.dtsi: uart0_pins =
		// rp1_uart0_14_15, alias serial0 = uart0). It is off by default:
		// the console is UART10, /dev/ttyAMA10 on the 3-pin debug
		// connector, and /dev/serial0 points there (raspberrypi/
		// documentation PR #3294, review by P. Elwell). The Pi 5 has no
		// mini UART.
		UART:       "/dev/ttyAMA0",
		UARTConfig: []string{"dtparam=uart0=on"},
		SPI:        "/dev/spidev0.0",
		SPIMaxHz:   MaxSPIHz,
		I2CBus:     "1",
		ResetGPIO:  defaultResetGPIO,
		IRQGPIO:    defaultIRQGPIO,
		Notes: "BCM2712 + RP1. The header UART is /dev/ttyAMA0 after dtparam=uart0=on " +
			"(dtoverlay=uart0-pi5 also works); /dev/ttyAMA10 and /dev/serial0 are the debug " +
			"connector, not the header. GPIO goes through the gpio character device " +
			"(periph gpioioctl); line names are GPIO0..GPIO27 (bcm2712-rpi-5-b.dts).",
	},
}

// Profiles returns the known board profiles.
func Profiles() []Profile {
	out := make([]Profile, len(profiles))
	copy(out, profiles)
	return out
}

// ByName returns the profile called name ("pi4").
func ByName(name string) (Profile, bool) {
	for _, p := range profiles {
		if p.Name == name {
			return p, true
		}
	}
	return Profile{}, false
}

// Detect picks the profile for a device-tree model string such as
// "Raspberry Pi 4 Model B Rev 1.4". A model prefix must end at a word
// boundary ("Raspberry Pi 5" does not match "Raspberry Pi 500") and the
// longest matching prefix wins. Boards with no profile (Compute Modules,
// Pi 1/2, Zero without W, Pi 500) report false: configure their buses
// explicitly.
func Detect(model string) (Profile, bool) {
	model = cleanModel(model)
	best, bestLen := Profile{}, 0
	for _, p := range profiles {
		for _, m := range p.Models {
			if len(m) > bestLen && hasWordPrefix(model, m) {
				best, bestLen = p, len(m)
			}
		}
	}
	return best, bestLen > 0
}

func hasWordPrefix(s, prefix string) bool {
	if !strings.HasPrefix(s, prefix) {
		return false
	}
	return len(s) == len(prefix) || s[len(prefix)] == ' '
}

// cleanModel strips the NUL terminator the device tree stores and stray
// whitespace.
func cleanModel(s string) string {
	return strings.TrimSpace(strings.TrimRight(s, "\x00"))
}

// modelPaths are where Linux exposes the device-tree model; the first is a
// symlink to the second on current kernels.
var modelPaths = []string{"/proc/device-tree/model", "/sys/firmware/devicetree/base/model"}

// ErrNoModel: the host has no device-tree model (not a device-tree board).
var ErrNoModel = errors.New("board: no device-tree model on this host")

// ReadModel returns the host's device-tree model string, e.g. "Raspberry
// Pi 5 Model B Rev 1.0". Pass it to Detect.
func ReadModel() (string, error) { return readModel(modelPaths) }

func readModel(paths []string) (string, error) {
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("board: read model: %w", err)
		}
		if m := cleanModel(string(b)); m != "" {
			return m, nil
		}
	}
	return "", ErrNoModel
}
